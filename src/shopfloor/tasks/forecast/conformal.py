"""Conformal recalibration of the quantiles on the held-out end of the training history.

A network's quantiles are as good as its fit: trained to the last epoch they are too narrow, stopped early they
may be too wide, and nothing guarantees the stated coverage. Split conformal prediction fixes each quantile
one-sidedly (the per-quantile form of conformalised quantile regression, Romano et al. 2019):

for every horizon step h, target k and quantile level tau, with the n held-out windows' residuals
r_i = y_i - q_tau(x_i) (standardised units: one offset serves every series), the offset is the empirical
quantile of the r_i at level ceil((n + 1) tau) / n for tau >= 0.5 and floor((n + 1) tau) / n below it
(clipped to the smallest or largest residual), so that P(y <= q_tau + offset) is at least tau (at most tau
below 0.5) for an exchangeable new window. The interval between the quantiles tau and 1 - tau then covers
at least 1 - 2 tau; the offsets are added inside the model (`forecaster.Forecaster.to_units`) and the
quantiles sorted after them.

The held-out windows were also the early-stopping set, which makes the guarantee slightly optimistic (the
weights were chosen on them); time series are not exchangeable either, so the coverage holds as well as the
hold-out resembles what comes next. `coverage_check` measures it on backtests.
"""

from __future__ import annotations

import numpy as np


def conformal_offsets(quantiles: np.ndarray, actual: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """Offsets [horizon, targets, len(levels)] from held-out quantile forecasts [n, horizon, targets, levels] and
    the actual values [n, horizon, targets]."""
    residuals = actual[..., None] - quantiles  # [n, horizon, targets, levels]
    n = len(residuals)
    ordered = np.sort(residuals, axis=0)
    offsets = np.empty(residuals.shape[1:])
    for j, tau in enumerate(levels):
        rank = np.ceil((n + 1) * tau) if tau >= 0.5 else np.floor((n + 1) * tau)
        index = int(np.clip(rank, 1, n)) - 1
        offsets[..., j] = ordered[index, ..., j]
    return offsets


def intervals(levels: tuple[float, ...]) -> list[tuple[int, int, float]]:
    """The central intervals the quantile levels make: (low index, high index, nominal coverage), widest first
    ((0.1, 0.5, 0.9) -> [(0, 2, 0.8)])."""
    pairs = []
    for i, low in enumerate(levels):
        for j, high in enumerate(levels):
            if low < 0.5 and abs(low + high - 1) < 1e-9:
                pairs.append((i, j, round(high - low, 10)))
    return sorted(pairs, key=lambda p: -p[2])
