"""Rolling-origin backtests: forecasts from every origin at or after START, each seeing only rows before it.

An origin is a step of a series' grid at or after START (every `stride`-th one, counted from the first) whose
look-back fits before it and whose whole horizon has actual values after it. Its forecast reads the
`lookback` steps before it, and of the steps after it only the known covariates (known ahead by definition)
and the calendar; gaps are filled by carrying the last value forward, so a later row never reaches back into an
earlier forecast (`tests/tasks/forecast/test_backtest.py` poisons every row after each origin to check it).
All origins go through the network in batches of `model.BATCH` windows at once.

With `refit`, the model is trained again, with its own parameters, on the rows before an origin: once, on the
rows before START (`refit_every` 0), or again before every `refit_every`-th origin (on everything before it),
so each block of origins is forecast by a model that never saw its future. Without it the saved model answers
every origin, which is right when START is after the end of its training history.

The metrics (`metrics.py`): MASE (scale: each series' and target's mean one-step change before START),
sMAPE, RMSE, MAE, the mean pinball loss and every central interval's coverage, over every row, and the same
per target (`<target>/mae`, ...) when there are several; `errors_by_horizon` gives them per step (the report).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shopfloor.errors import BadOption, BadTarget
from shopfloor.tasks.forecast.metrics import by_horizon, forecast_metrics, naive_errors
from shopfloor.tasks.forecast.windows import flatten


def start_seconds(model, history, start) -> float:
    """START as the time column's number (seconds since 1970 for time stamps)."""
    if not history.stamped:
        try:
            return float(start)
        except (TypeError, ValueError):
            raise BadOption(f"--start {start!r} is not a number like the time column '{history.time}'") from None
    try:
        stamp = pd.Timestamp(start)
    except (TypeError, ValueError):
        raise BadOption(f"--start {start!r} is not a time (write it as 2018-06-01 or 2018-06-01T12:00)") from None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.value / 1e9


def origins_of(model, history, start: float, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(series position, origin) of every window the backtest forecasts."""
    positions, origins = [], []
    for i, seconds in enumerate(history.seconds):
        first = max(int(np.searchsorted(seconds, start - 1e-9 * max(1.0, abs(start)))), model.lookback)
        chosen = np.arange(first, len(seconds) - model.horizon + 1, stride)
        positions.append(np.full(len(chosen), i))
        origins.append(chosen)
    positions, origins = np.concatenate(positions).astype(np.int64), np.concatenate(origins).astype(np.int64)
    if not len(origins):
        raise BadTarget(f"no origin at or after {history.stamp(start)} in {history.source} has {model.lookback} steps "
                        f"before it and {model.horizon} after it: choose an earlier --start or give more rows")
    return positions, origins


def backtest(model, data, start, stride: int = 1, refit: bool = False, refit_every: int = 0):
    """(rows, metrics) of the rolling-origin backtest described above."""
    if stride < 1 or refit_every < 0:
        raise BadOption(f"stride must be at least 1 and refit_every at least 0 (stride {stride}, refit every {refit_every})")
    history = model.read(data)
    begin = start_seconds(model, history, start)
    series = model.series_index(history) if not refit else None
    positions, origins = origins_of(model, history, begin, stride)
    flat = flatten(history, model.calendar_cycles_)
    if refit:
        out = _refitted(model, data, history, flat, positions, origins, refit_every)
    else:
        out = model.answer(flat, positions, origins, series[positions])
    steps = np.arange(model.horizon)
    actual = np.stack([history.values[i][o + steps, :len(model.target_columns_)] for i, o in zip(positions, origins,
                                                                                                  strict=True)])
    times = [history.seconds[i][o + steps] for i, o in zip(positions, origins, strict=True)]
    origin_times = [history.seconds[i][o] for i, o in zip(positions, origins, strict=True)]
    table = model.rows(history, out, times, origin_times, series_of=positions, actual=actual)
    return table, _metrics(model, history, begin, out, actual, positions)


def _refitted(model, data, history, flat, positions, origins, refit_every: int) -> np.ndarray:
    from shopfloor.tasks.base import as_frame
    from shopfloor.tasks.forecast.history import read_times

    frame, _ = as_frame(data)
    seconds, _, _ = read_times(frame[model.time_column_], model.time_column_, history.source, model.new_data_date_order())
    order = np.argsort([history.seconds[i][o] for i, o in zip(positions, origins, strict=True)], kind="stable")
    block = len(order) if refit_every == 0 else refit_every
    out = np.empty((len(origins), model.horizon, len(model.target_columns_), 1 + len(model.levels)), np.float32)
    for k in range(0, len(order), block):
        chosen = order[k:k + block]
        first = min(history.seconds[positions[c]][origins[c]] for c in chosen)
        fresh = type(model)(**model.get_params()).fit(frame[seconds < first].reset_index(drop=True))
        if fresh.calendar_cycles_ != model.calendar_cycles_:  # a shorter history may hold fewer cycles twice
            flat = flatten(history, fresh.calendar_cycles_)
        out[chosen] = fresh.answer(flat, positions[chosen], origins[chosen],
                                   fresh.series_index(history)[positions[chosen]])
    return out


def _metrics(model, history, begin: float, out: np.ndarray, actual: np.ndarray, positions: np.ndarray) -> dict:
    targets = len(model.target_columns_)
    naive = {}
    for i, (values, seconds) in enumerate(zip(history.values, history.seconds, strict=True)):
        before = values[seconds < begin]
        for k in range(targets):
            naive[i * targets + k] = naive_errors(before[:, k]) if len(before) > 1 else naive_errors(values[:, k])
    groups = (positions[:, None, None] * targets + np.arange(targets)[None, None, :]) * np.ones_like(actual, np.int64)
    levels = model.levels

    def over(mask) -> dict:
        return forecast_metrics(actual[mask], out[..., 0][mask], out[..., 1:][mask], levels, groups[mask], naive)

    everything = np.ones(actual.shape, bool)
    metrics = {**over(everything), "origins": float(len(out))}
    if targets > 1:
        for k, name in enumerate(model.target_columns_):
            only = np.zeros(actual.shape, bool)
            only[..., k] = True
            metrics.update({f"{name}/{key}": value for key, value in over(only).items() if key != "rows"})
    return metrics


def errors_by_horizon(model, table: pd.DataFrame) -> dict[int, dict[str, float]]:
    """MAE, RMSE and sMAPE per horizon step (1 = the first step after the origin) of a backtest's rows."""
    steps = np.tile(np.repeat(np.arange(1, model.horizon + 1), len(model.target_columns_)),
                    len(table) // (model.horizon * len(model.target_columns_)))
    return by_horizon(steps, table["actual"].to_numpy(), table["forecast"].to_numpy())


def evaluation_start(model, data):
    """The start of `evaluate`'s backtest: the last fifth of the longest series' steps, at least one horizon
    (and every origin with its look-back)."""
    history = model.read(data)
    longest = int(np.argmax(history.lengths()))
    seconds = history.seconds[longest]
    first = max(len(seconds) - max(len(seconds) // 5, model.horizon), model.lookback)
    first = min(first, len(seconds) - model.horizon)
    return history.stamp(seconds[first]) if history.stamped else seconds[first]
