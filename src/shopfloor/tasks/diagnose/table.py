"""Recordings from a long table: one row per time step, the fault type of that step in a label column.

`run` names the recording each row belongs to (a load cycle, a test): by default a run holds one fault type,
and a run whose rows carry two is refused naming it, since a run's windows are scored together; with
`mixed_runs` (or without a run column) every stretch of one label becomes a recording of its own, still
grouped by its run (or machine) when the data is split. Every other numeric column is a channel unless
`channels` names them. The sample rate is the median step of the time column (seconds for time stamps);
a `rate` given as well must agree with it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shopfloor.data.tables import did_you_mean
from shopfloor.errors import BadColumn, BadOption, BadTarget, ColumnMissing
from shopfloor.tasks.diagnose.signals import Recording


def read_long_table(data, *, time: str, label: str | None, run: str | None = None, machine: str | None = None,
                    channels: list[str] | None = None, rate: float | None = None,
                    mixed_runs: bool = False) -> tuple[list[Recording], bool]:
    """Recordings of the table and whether they are labelled (`label` given and present)."""
    from shopfloor.tasks.base import as_frame

    frame, source = as_frame(data)
    for name in (time, run, machine, *(channels or [])):
        if name and name not in frame.columns:
            raise ColumnMissing(f"'{name}' is not a column of {source}{did_you_mean(name, frame.columns)}")
    labelled = bool(label) and label in frame.columns
    keys = [c for c in (time, label, run, machine) if c]
    names = channels or [c for c in frame.columns if c not in keys and pd.api.types.is_numeric_dtype(frame[c])]
    if not names:
        raise BadColumn(f"{source} has no numeric channel column besides {', '.join(keys)}")
    text = [c for c in names if not pd.api.types.is_numeric_dtype(frame[c])]
    if text:
        raise BadColumn(f"column(s) {', '.join(map(repr, text))} of {source} hold text, not samples")
    if labelled and frame[label].isna().any():
        row = int(np.flatnonzero(frame[label].isna().to_numpy())[0])
        raise BadTarget(f"{source} has no '{label}' on row {row + 2}; every time step needs its fault type")
    seconds = _seconds(frame[time], time, source)
    frame = frame.assign(_seconds=seconds)
    groups = [c for c in (machine, run) if c]
    step = _median_step(frame, groups, time, source)
    own = 1.0 / step
    if rate is not None and abs(rate - own) > 0.01 * own:
        raise BadOption(f"the time column '{time}' of {source} steps {step:g} s ({own:g} Hz), but --rate {rate:g} was given; "
                        "leave --rate out for a long table (or fix the time column)")
    recordings = []
    for key, rows in (frame.groupby(groups, sort=False, dropna=False) if groups else [((), frame)]):
        rows = rows.sort_values("_seconds", kind="stable")
        owner = "/".join(map(str, key if isinstance(key, tuple) else (key,))) or "all"
        recordings += _recordings(rows, names, owner, label if labelled else None, run, mixed_runs, own, source)
    return recordings, labelled


def _recordings(rows: pd.DataFrame, names: list[str], owner: str, label: str | None, run: str | None, mixed_runs: bool,
                rate: float, source: str) -> list[Recording]:
    values = rows[names].to_numpy(np.float64)
    if not np.isfinite(values).all():
        raise BadColumn(f"run '{owner}' of {source} has missing or infinite samples; fill or cut them first")
    if label is None:
        return [Recording(name=owner, values=values.T.astype(np.float32), rate=rate, channels=list(names), run=owner,
                          start=0.0, source=f"{source}, run {owner}")]
    labels = rows[label].astype(str).to_numpy()
    if run and not mixed_runs and len(set(labels)) > 1:
        raise BadTarget(f"run '{owner}' of {source} holds more than one '{label}' ({', '.join(sorted(set(labels))[:4])}); "
                        "a run holds one fault type, or say that runs change type with --mixed-runs")
    cuts = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    edges = [0, *cuts.tolist(), len(labels)]
    out = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        piece = owner if len(edges) == 2 else f"{owner}@{a}"
        out.append(Recording(name=piece, values=values[a:b].T.astype(np.float32), rate=rate, channels=list(names),
                             label=labels[a], run=owner, start=a / rate, source=f"{source}, run {piece}"))
    return out


def _seconds(column: pd.Series, name: str, source: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(np.float64)
    else:
        from shopfloor.data.times import parse_times

        stamps = parse_times(column, name, source)
        values = (stamps - stamps.min()).dt.total_seconds().to_numpy(np.float64)
    if not np.isfinite(values).all():
        raise BadColumn(f"the time column '{name}' of {source} has missing values")
    return values


def _median_step(frame: pd.DataFrame, groups: list[str], time: str, source: str) -> float:
    ordered = frame.sort_values([*groups, "_seconds"], kind="stable")
    steps = np.diff(ordered["_seconds"].to_numpy())
    if groups:
        same = np.ones(len(steps), bool)
        for column in groups:
            keys = ordered[column].to_numpy()
            same &= keys[1:] == keys[:-1]
        steps = steps[same]
    steps = steps[steps > 0]
    if not len(steps):
        raise BadColumn(f"the time column '{time}' of {source} never moves forward within a run")
    return float(np.median(steps))
