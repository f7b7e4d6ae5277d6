"""Sensor histories from a plant historian: one row per time step (per machine), numeric sensors.

What historians really hold, and what becomes of it here:
- irregular sampling: every machine's rows are put on a grid of the median step (`step`); a row
  lands in the nearest slot, a missing slot takes the reading before it, and a gap longer than
  `max_gap` steps ends a segment (windows never bridge it: what happened in between is unknown);
- two rows of one machine at one time stamp: refused, naming the stamp (which reading is right?);
- missing readings (NaN runs): the last reading is carried forward within a segment, then the first
  one backward; a sensor with no reading in a whole segment takes its training mean;
- text in a sensor column: refused naming the column and the row; a column that is mostly text is
  no sensor at all and is ignored with a warning;
- the rows keep their order: every answer has one row per input row, whatever the grid did.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shopfloor.data.tables import column_name, column_names, did_you_mean
from shopfloor.data.times import parse_times
from shopfloor.errors import BadColumn, BadOption, ColumnMissing, DataFileError, warn

MOSTLY_NUMBERS = 0.9  # an object column whose values are at least this share numbers is a sensor with typos


@dataclass
class SensorHistory:
    """The readings of a file or table, in its own row order."""

    source: str
    time: str  # the time column's name
    stamps: pd.Series  # the time column as read (time stamps or numbers), for the answers
    seconds: np.ndarray  # the same as float64: seconds since 1970 for stamps, the numbers themselves otherwise
    machine: str | None
    machines: np.ndarray | None  # machine id of every row
    sensors: list[str]
    values: np.ndarray  # float64 [rows, sensors], NaN where missing
    label: np.ndarray | None  # 0/1 per row when a label column was named
    time_order: str | None = None

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class Grid:
    """Readings on a regular grid: segments of consecutive slots, each input row pointing at its slot."""

    values: np.ndarray  # float64 [slots, sensors], gaps filled
    starts: np.ndarray  # first slot of every segment
    lengths: np.ndarray  # slots in every segment
    row_slot: np.ndarray  # the slot of every input row
    machine_of_segment: list  # machine id of every segment (None without a machine column)

    def segments(self):
        for start, length in zip(self.starts.tolist(), self.lengths.tolist(), strict=True):
            yield slice(start, start + length)


def read_history(data, time: str | None, machine: str | None = None, drop=(), label: str | None = None,
                 sensors: list[str] | None = None, ignore=(), date_order: str = "auto") -> SensorHistory:
    """Read a CSV/Parquet file or a DataFrame. `sensors` (at prediction) are the model's sensors: each must be
    there, and any other numeric column is ignored with a warning; without it every numeric column other than
    time, machine, label and `drop` is a sensor. Columns in `ignore` are passed over without a word when present
    (the training label, dropped columns)."""
    from shopfloor.tasks.base import as_frame

    frame, source = as_frame(data)
    source = source if source == "the data" else os.path.basename(source)
    if frame.empty:
        raise DataFileError(f"{source} has no rows")
    if not time:
        raise BadOption(f"name the time column of {source} (--time COL, time='COL' in Python); "
                        f"columns found: {_names(frame)}")
    time, machine, label = (None if n is None else column_name(n) for n in (time, machine, label))
    drop = column_names(drop)
    for role, names in [("time", [time]), ("machine", [machine] if machine else []),
                        ("label", [label] if label else []), ("dropped", drop)]:
        for name in names:
            if name not in frame.columns:
                raise ColumnMissing(f"the {role} column '{name}' is not in {source} "
                                    f"(columns found: {_names(frame)}){did_you_mean(name, frame.columns)}")
    roles = [c for c in (time, machine, label, *drop) if c]
    if len(set(roles)) < len(roles):
        raise BadOption(f"a column of {source} is named twice among time, machine, label and --drop; "
                        "give each column one role")
    roles += [c for c in column_names(ignore) if c in frame.columns and c not in roles and c not in (sensors or [])]
    if sensors is None:
        sensors = _find_sensors(frame, [c for c in frame.columns if c not in roles], source)
    else:
        sensors = _model_sensors(frame, sensors, roles, source)
    values = np.column_stack([_numbers(frame[s], s, source) for s in sensors])
    stamps, seconds, order = _times(frame[time], time, source, date_order)
    machines = None
    if machine:
        ids = frame[machine]
        if ids.isna().any():
            raise BadColumn(f"row {int(np.argmax(ids.isna().to_numpy())) + 1} of {source} has no {machine}; "
                            "every row needs its machine")
        machines = ids.astype(str).to_numpy() if not pd.api.types.is_numeric_dtype(ids) else ids.to_numpy()
    return SensorHistory(source, time, stamps, seconds, machine, machines, sensors, values,
                         _labels(frame[label], label, source) if label else None, order)


def _find_sensors(frame: pd.DataFrame, candidates: list[str], source: str) -> list[str]:
    sensors, ignored = [], []
    for name in candidates:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column):
            ignored.append(name)
        elif pd.api.types.is_numeric_dtype(column):
            sensors.append(name)
        elif _number_share(column) >= MOSTLY_NUMBERS:
            sensors.append(name)  # a sensor with a typo: `_numbers` names the row
        else:
            ignored.append(name)
    if ignored:
        warn(f"ignored {len(ignored)} non-numeric column(s) of {source}: {', '.join(map(repr, ignored))}")
    if not sensors:
        raise BadColumn(f"{source} has no numeric sensor column besides the time, machine and label columns "
                        f"(columns found: {_names(frame)})")
    return sensors


def _model_sensors(frame: pd.DataFrame, sensors: list[str], roles: list[str], source: str) -> list[str]:
    missing = [s for s in sensors if s not in frame.columns]
    if missing:
        raise ColumnMissing(f"sensor '{missing[0]}' is in the model but not in {source}"
                            + (f" ({len(missing)} sensors missing: {', '.join(map(repr, missing))})" if len(missing) > 1 else "")
                            + f"{did_you_mean(missing[0], frame.columns)}; the model needs every sensor it learnt")
    extra = [c for c in frame.columns if c not in sensors and c not in roles and pd.api.types.is_numeric_dtype(frame[c])]
    if extra:
        warn(f"{source} has {len(extra)} numeric column(s) the model did not learn, ignored: {', '.join(map(repr, extra))}")
    return list(sensors)


def _number_share(column: pd.Series) -> float:
    present = column.dropna()
    if present.empty:
        return 0.0
    return float(pd.to_numeric(present.astype(str).str.strip(), errors="coerce").notna().mean())


def _numbers(column: pd.Series, name: str, source: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column):
        return column.to_numpy(np.float64)
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(np.float64)
    text = column.astype("string").str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    bad = (numbers.isna() & text.notna() & (text != "")).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise BadColumn(f"sensor '{name}' of {source} holds text at row {row + 1}: {str(column.iloc[row])!r}; "
                        "sensors must be numbers (fix the value, or drop the column with --drop)")
    return numbers.to_numpy(np.float64, na_value=np.nan)


def _times(column: pd.Series, name: str, source: str, date_order: str):
    """The time column as given and as float64 (seconds since 1970 for stamps, plain numbers otherwise)."""
    if column.isna().any():
        raise BadColumn(f"row {int(np.argmax(column.isna().to_numpy())) + 1} of {source} has no {name}; "
                        "every row needs its time")
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column, column.to_numpy(np.float64), None
    stamps, order = parse_times(column, name, source, date_order)
    seconds = stamps.to_numpy(dtype="datetime64[ns]").astype("int64") / 1e9
    return stamps, seconds, order


def _labels(column: pd.Series, name: str, source: str) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce")
    bad = ~values.isin([0, 1]).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise BadColumn(f"label column '{name}' of {source} must hold 0 (normal) or 1 (anomaly); "
                        f"row {row + 1} has {column.iloc[row]!r}")
    return values.to_numpy(np.int64)


def median_step(history: SensorHistory) -> float:
    """The usual time between two readings of one machine."""
    steps = []
    for rows in machine_rows(history):
        t = np.sort(history.seconds[rows])
        steps.append(np.diff(t))
    steps = np.concatenate(steps) if steps else np.array([])
    steps = steps[steps > 0]
    if not len(steps):
        raise BadColumn(f"the time column '{history.time}' of {history.source} never moves forward; "
                        "a sensor history needs readings at different times")
    return float(np.median(steps))


def to_grid(history: SensorHistory, step: float, max_gap: int, fill: np.ndarray) -> Grid:
    """Every machine's rows on a grid of `step`, cut into segments at gaps longer than `max_gap` steps."""
    slot_values, starts, lengths, owners = [], [], [], []
    row_slot = np.empty(len(history), dtype=np.int64)
    offset = 0
    for rows in machine_rows(history):
        order = rows[np.argsort(history.seconds[rows], kind="stable")]
        t = history.seconds[order]
        _check_duplicates(history, order, t)
        slot = np.rint((t - t[0]) / step).astype(np.int64)
        breaks = np.flatnonzero(np.diff(slot) > max_gap) + 1
        owner = None if history.machines is None else history.machines[order[0]]
        for piece in np.split(np.arange(len(order)), breaks):
            local = slot[piece] - slot[piece[0]]
            length = int(local[-1]) + 1
            block = np.full((length, history.values.shape[1]), np.nan)
            block[local] = history.values[order[piece]]  # two rows in one slot: the later one stays
            row_slot[order[piece]] = offset + local
            slot_values.append(block)
            starts.append(offset)
            lengths.append(length)
            owners.append(owner)
            offset += length
    values = _fill(np.concatenate(slot_values), np.array(starts), np.array(lengths), fill)
    return Grid(values, np.array(starts, dtype=np.int64), np.array(lengths, dtype=np.int64), row_slot, owners)


