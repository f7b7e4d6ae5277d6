"""The answering module: the network with the model's standardisation and conformal offsets around it.

Plant units go in and plant units come out, so that `predict`, backtests, the service and the ONNX file share
one path (anomalib's export drift came from two). Inputs, as `network.ForecastNet` takes them but unscaled:

    history        [batch, lookback, targets + past]   targets first, then the past-only covariates
    known_history  [batch, lookback, calendar + known] the calendar features (`calendar.py`), then the
                                                       user's known covariates
    known_future   [batch, horizon, calendar + known]  the same columns over the horizon
    series         [batch] long                        the series' index in the model's `series_ids`
    ->             [batch, horizon, targets, 1 + quantiles]: [..., 0] the point forecast, then the quantiles

Every column of a series is standardised with that series' own mean and spread over its training history
(`series_statistics`; calendar features pass unscaled). The quantiles then get the conformal offsets
(`conformal.py`, in standardised units, per horizon step, target and quantile) and are sorted, so that the
offsets never make them cross.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SPREAD_FLOOR = 1e-6  # relative to the column's mean absolute value: a constant column is not divided by zero


class Forecaster(nn.Module):
    def __init__(self, net: nn.Module, *, series: int, targets: int, past: int, calendar: int, known: int,
                 horizon: int, quantiles: int):
        super().__init__()
        self.net = net
        self.targets, self.past, self.calendar = targets, past, calendar
        columns = targets + past + known  # the scaled columns: calendar features are not among them
        self.register_buffer("center", torch.zeros(series, columns))
        self.register_buffer("scale", torch.ones(series, columns))
        self.register_buffer("offsets", torch.zeros(horizon, targets, quantiles))

    def standardise(self, history: torch.Tensor, known_history: torch.Tensor, known_future: torch.Tensor,
                    series: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        center, scale = self.center[series][:, None, :], self.scale[series][:, None, :]
        ends = self.targets + self.past
        history = (history - center[..., :ends]) / scale[..., :ends]

        def known(values: torch.Tensor) -> torch.Tensor:
            plain = values[..., :self.calendar]
            return torch.cat([plain, (values[..., self.calendar:] - center[..., ends:]) / scale[..., ends:]], dim=-1)

        return history, known(known_history), known(known_future)

    def forward(self, history: torch.Tensor, known_history: torch.Tensor, known_future: torch.Tensor,
                series: torch.Tensor) -> torch.Tensor:
        out = self.net(*self.standardise(history, known_history, known_future, series), series)
        return self.to_units(out, series)

    def to_units(self, out: torch.Tensor, series: torch.Tensor) -> torch.Tensor:
        """Standardised network output -> calibrated forecasts in the plant's units."""
        quantiles = torch.sort(out[..., 1:] + self.offsets, dim=-1).values
        out = torch.cat([out[..., :1], quantiles], dim=-1)
        center = self.center[series][:, None, :self.targets, None]
        scale = self.scale[series][:, None, :self.targets, None]
        return out * scale + center


def series_statistics(values: list[np.ndarray], ends: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread [series, columns] of every series over its first `ends[i]` steps (its training part).

    The spread is the standard deviation, floored at a millionth of the mean absolute value (and at 1e-12): a
    series of zeros (intermittent demand with no demand yet) or a constant covariate is not divided by zero."""
    center = np.stack([v[:end].mean(0) for v, end in zip(values, ends, strict=True)])
    spread = np.stack([v[:end].std(0) for v, end in zip(values, ends, strict=True)])
    level = np.stack([np.abs(v[:end]).mean(0) for v, end in zip(values, ends, strict=True)])
    floor = np.maximum(SPREAD_FLOOR * level, 1e-12)
    scale = np.where(spread > floor, spread, np.maximum(level, 1.0))
    return center, scale
