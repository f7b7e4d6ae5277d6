"""Readers and validation for plant data: tables, and the demo data shipped with the package."""