def machine_rows(history: SensorHistory):
    """Row numbers of every machine (all rows without a machine column), in file order."""
    if history.machines is None:
        yield np.arange(len(history))
        return
    codes, _ = pd.factorize(history.machines, sort=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    yield from np.split(order, bounds)


def _check_duplicates(history: SensorHistory, order: np.ndarray, t: np.ndarray) -> None:
    twice = np.flatnonzero(np.diff(t) == 0)
    if not len(twice):
        return
    first, second = sorted((int(order[twice[0]]), int(order[twice[0] + 1])))
    who = "" if history.machines is None else f"machine {history.machines[first]} "
    raise BadColumn(f"{who}has two rows at {history.time} {history.stamps.iloc[first]} in {history.source} "
                    f"(rows {first + 1} and {second + 1}{f'; {len(twice)} stamps in all' if len(twice) > 1 else ''}); "
                    "each time stamp needs one row per machine")


def _fill(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Carry the last reading forward within each segment, then the first backward; the rest takes `fill`."""
    if not np.isnan(values).any():
        return values
    segment = np.repeat(np.arange(len(starts)), lengths)
    frame = pd.DataFrame(values)
    frame = frame.groupby(segment, sort=False).ffill().groupby(segment, sort=False).bfill()
    out = frame.to_numpy(np.float64, copy=True)
    missing = np.isnan(out)
    out[missing] = np.broadcast_to(fill, out.shape)[missing]
    return out


def _names(frame: pd.DataFrame, limit: int = 12) -> str:
    names = [str(c) for c in frame.columns]
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")
