"""Calendar features from the time column: the known covariates every forecast has for free.

Each cycle the data's step can resolve (at least four steps per cycle) becomes a sine and a cosine of its phase:
hourly data gets the hour of the day, the day of the week and the day of the year; daily data the day of the
week and of the year; weekly or monthly data the day of the year. A time column of plain numbers (cycle counts,
shift numbers) has no calendar. The phase of the week counts from 1970-01-01 (a Thursday) and the year is
365.2425 days long: a sine only needs the cycle, not its name.
"""

from __future__ import annotations

import numpy as np

DAY = 86_400.0
CYCLES = {"hour of day": DAY, "day of week": 7 * DAY, "day of year": 365.2425 * DAY}
STEPS_PER_CYCLE = 4  # a cycle of fewer steps than this cannot be seen in the data


def calendar_cycles(step: float, stamped: bool) -> list[str]:
    """The cycles a model with this step (in seconds) learns from."""
    if not stamped:
        return []
    return [name for name, period in CYCLES.items() if period / step >= STEPS_PER_CYCLE]


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
