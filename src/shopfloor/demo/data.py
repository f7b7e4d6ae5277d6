"""Data sets shipped inside the package, so that the demo runs on a fresh machine.

See files/ATTRIBUTION.md for sources and licenses.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

AI4I_TARGET = "Machine failure"
AI4I_FAILURE_MODES = ["TWF", "HDF", "PWF", "OSF", "RNF"]  # each one leaks 'Machine failure'


def demo_file(name: str) -> Path:
    """Path of a shipped data file, e.g. demo_file('ai4i2020.csv.gz')."""
    path = Path(str(resources.files("shopfloor.data") / "files" / name))
    if not path.is_file():
        raise FileNotFoundError(f"the shopfloor package has no demo file '{name}'; reinstall shopfloor")
    return path
