"""Fault diagnosis from windows of vibration or process signals (issue 17)."""
