"""The known covariates over the forecast's horizon: from a future file (the CLI's --future) or from the
service's rows after the history.

A known covariate is a value known ahead (planned production, the shift plan, holidays); the model learnt how
it moves the targets, so every forecast step needs it. A missing one is refused, naming the covariate and the
first time that lacks it, never filled: a guessed plan is a wrong forecast that looks right.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shopfloor.errors import BadColumn, BadOption, ColumnMissing
from shopfloor.tasks.forecast.history import SeriesHistory, numbers, read_times, series_ids


def read_future(model, history: SeriesHistory, future) -> list[np.ndarray]:
    """[horizon, known] per series of `history`, from `future` (a file or table with the time column, the series
    column and the known covariates over the next `horizon` steps of every series)."""
    from shopfloor.tasks.base import as_frame

    names = ", ".join(model.known_columns_)
    if future is None:
        raise BadOption(f"the model uses the known covariate(s) {names}: give their values for the next "
                        f"{model.horizon} steps of every series with --future FILE (future= in Python)")
    frame, source = as_frame(future)
    source = source if source == "the data" else str(source).rsplit("/", 1)[-1]
    for column in [model.time_column_, *([model.series_column_] if model.series_column_ else [])]:
        if column not in frame.columns:
            raise ColumnMissing(f"the future file {source} lacks the column '{column}'; it needs the time"
                                f"{', series' if model.series_column_ else ''} and known covariate columns")
    seconds, _, _ = read_times(frame[model.time_column_], model.time_column_, source, model.new_data_date_order())
    ids = series_ids(frame[model.series_column_]) if model.series_column_ \
        else np.full(len(frame), "(all)", object)
    values = {c: numbers(frame[c], c, source, "known covariate") for c in model.known_columns_ if c in frame.columns}
    out = []
    for i, name in enumerate(history.ids):
        wanted = history.seconds[i][-1] + model.step_ * np.arange(1, model.horizon + 1)
        rows = np.flatnonzero(ids == str(name))
        slot = {round(float(t) / model.step_): r for t, r in zip(seconds[rows], rows, strict=True)}
        block = np.full((model.horizon, len(model.known_columns_)), np.nan)
        for h, t in enumerate(wanted):
            r = slot.get(round(float(t) / model.step_))
            if r is not None:
                block[h] = [values[c][r] if c in values else np.nan for c in model.known_columns_]
        missing = np.isnan(block)
        if missing.any():
            h, k = map(int, np.argwhere(missing)[0])
            who = f" for series {name}" if model.series_column_ else ""
            raise ColumnMissing(f"known covariate '{model.known_columns_[k]}' has no value{who} at "
                                f"{history.stamp(wanted[h])} in {source} (the first step of the forecast that "
                                f"lacks it); give the known covariates for all {model.horizon} next steps")
        out.append(block)
    return out


def split_records(model, rows: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The service's rows as (history, future): rows with no target value at all are no history; for a model with
    known covariates they are the future (their values over the steps to forecast), for the others they are
    passed over (a forecast always starts after a series' last row with a target)."""
    if not rows:
        raise BadColumn("no rows: send the recent history of every series to forecast")
    frame = pd.DataFrame(rows)
    for column in [model.time_column_, *([model.series_column_] if model.series_column_ else []),
                   *model.target_columns_]:
        if column not in frame.columns:
            raise ColumnMissing(f"the rows lack '{column}'; a forecast needs the time"
                                f"{', series' if model.series_column_ else ''} and target columns of the history")
    empty = frame[model.target_columns_].isna().all(axis=1)  # a row with no target value is no history
    future = frame[empty].reset_index(drop=True) if model.known_columns_ else None
    return frame[~empty].reset_index(drop=True), future
