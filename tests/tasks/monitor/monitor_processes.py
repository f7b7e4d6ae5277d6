"""Generated sensor histories: a pump whose sensors follow one load signal, with faults of known start and sensor.

The load switches between two operating modes (idle and load) and wiggles within each, so that the sensors
move together all the time: a sensor that stops following the others (stuck, drifting, anti-correlated) is
visible within a few steps. Temperature follows the load slowly, as temperatures do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SENSORS = ["current", "flow", "pressure", "vibration", "temperature"]
FAULT_START = 1_000


def pump(rows: int = 1_200, seed: int = 0, start: str = "2024-01-01") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    mode = np.where((np.arange(rows) // 150) % 2 == 0, 0.3, 1.0)  # idle, load, idle, ...
    load = mode + 0.15 * np.sin(np.arange(rows) * 2 * np.pi / 17) + 0.03 * rng.normal(size=rows)
    heat = np.zeros(rows)
    for t in range(1, rows):
        heat[t] = heat[t - 1] + 0.05 * (load[t] - heat[t - 1])
    frame = pd.DataFrame({
        "time": pd.date_range(start, periods=rows, freq="min"),
        "current": 2.0 + 1.5 * load + 0.03 * rng.normal(size=rows),
        "flow": 10.0 + 4.0 * load + 0.08 * rng.normal(size=rows),
        "pressure": 3.0 + 0.8 * load + 0.02 * rng.normal(size=rows),
        "vibration": 0.5 + 0.2 * load + 0.01 * rng.normal(size=rows),
        "temperature": 40.0 + 8.0 * heat + 0.05 * rng.normal(size=rows),
    })
    return frame


def with_fault(frame: pd.DataFrame, kind: str, start: int = FAULT_START) -> tuple[pd.DataFrame, str | None]:
    """The history with a fault from row `start`, and the sensor at fault (None for a new operating mode)."""
    frame = frame.copy()
    after = np.arange(len(frame)) >= start
    steps = np.maximum(np.arange(len(frame)) - start + 1, 0)
    if kind == "drift":
        frame.loc[after, "pressure"] += 0.02 * steps[after]  # the load's swing in pressure is 0.12 per wiggle
        return frame, "pressure"
    if kind == "spike":
        frame.loc[after & (steps <= 30), "vibration"] += 0.15
        return frame, "vibration"
    if kind == "stuck":
        frame.loc[after, "flow"] = frame["flow"].iloc[start]
        return frame, "flow"
    if kind == "correlation":  # current turns against the load while every other sensor follows it
        mean = frame["current"].iloc[:start].mean()
        frame.loc[after, "current"] = 2 * mean - frame.loc[after, "current"]
        return frame, "current"
    if kind == "mode":  # a heavier load than any seen, every sensor consistent with it
        extra = 0.8
        frame.loc[after, "current"] += 1.5 * extra
        frame.loc[after, "flow"] += 4.0 * extra
        frame.loc[after, "pressure"] += 0.8 * extra
        frame.loc[after, "vibration"] += 0.2 * extra
        return frame, None
    raise ValueError(kind)
