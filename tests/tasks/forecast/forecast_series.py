"""Generated plant series with known structure, and the small settings the tests train with.

`plant_output` is a line's hourly output: a level, a slow trend, a daily cycle, the effect of a planned-load
covariate known ahead (`planned`), a level shift at a known step and noise of a known spread, so a model that
learns the structure beats a naive forecast by a margin the tests can ask for, and interval coverage can be
checked against the noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SHIFT_AT = 500  # the step at which every line's level shifts up


def plant_output(steps: int = 700, lines: int = 1, seed: int = 0, noise: float = 0.3, start: str = "2024-01-01",
                 shift: float = 3.0, trend: float = 0.004) -> pd.DataFrame:
    """Columns: time, line (when lines > 1), output (target), planned (known ahead), temperature (past only)."""
    rng = np.random.default_rng(seed)
    frames = []
    for line in range(lines):
        t = np.arange(steps)
        stamps = pd.date_range(start, periods=steps, freq="h") + pd.Timedelta(hours=5 * line)
        planned = np.where(rng.random(steps) < 0.3, 1.0, 0.0)  # a planned high-load hour
        daily = 2.0 * np.sin(2 * np.pi * (stamps.hour.to_numpy()) / 24)
        output = (10 + 2 * line + trend * t + daily + 2.5 * planned + shift * (t >= SHIFT_AT)
                  + noise * rng.normal(size=steps))
        frame = pd.DataFrame({"time": stamps, "output": output, "planned": planned,
                              "temperature": 40 + rng.normal(size=steps)})
        if lines > 1:
            frame.insert(1, "line", f"L{line + 1}")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# a small network and few epochs: seconds per fit on one core
FAST = {"horizon": 12, "lookback": 48, "max_epochs": 30, "patience": 5, "progress": False, "lr": 3e-3,
        "architecture": {"width": 16, "patch": 8, "stride": 4, "kernel": 13}}
