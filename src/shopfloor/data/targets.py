"""What is being predicted: checking target columns, inferring the task, encoding labels.

Shared by fitting, evaluation and the report, so that a label means the same everywhere.
"""

from __future__ import annotations

import math
import re
from functools import reduce

import numpy as np
import pandas as pd

from shopfloor.data.tables import did_you_mean
from shopfloor.errors import BadTarget, ColumnMissing, warn

MIN_ROWS = 10
# How an integer target is read (`read_integer_target`). Plant targets with integer values are of
# three kinds: codes (fault 101/205/340, cooler 3/20/100 %: uneven values, each repeated), small
# ordered levels (grade 1-5, pump leakage 0/1/2: a few evenly spaced values) and counts or amounts
# (defects per batch, minutes of overtime: many evenly spaced values). The column's name says which
# more often than any cutoff on the number of levels; the values decide only where it says nothing.
FEW_LEVELS = 10  # at most this many evenly spaced levels read as classes (grades, severities)
MAX_CODES = 50  # at most this many unevenly spaced levels read as codes
MAX_NAMED_CLASSES = 200  # a column named like a code or class holds at most this many classes
MIN_REPEATS = 5  # rows per level, on average, for levels to be classes rather than measurements
CLASS_NAME = re.compile(r"code|class|type|grade|mode|fault|status|categor|label|state|kind|error|alarm"
                        r"|reason|cause|verdict|outcome", re.IGNORECASE)
COUNT_NAME = re.compile(r"count|number|quantit|qty|amount|total|cycles?(?![a-z])|hours?(?![a-z])|minutes?(?![a-z])"
                        r"|seconds?(?![a-z])|days?(?![a-z])|pieces|parts|workers|size|length|duration|time|wear"
                        r"|speed|rpm|temp|incentive|bonus|wage|price|cost"
                        r"|(?<![a-z])(n|no|nr|num|men|age|rul)(?![a-z])"  # no_of_..., n_parts, idle_men, RUL
                        r"|\[", re.IGNORECASE)  # '[min]', '[rpm]': a unit in brackets is a measurement


def plain(value):
    """numpy scalars -> Python scalars, so that classes survive JSON."""
    return value.item() if hasattr(value, "item") else value


def rows_with_targets(frame: pd.DataFrame, targets: list[str], drop: list[str], source: str) -> pd.DataFrame:
    """The rows that have every target; errors name missing columns and hopeless targets."""
    missing = [t for t in targets if t not in frame.columns]
    if missing:
        raise ColumnMissing(f"target {', '.join(repr(t) for t in missing)} is not a column of {source} "
                            f"(columns found: {', '.join(repr(c) for c in frame.columns[:15])})"
                            f"{did_you_mean(missing[0], frame.columns)}")
    unknown_drop = [c for c in drop if c not in frame.columns]
    if unknown_drop:
        raise ColumnMissing(f"--drop {', '.join(repr(c) for c in unknown_drop)}: no such column in {source}"
                            f"{did_you_mean(unknown_drop[0], frame.columns)}")
    no_target = frame[targets].isna().any(axis=1)
    if no_target.all():
        raise BadTarget(f"the target {', '.join(targets)} has no values in {source}")
    if no_target.any():
        warn(f"{int(no_target.sum())} rows of {source} have no target value and are left out of training")
        frame = frame.loc[~no_target].reset_index(drop=True)
    if len(frame) < MIN_ROWS:
        raise BadTarget(f"{source} has only {len(frame)} rows with a target; a model needs at least {MIN_ROWS}")
    return frame


def target_kind(frame: pd.DataFrame, targets: list[str], task: str = "auto") -> tuple[str, list]:
    """('binary' | 'multiclass' | 'regression', classes).

    classes: for yes/no targets one [negative, positive] pair per target; for multiclass the
    levels of the one target; for regression empty.
    """
    tasks = {t: infer_task(frame[t], task, t) for t in targets}
    if len(set(tasks.values())) > 1:
        raise BadTarget(f"targets mix classification and regression ({tasks}); train one model per kind")
    if next(iter(tasks.values())) == "regression":
        for t in targets:
            if not pd.api.types.is_numeric_dtype(frame[t]):
                raise BadTarget(f"target '{t}' is not numeric, so it cannot be a regression target")
        return "regression", []
    classes = []
    for t in targets:
        levels = sorted(frame[t].unique().tolist(), key=lambda v: (str(type(v)), v))
        if len(levels) < 2:
            raise BadTarget(f"target '{t}' has only one class ({levels[0]!r}); "
                            "the model needs examples of at least two outcomes")
        classes.append([plain(v) for v in levels])
    if len(targets) > 1:
        wide = [t for t, c in zip(targets, classes, strict=True) if len(c) != 2]
        if wide:
            raise BadTarget(f"with several targets each must be yes/no, but {wide} have more than two levels")
    if len(targets) > 1 or len(classes[0]) == 2:
        return "binary", [order_binary(c, frame[t]) for t, c in zip(targets, classes, strict=True)]
    return "multiclass", classes


