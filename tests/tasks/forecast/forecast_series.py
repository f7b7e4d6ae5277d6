"""Generated plant series with known structure, and a small stand-in for the forecast network.

`plant_output` is a line's hourly output: a level, a slow trend, a daily cycle, the effect of a planned-load
covariate known ahead (`planned`), a level shift at a known step and noise of a known spread, so a model that
learns the structure beats a naive forecast by a margin the tests can ask for, and interval coverage can be
checked against the noise.

Until forecast-net's `network.py` is merged, the estimator gets `StandInNet` (the interface of issue 18: a
linear map of the whole window plus a small MLP, quantiles as non-crossing offsets); once the real network is
there the tests run on it.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import torch
from torch import nn

import shopfloor.tasks.forecast.model as forecast_model

SHIFT_AT = 500  # the step at which every line's level shifts up


def plant_output(steps: int = 700, lines: int = 1, seed: int = 0, noise: float = 0.3, start: str = "2024-01-01",
                 shift: float = 3.0) -> pd.DataFrame:
    """Columns: time, line (when lines > 1), output (target), planned (known ahead), temperature (past only)."""
    rng = np.random.default_rng(seed)
    frames = []
    for line in range(lines):
        t = np.arange(steps)
        stamps = pd.date_range(start, periods=steps, freq="h") + pd.Timedelta(hours=5 * line)
        planned = np.where(rng.random(steps) < 0.3, 1.0, 0.0)  # a planned high-load hour
        daily = 2.0 * np.sin(2 * np.pi * (stamps.hour.to_numpy()) / 24)
        output = (10 + 2 * line + 0.004 * t + daily + 2.5 * planned + shift * (t >= SHIFT_AT)
                  + noise * rng.normal(size=steps))
        frame = pd.DataFrame({"time": stamps, "output": output, "planned": planned,
                              "temperature": 40 + rng.normal(size=steps)})
        if lines > 1:
            frame.insert(1, "line", f"L{line + 1}")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


class StandInNet(nn.Module):
    def __init__(self, *, lookback: int, horizon: int, targets: int, past: int = 0, known: int = 0,
                 quantiles: tuple[float, ...] = (0.1, 0.5, 0.9), series: int = 1, hidden: int = 32) -> None:
        super().__init__()
        self.horizon, self.targets, self.outputs = horizon, targets, 1 + len(quantiles)
        inputs = lookback * (targets + past) + (lookback + horizon) * known
        self.linear = nn.Linear(inputs, horizon * targets)
        self.mlp = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, horizon * targets * self.outputs))
        self.series = nn.Embedding(series, horizon * targets)

    def forward(self, history, known_history, known_future, series):
        x = torch.cat([history.flatten(1), known_history.flatten(1), known_future.flatten(1)], dim=1)
        shape = (-1, self.horizon, self.targets)
        point = (self.linear(x) + self.series(series)).reshape(shape)
        extra = self.mlp(x).reshape(*shape, self.outputs)
        point = point + extra[..., 0]
        lowest = point + extra[..., 1] - 1.0
        steps = nn.functional.softplus(extra[..., 2:] + 0.5)
        quantiles = torch.cat([lowest[..., None], lowest[..., None] + torch.cumsum(steps, dim=-1)], dim=-1)
        return torch.cat([point[..., None], quantiles], dim=-1)


def stand_in_loss(output, actual, quantiles):
    mse = ((output[..., 0] - actual) ** 2).mean()
    levels = torch.tensor(quantiles, dtype=output.dtype)
    error = actual[..., None] - output[..., 1:]
    return mse + torch.maximum(levels * error, (levels - 1) * error).mean()


REAL_NETWORK = importlib.util.find_spec("shopfloor.tasks.forecast.network") is not None
if not REAL_NETWORK:
    forecast_model.network = lambda: (StandInNet, stand_in_loss)

FAST = {"horizon": 12, "lookback": 48, "max_epochs": 40, "patience": 6, "progress": False, "lr": 3e-3}
