"""Series histories for forecasting: one or many series of a time column, targets and covariates, on a regular grid.

What plant and ERP exports really hold, and what becomes of it here:
- many series in one table (`series` column: a line, a machine, a part number), of different lengths and start
  dates: each series keeps its own stamps;
- the frequency is inferred once (the median step between consecutive rows of a series) and stored in the
  model; a row that falls between two steps of that grid (a 09:17 among hourly rows) is an irregular step and
  refused, naming the rows: which value belongs to 09:00 is the user's call, not ours;
- missing stamps (a step of two or more) and missing values: put on the grid and filled, targets and
  covariates alike; at training by linear interpolation between the neighbours, at prediction and in backtests
  by carrying the last value forward (a forecast may use only what came before it). The filled target steps are
  flagged (`SeriesHistory.flagged`): the model never learns to forecast them. The count is said in a warning;
- a target with text: refused, naming the column and the row; a series with no target value at all: refused;
- two rows of one series at one stamp: refused, naming the rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shopfloor.data.tables import column_name, column_names, did_you_mean
from shopfloor.data.times import parse_times
from shopfloor.errors import BadColumn, BadOption, ColumnMissing, DataFileError, warn

OFF_GRID = 0.05  # a step this far (in steps) from a whole number of steps is irregular


@dataclass
class SeriesHistory:
    """Every series of a file on its grid: values [steps, targets + past + known] and the flags of filled targets."""

    source: str
    time: str
    series_column: str | None
    targets: list[str]
    past: list[str]
    known: list[str]
    ids: list  # the series' ids, in order of first appearance (["(all)"] without a series column)
    seconds: list[np.ndarray]  # float64 per series: seconds since 1970 for stamps, the numbers otherwise
    values: list[np.ndarray]  # float64 [steps, columns] per series, filled
    flagged: list[np.ndarray]  # bool [steps] per series: a target value there was filled, not read
    step: float
    stamped: bool  # the time column holds dates (not plain numbers)
    time_order: str | None = None
    filled: dict = field(default_factory=dict)  # {"stamps": n, "values": n}: what was filled

    @property
    def columns(self) -> list[str]:
        return [*self.targets, *self.past, *self.known]

    def lengths(self) -> np.ndarray:
        return np.fromiter(map(len, self.values), dtype=np.int64, count=len(self.values))

    def stamp(self, seconds) -> object:
        """A grid time as the answers write it: a time stamp, or the number itself."""
        if not self.stamped:
            return seconds
        if not np.ndim(seconds):
            return pd.Timestamp(int(round(float(seconds) * 1e9)))
        # each distinct time converted once: 1,000 series' forecasts share their 24 future times
        distinct, where = np.unique(np.asarray(seconds), return_inverse=True)
        return pd.to_datetime(distinct * 1e9, unit="ns")[where.reshape(-1)]


def read_series(data, *, time: str, targets: list[str], series: str | None = None, known=(), past=None,
                step: float | None = None, fill: str = "linear", date_order: str = "auto") -> SeriesHistory:
    """Read a CSV/Parquet file or a DataFrame into series on a regular grid.

    `past` (the model's, at prediction) lists the past-only covariates; without it every other numeric column is
    one. `step` (the model's) puts new data on the training grid; without it the step is inferred. `fill` is
    'linear' (training) or 'carry' (prediction and backtests: only earlier values fill a gap).
    """
    from shopfloor.tasks.base import as_frame

    frame, source = as_frame(data)
    source = source if source == "the data" else os.path.basename(source)
    if frame.empty:
        raise DataFileError(f"{source} has no rows")
    time, series = column_name(time), None if series is None else column_name(series)
    targets, known = column_names(targets), column_names(known)
    if not targets:
        raise BadOption("name at least one target column to forecast (--target COL)")
    named = [("time", [time]), ("series", [series] if series else []), ("target", targets), ("known", known),
             ("past covariate", list(past or []))]
    for role, names in named:
        for name in names:
            if name not in frame.columns:
                raise ColumnMissing(f"the {role} column '{name}' is not in {source} (columns found: "
                                    f"{', '.join(map(str, frame.columns))}){did_you_mean(name, frame.columns)}")
    roles = [c for c in (time, series, *targets, *known) if c]
    if len(set(roles)) < len(roles):
        raise BadOption(f"a column of {source} is named twice among time, series, targets and known covariates; "
                        "give each column one role")
    if past is None:
        past = _past_covariates(frame, roles, source)
    columns = [*targets, *past, *known]
    values = np.column_stack([numbers(frame[c], c, source, "target" if c in targets else "covariate")
                              for c in columns])
    seconds, stamped, order = read_times(frame[time], time, source, date_order)
    names, groups = series_groups(frame[series], source) if series else (["(all)"], [np.arange(len(frame))])
    if step is None:
        step = infer_step(seconds, groups, time, source)
    history = SeriesHistory(source, time, series, targets, list(past), known, names, [], [], [],
                            float(step), stamped, order)
    stats = {"stamps": 0, "values": 0}
    if not _add_clean(history, groups, seconds, values):
        for rows in groups:
            _add_series(history, rows, seconds, values, frame, fill, stats)
    history.filled = stats
    if stats["stamps"] or stats["values"]:
        how = "interpolated linearly" if fill == "linear" else "carried forward from the last reading"
        warn(f"{source}: filled {stats['stamps']} missing time stamp(s) and {stats['values']} missing value(s) "
             f"({how}); filled target steps are flagged and never scored in training")
    return history


def _past_covariates(frame: pd.DataFrame, roles: list[str], source: str) -> list[str]:
    """Every other numeric column; text columns are left out with a warning."""
    past, ignored = [], []
    for name in frame.columns:
        if name in roles:
            continue
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            past.append(name)
        else:
            ignored.append(name)
    if ignored:
        warn(f"ignored {len(ignored)} non-numeric column(s) of {source}: {', '.join(map(repr, ignored))}")
    return past


def numbers(column: pd.Series, name: str, source: str, role: str) -> np.ndarray:
    """A column as float64 (NaN where empty); text is refused, naming the column and the row."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column.to_numpy(np.float64)
    text = column.astype("string").str.strip()
    values = pd.to_numeric(text, errors="coerce")
    bad = (values.isna() & text.notna() & (text != "")).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise BadColumn(f"{role} '{name}' of {source} holds text at row {row + 1}: {str(column.iloc[row])!r}; "
                        "a forecast needs numbers there (fix the value, or leave it empty to have it filled)")
    return values.to_numpy(np.float64, na_value=np.nan)


def read_times(column: pd.Series, name: str, source: str, date_order: str) -> tuple[np.ndarray, bool, str | None]:
    if column.isna().any():
        raise BadColumn(f"row {int(np.argmax(column.isna().to_numpy())) + 1} of {source} has no {name}; "
                        "every row needs its time")
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.to_numpy(np.float64), False, None
    stamps, order = parse_times(column, name, source, date_order)
    return stamps.to_numpy(dtype="datetime64[ns]").astype("int64") / 1e9, True, order


def series_ids(column: pd.Series) -> np.ndarray:
    """Every row's series id as text without stray spaces (each distinct value is converted once)."""
    codes, uniques = pd.factorize(column, sort=False)
    names = np.array([str(u).strip() for u in uniques], dtype=object)
    return names[codes]


def series_groups(column: pd.Series, source: str) -> tuple[list, list[np.ndarray]]:
    """Every series' id (as `series_ids` writes it, in order of first appearance) and its rows. The column is
    factorised once and only its distinct values are stripped: 1,000 series of 200 rows are grouped in
    milliseconds, the price of every `predict` of the service."""
    codes, uniques = pd.factorize(column, sort=False)
    if (codes < 0).any():  # factorize marks an empty cell -1: no second pass over the column to find them
        raise BadColumn(f"row {int(np.argmax(codes < 0)) + 1} of {source} has no {column.name}; "
                        "every row needs its series")
    stripped = np.array([str(u).strip() for u in uniques], dtype=object)
    merged, names = pd.factorize(stripped, sort=False)  # ' a' and 'a' are one series
    codes = merged[codes]
    order = np.argsort(codes, kind="stable")
    return list(names), split_at(order, np.flatnonzero(np.diff(codes[order])) + 1)


def split_at(values: np.ndarray, bounds: np.ndarray) -> list[np.ndarray]:
    """`np.split` by plain slicing (views as there): np.split costs tens of microseconds a piece."""
    edges = [0, *bounds.tolist(), len(values)]
    return [values[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]


def infer_step(seconds: np.ndarray, groups: list[np.ndarray], time: str, source: str) -> float:
    """The usual time between consecutive rows of a series (the median over every series)."""
    steps = np.concatenate([np.diff(np.sort(seconds[rows])) for rows in groups])
    steps = steps[steps > 0]
    if not len(steps):
        raise BadColumn(f"the time column '{time}' of {source} never moves forward; a series needs rows at "
                        "different times")
    return float(np.median(steps))


def step_words(step: float, stamped: bool) -> str:
    """'1 h', '15 min', '1 day', '7 days' for stamps; the number itself (in the time column's units) otherwise."""
    if not stamped:
        return f"{step:g}"
    for unit, seconds in (("day", 86_400), ("h", 3_600), ("min", 60)):
        if step >= seconds and step % seconds == 0:
            count = int(step // seconds)
            return f"{count} {unit}{'s' if unit == 'day' and count > 1 else ''}"
    return f"{step:g} s"


def _add_clean(history: SeriesHistory, groups: list[np.ndarray], seconds: np.ndarray, values: np.ndarray) -> bool:
    """Every series at once when the data is clean (every value there, one row per step, no gap): a service
    request of 1,000 series' recent rows is read in milliseconds. False (nothing added) otherwise: the series are
    then read one by one, which fills the gaps and names what is wrong."""
    if np.isnan(values).any():
        return False
    order = np.concatenate(groups)
    t = seconds[order]
    lengths = np.array([len(g) for g in groups])
    starts = np.cumsum(lengths) - lengths
    first = np.repeat(t[starts], lengths)
    expected = (np.arange(len(t)) - np.repeat(starts, lengths)) * history.step
    if not np.allclose(t - first, expected, rtol=0, atol=OFF_GRID * history.step):
        return False  # out of order, a gap, an irregular step or two rows at one time: read one by one
    bounds = np.cumsum(lengths)[:-1]
    history.values = split_at(values[order], bounds)
    history.seconds = split_at(first + expected, bounds)  # the grid's own times (a stamp may be off by < 5 %)
    history.flagged = [np.zeros(n, bool) for n in lengths]
    return True


def _add_series(history: SeriesHistory, rows: np.ndarray, seconds: np.ndarray, values: np.ndarray,
                frame: pd.DataFrame, fill: str, stats: dict) -> None:
    order = rows[np.argsort(seconds[rows], kind="stable")]
    t = seconds[order]
    name = history.ids[len(history.values)]
    who = f"series {name} " if history.series_column else ""
    twice = np.flatnonzero(np.diff(t) == 0)
    if len(twice):
        a, b = sorted((int(order[twice[0]]), int(order[twice[0] + 1])))
        raise BadColumn(f"{who}has two rows at {history.time} {frame[history.time].iloc[a]} in {history.source} "
                        f"(rows {a + 1} and {b + 1}); each time needs one row per series")
    position = (t - t[0]) / history.step
    slot = np.rint(position).astype(np.int64)
    off = np.flatnonzero(np.abs(position - slot) > OFF_GRID)
    if len(off):
        listed = ", ".join(f"{int(order[i]) + 1} ({frame[history.time].iloc[int(order[i])]})" for i in off[:5])
        raise BadColumn(f"{who}of {history.source} has irregular time steps: row(s) {listed}"
                        f"{f' and {len(off) - 5} more' if len(off) > 5 else ''} fall between steps of the "
                        f"inferred frequency ({step_words(history.step, history.stamped)}); resample the data to "
                        "one row per step, or fix those rows")
    grid = np.full((int(slot[-1]) + 1, values.shape[1]), np.nan)
    grid[slot] = values[order]
    stats["stamps"] += len(grid) - len(slot)
    n_targets = len(history.targets)
    missing = np.isnan(grid)
    if missing[:, :n_targets].all(axis=0).any():
        column = history.targets[int(np.argmax(missing[:, :n_targets].all(axis=0)))]
        raise BadColumn(f"{who}of {history.source} has no value of target '{column}' at all; "
                        "drop the series or give its values")
    if missing.any():
        read = np.zeros(len(grid), bool)
        read[slot] = True
        stats["values"] += int(missing[read].sum())
    history.flagged.append(missing[:, :n_targets].any(axis=1))
    history.values.append(fill_gaps(grid, fill))
    history.seconds.append(t[0] + np.arange(len(grid)) * history.step)


def fill_gaps(grid: np.ndarray, fill: str) -> np.ndarray:
    """Linear interpolation ('linear') or the last value carried forward ('carry'); the ends take the nearest
    value, a column with no value at all 0 (covariates only: a target without values is refused before)."""
    if not np.isnan(grid).any():
        return grid
    frame = pd.DataFrame(grid)
    frame = frame.interpolate(limit_area="inside") if fill == "linear" else frame.ffill()
    return frame.ffill().bfill().fillna(0.0).to_numpy(np.float64)
