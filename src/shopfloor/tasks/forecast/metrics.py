"""Forecast metrics: MASE, sMAPE, RMSE, MAE, quantile (pinball) loss and interval coverage.

Every function takes aligned arrays of one backtest's rows. MASE divides each (series, target)'s mean absolute
error by the mean absolute one-step change of that series' history before the first origin (the in-sample
naive forecast's error, Hyndman and Koehler 2006) and averages over them: series of different sizes count
alike, and a flat history (intermittent demand, zeros) gets a floor instead of a division by zero. sMAPE is
200 |e| / (|y| + |f|), with the rows where both are zero left out (a perfect forecast of no demand).
"""

from __future__ import annotations

import numpy as np

from shopfloor.tasks.forecast.conformal import intervals

EPSILON = 1e-8


def pinball(actual: np.ndarray, quantile: np.ndarray, level: float) -> np.ndarray:
    error = actual - quantile
    return np.maximum(level * error, (level - 1) * error)


def point_metrics(actual: np.ndarray, forecast: np.ndarray) -> dict[str, float]:
    error = forecast - actual
    denominator = np.abs(actual) + np.abs(forecast)
    some = denominator > 0
    return {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error ** 2))),
            "smape": float(np.mean(200 * np.abs(error[some]) / denominator[some])) if some.any() else 0.0}


def mase(actual: np.ndarray, forecast: np.ndarray, groups: np.ndarray, naive_error: dict) -> float:
    """Mean over (series, target) groups of MAE / the group's naive one-step error (`naive_error[group]`)."""
    ratios = []
    for group in np.unique(groups):
        rows = groups == group
        scale = max(naive_error.get(group, np.nan), EPSILON)
        ratios.append(np.mean(np.abs(forecast[rows] - actual[rows])) / scale)
    return float(np.nanmean(ratios)) if ratios else float("nan")


def naive_errors(values: np.ndarray) -> float:
    """Mean absolute one-step change of a history (NaN when it has fewer than two values)."""
    values = values[~np.isnan(values)]
    return float(np.mean(np.abs(np.diff(values)))) if len(values) > 1 else float("nan")


def quantile_metrics(actual: np.ndarray, quantiles: np.ndarray, levels: tuple[float, ...]) -> dict[str, float]:
    """Mean pinball loss over the levels, and every central interval's coverage ('coverage_80') and their mean
    gap to the nominal coverage ('coverage_error')."""
    out = {"quantile_loss": float(np.mean([pinball(actual, quantiles[:, j], tau).mean()
                                           for j, tau in enumerate(levels)]))}
    gaps = []
    for low, high, nominal in intervals(levels):
        covered = float(np.mean((actual >= quantiles[:, low]) & (actual <= quantiles[:, high])))
        out[f"coverage_{nominal * 100:g}"] = covered
        gaps.append(abs(covered - nominal))
    if gaps:
        out["coverage_error"] = float(np.mean(gaps))
    return out


def forecast_metrics(actual: np.ndarray, forecast: np.ndarray, quantiles: np.ndarray, levels: tuple[float, ...],
                     groups: np.ndarray, naive_error: dict) -> dict[str, float]:
    return {"mase": mase(actual, forecast, groups, naive_error), **point_metrics(actual, forecast),
            **quantile_metrics(actual, quantiles, levels), "rows": float(len(actual))}


def by_horizon(steps: np.ndarray, actual: np.ndarray, forecast: np.ndarray) -> dict[int, dict[str, float]]:
    """MAE and RMSE per horizon step (1 = the first step after the origin): the report's error curve."""
    return {int(h): point_metrics(actual[steps == h], forecast[steps == h]) for h in np.unique(steps)}
