"""Forecast windows cut from series histories: a look-back of `lookback` steps and the `horizon` steps after it.

Every series is laid end to end in one flat table (`Flat`), and a window is the index of its first row: a batch
gathers its rows in one indexing step, so that a backtest of 2,880 origins, or an epoch of 20,000 training
windows, never copies the overlapping windows out. The window of origin `o` (the first forecast step) of a
series reads its rows o - lookback .. o + horizon - 1: the look-back's values, and the known covariates and
calendar over both parts. Nothing at or after `o` but the known covariates enters the forecast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from shopfloor.tasks.forecast.calendar import calendar_features
from shopfloor.tasks.forecast.history import SeriesHistory


@dataclass
class Flat:
    values: torch.Tensor  # float32 [rows, targets + past + known], plant units
    calendar: torch.Tensor  # float32 [rows, calendar features]
    offsets: np.ndarray  # the first row of every series
    lengths: np.ndarray  # rows of every series


def flatten(history: SeriesHistory, cycles: list[str], horizon: int = 0,
            known_future: list[np.ndarray] | None = None) -> Flat:
    """Every series end to end, each followed by `horizon` future steps (none by default): the known covariates'
    values there (`known_future[i]`, [horizon, known]), NaN elsewhere. A forecast from a series' end is then the
    window whose origin is its old length. Built in one pass: 1,000 series' recent rows in milliseconds."""
    lengths = history.lengths()
    total = lengths + horizon
    offsets = np.concatenate([[0], np.cumsum(total)[:-1]]).astype(np.int64)
    read_rows = np.arange(int(lengths.sum())) + np.repeat(offsets - (np.cumsum(lengths) - lengths), lengths)
    columns = history.values[0].shape[1]
    values = np.full((int(total.sum()), columns), np.nan, np.float32)
    values[read_rows] = np.concatenate(history.values)
    seconds = np.empty(int(total.sum()))
    seconds[read_rows] = np.concatenate(history.seconds)
    if horizon:
        ahead = np.arange(1, horizon + 1)
        future_rows = (np.repeat(offsets + lengths, horizon) + np.tile(ahead - 1, len(lengths)))
        last = np.array([t[-1] for t in history.seconds])
        seconds[future_rows] = (last[:, None] + history.step * ahead[None, :]).reshape(-1)
        if known_future is not None and history.known:
            values[future_rows, columns - len(history.known):] = np.concatenate(known_future)
    calendar = calendar_features(seconds, cycles)
    return Flat(torch.from_numpy(values), torch.from_numpy(calendar), offsets, total)


def starts_of(flat: Flat, series: np.ndarray, origins: np.ndarray, lookback: int) -> torch.Tensor:
    """The flat row where each window (the series' position in the history, its origin) begins."""
    return torch.as_tensor(flat.offsets[series] + origins - lookback, dtype=torch.long)


def gather(flat: Flat, starts: torch.Tensor, lookback: int, horizon: int, ends: int, targets: int):
    """(history, known_history, known_future, actual) of the windows beginning at `starts`, in plant units:
    `ends` is where the past columns end (targets + past)."""
    rows = starts[:, None] + torch.arange(lookback + horizon, device=starts.device)
    block = flat.values[rows]
    known = torch.cat([flat.calendar[rows], block[..., ends:]], dim=-1)
    return block[:, :lookback, :ends], known[:, :lookback], known[:, lookback:], block[:, lookback:, :targets]


def recent(history: SeriesHistory, steps: int) -> SeriesHistory:
    """The history cut to every series' last `steps` steps."""
    from dataclasses import replace

    return replace(history, values=[v[-steps:] for v in history.values], seconds=[t[-steps:] for t in history.seconds],
                   flagged=[f[-steps:] for f in history.flagged])


def spread_evenly(count: int, limit: int) -> np.ndarray:
    """At most `limit` of `count` positions, evenly spread (all of them when there are few enough)."""
    if count <= limit:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(np.int64))


def last_windows(model, history: SeriesHistory):
    """(history, known_history, known_future) in plant units of the window ending at every series' last row, a
    known covariate's future taken as its last value (explanations and the ONNX check take no future file)."""
    flat = flatten(history, model.calendar_cycles_, model.horizon)
    known = len(model.known_columns_)
    ends = flat.offsets + history.lengths()  # the first future row of every series
    if known:
        for end in ends:
            flat.values[end:end + model.horizon, -known:] = flat.values[end - 1, -known:]
    starts = starts_of(flat, np.arange(len(history.ids)), history.lengths(), model.lookback)
    targets = len(model.target_columns_)
    return gather(flat, starts, model.lookback, model.horizon, targets + len(model.past_columns_), targets)[:3]