def infer_task(column: pd.Series, task: str = "auto", name: str = "") -> str:
    """Text and booleans -> classification; integers as `read_integer_target` reads them; other numbers ->
    regression. An integer target whose reading could be wrong is named in a warning with the override."""
    if task != "auto":
        return task
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return "classification"
    values = column.dropna().to_numpy(dtype=float)
    if not np.all(np.mod(values, 1) == 0):
        return "regression"
    task, reason, doubtful = read_integer_target(values, name)
    if doubtful:
        levels = np.unique(values)
        shown = ", ".join(f"{v:g}" for v in levels[:6]) + (", ..." if len(levels) > 6 else "")
        treated = (f"{len(levels)} classes" if task == "classification"
                   else "a number to predict (regression)")
        other = "classification" if task == "regression" else "regression"
        warn(f"target '{name}' holds {len(levels)} integer levels ({shown}); it is treated as {treated} because "
             f"{reason}. If that is wrong, train with --task {other} (Python: task='{other}')")
    return task


def read_integer_target(values: np.ndarray, name: str = "") -> tuple[str, str, bool]:
    """(task, why, doubtful) for a target of whole numbers: codes and small ordered levels are classes,
    counts and amounts are numbers; `doubtful` when the other reading is plausible enough to say so."""
    levels = np.unique(values)
    k, repeats = len(levels), len(values) / max(len(levels), 1)
    if k <= 2:
        return "classification", "it has two levels", False
    if CLASS_NAME.search(name) and not COUNT_NAME.search(name):
        if k <= MAX_NAMED_CLASSES and repeats >= MIN_REPEATS / 2:
            return "classification", "its name says it is a code or class", k > FEW_LEVELS * 2
        return "regression", "it has too many levels with too few rows each to learn as classes", True
    if COUNT_NAME.search(name):
        return "regression", "its name says it is a count or an amount", k <= MAX_CODES and repeats >= MIN_REPEATS
    # 0,1,2,3 or 10,20,30 (a gap or two allowed) fill their grid, as a scale does; 3, 20, 100 or
    # 101, 205, 340 leave most of it empty, as codes do
    step = reduce(math.gcd, np.diff(levels).astype(np.int64).tolist())
    even = k / ((levels[-1] - levels[0]) / step + 1) >= 0.5
    if not even and k <= MAX_CODES and repeats >= MIN_REPEATS:
        return "classification", "its values are unevenly spaced and repeated, as codes are", k > FEW_LEVELS
    if even and k <= FEW_LEVELS and repeats >= MIN_REPEATS:
        counts = np.array([np.sum(values == v) for v in levels])
        count_like = levels[0] == 0 and np.all(np.diff(counts) < 0)  # 0 most often, then fewer and fewer
        return "classification", f"it has only {k} evenly spaced levels, as grades or severities do", bool(count_like)
    return "regression", "its levels are many or evenly spaced, as counts and amounts are", \
        bool(k <= MAX_CODES and repeats >= MIN_REPEATS)


def order_binary(levels: list, column: pd.Series) -> list:
    """[negative, positive]: 0/1 and False/True as usual, otherwise the rarer level is 'positive'."""
    if set(map(str, levels)) in ({"0", "1"}, {"False", "True"}, {"0.0", "1.0"}):
        return levels
    counts = column.map(plain).value_counts()
    return sorted(levels, key=lambda v: -counts.get(v, 0))


def encode_labels(frame: pd.DataFrame, targets: list[str], kind: str, classes: list) -> np.ndarray:
    """Labels as numbers: yes/no -> float 0/1 [N, targets]; multiclass -> class index [N]
    (-1 for a level the model never saw); regression -> float64 values [N, targets]."""
    if kind == "regression":
        return frame[targets].to_numpy(dtype=np.float64)
    if kind == "multiclass":
        lookup = {v: i for i, v in enumerate(classes[0])}
        return np.array(frame[targets[0]].map(lambda v: lookup.get(plain(v), -1)).to_numpy(), dtype=np.int64)
    columns = [frame[t].map(plain).eq(c[1]).to_numpy() for t, c in zip(targets, classes, strict=True)]
    return np.stack(columns, axis=1).astype(np.float32)
