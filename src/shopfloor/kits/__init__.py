"""Shared kits below the tasks: what several tasks use, with public names and no task of their own."""
