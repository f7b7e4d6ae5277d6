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


def flatten(history: SeriesHistory, cycles: list[str]) -> Flat:
    lengths = history.lengths()
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    values = np.concatenate(history.values).astype(np.float32)
    calendar = calendar_features(np.concatenate(history.seconds), cycles)
    return Flat(torch.from_numpy(values), torch.from_numpy(calendar), offsets, lengths)


def starts_of(flat: Flat, series: np.ndarray, origins: np.ndarray, lookback: int) -> torch.Tensor:
    """The flat row where each window (the series' position in the history, its origin) begins."""
    return torch.as_tensor(flat.offsets[series] + origins - lookback, dtype=torch.long)


def gather(flat: Flat, starts: torch.Tensor, lookback: int, horizon: int, ends: int, targets: int):
    """(history, known_history, known_future, actual) of the windows beginning at `starts`, in plant units:
    `ends` is where the past columns end (targets + past)."""
    rows = starts[:, None] + torch.arange(lookback + horizon)
    block = flat.values[rows]
    known = torch.cat([flat.calendar[rows], block[..., ends:]], dim=-1)
    return block[:, :lookback, :ends], known[:, :lookback], known[:, lookback:], block[:, lookback:, :targets]


def extend(history: SeriesHistory, horizon: int, known_future: list[np.ndarray] | None) -> SeriesHistory:
    """The history with `horizon` future steps after every series' last row: the known covariates' values there
    (`known_future[i]`, [horizon, known]), NaN elsewhere. A forecast from the end is then a window whose origin
    is the old end."""
    from dataclasses import replace

    values, seconds = [], []
    for i, (v, t) in enumerate(zip(history.values, history.seconds, strict=True)):
        future = np.full((horizon, v.shape[1]), np.nan)
        if known_future is not None and history.known:
            future[:, v.shape[1] - len(history.known):] = known_future[i]
        values.append(np.concatenate([v, future]))
        seconds.append(np.concatenate([t, t[-1] + history.step * np.arange(1, horizon + 1)]))
    return replace(history, values=values, seconds=seconds)


def spread_evenly(count: int, limit: int) -> np.ndarray:
    """At most `limit` of `count` positions, evenly spread (all of them when there are few enough)."""
    if count <= limit:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(np.int64))


def last_windows(model, history: SeriesHistory):
    """(history, known_history, known_future) in plant units of the window ending at every series' last row, a
    known covariate's future taken as its last value (explanations and the ONNX check take no future file)."""
    flat = flatten(extend(history, model.horizon, None), model.calendar_cycles_)
    known = len(model.known_columns_)
    ends = flat.offsets + history.lengths()
    if known:
        for end in ends:
            flat.values[end:end + model.horizon, -known:] = flat.values[end - 1, -known:]
    starts = starts_of(flat, np.arange(len(history.ids)), history.lengths(), model.lookback)
    targets = len(model.target_columns_)
    return gather(flat, starts, model.lookback, model.horizon, targets + len(model.past_columns_), targets)[:3]
