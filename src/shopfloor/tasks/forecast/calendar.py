"""Calendar features from the time column: the known covariates every forecast has for free.

Each cycle the data's step can resolve (at least four steps per cycle) and its history holds twice (the longest
series spans two cycles) becomes a sine and a cosine of its phase: two years of hourly data get the hour of the
day, the day of the week and the day of the year; daily data the day of the week (and of the year); monthly
data the day of the year. A cycle seen less than twice cannot be told from a trend or from noise: the day of
the year learnt from four weeks of hourly data is a slope the network then extrapolates (a backtest of the
tests' generated line drifted by 0.4 with it). A time column of plain numbers (cycle counts,
shift numbers) has no calendar. The phase of the week counts from 1970-01-01 (a Thursday) and the year is
365.2425 days long: a sine only needs the cycle, not its name.
"""

from __future__ import annotations

import numpy as np

DAY = 86_400.0
CYCLES = {"hour of day": DAY, "day of week": 7 * DAY, "day of year": 365.2425 * DAY}
STEPS_PER_CYCLE = 4  # a cycle of fewer steps than this cannot be seen in the data
CYCLES_SEEN = 2  # a cycle the history holds fewer times than this is not learnt


def calendar_cycles(step: float, stamped: bool, span: float = float("inf")) -> list[str]:
    """The cycles a model with this step learns from, when its longest series spans `span` (both in seconds)."""
    if not stamped:
        return []
    return [name for name, period in CYCLES.items()
            if period / step >= STEPS_PER_CYCLE and span >= CYCLES_SEEN * period]


def calendar_columns(cycles: list[str]) -> list[str]:
    """The feature names, two per cycle, in the order of `calendar_features`' columns."""
    return [f"{name} ({part})" for name in cycles for part in ("sin", "cos")]


def calendar_features(seconds: np.ndarray, cycles: list[str]) -> np.ndarray:
    """float32 [*seconds.shape, 2 * len(cycles)]."""
    seconds = np.asarray(seconds, dtype=np.float64)
    parts = []
    for name in cycles:
        angle = 2 * np.pi * np.mod(seconds, CYCLES[name]) / CYCLES[name]
        parts += [np.sin(angle), np.cos(angle)]
    if not parts:
        return np.zeros((*seconds.shape, 0), np.float32)
    return np.stack(parts, axis=-1).astype(np.float32)
