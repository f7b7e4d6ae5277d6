"""Which items a check looks at when it cannot afford all of them: one rule for int8 calibration, int8 metrics
and the robustness report, so that each draws the same, reproducible spread of a data set (numpy only: the int8
paths need not load torch)."""

from __future__ import annotations

import numpy as np


def spread_rows(count: int, limit: int, seed: int = 0) -> np.ndarray:
    """At most `limit` item indexes drawn at random (sorted), all when there are fewer."""
    return np.sort(np.random.default_rng(seed).permutation(count)[:limit])
