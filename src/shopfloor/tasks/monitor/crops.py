"""Training sequences cut from the grid: stretches of consecutive normal time steps inside one segment.

The network learns from crops of `crop` steps (shorter where the history is short) rather than from every
window: a crop teaches every one of its steps at once, and at most `limit` crops, evenly spread, keep an epoch
of a year of readings as short as one of an hour's.
"""

from __future__ import annotations

import numpy as np


def longest_run(rows: np.ndarray, grid) -> int:
    """The longest stretch of consecutive wanted slots inside one segment."""
    best = 0
    for segment in grid.segments():
        flags = rows[segment].astype(np.int8)
        if not flags.any():
            continue
        edges = np.diff(np.r_[0, flags, 0])
        best = max(best, int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max()))
    return best


def crop_starts(rows: np.ndarray, grid, length: int, limit: int) -> np.ndarray:
    """First slots of every crop of `length` wanted consecutive slots (at most `limit`, evenly spread)."""
    if length < 1:
        return np.zeros(0, np.int64)
    ok = rows.astype(np.int64)
    segment = np.repeat(np.arange(len(grid.starts)), grid.lengths)
    # a crop starting at s is usable when all of s .. s + length - 1 are wanted and in s's segment
    total = np.r_[0, np.cumsum(ok)]
    ends = np.arange(len(ok)) + length
    usable = np.zeros(len(ok), bool)
    inside = ends <= len(ok)
    usable[inside] = total[ends[inside]] - total[np.flatnonzero(inside)] == length
    last = np.minimum(ends - 1, len(ok) - 1)
    usable &= segment[last] == segment
    starts = np.flatnonzero(usable)
    if len(starts) > limit:
        starts = starts[np.linspace(0, len(starts) - 1, limit).round().astype(np.int64)]
    return starts
