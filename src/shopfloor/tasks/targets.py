"""What is being predicted: checking target columns, inferring the task, encoding labels.

Shared by fitting, evaluation and the report, so that a label means the same everywhere.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shopfloor.data.tables import did_you_mean, warn
from shopfloor.errors import BadTarget, ColumnMissing

MAX_CLASS_LEVELS = 20  # an integer target with at most this many levels is a class label
MIN_ROWS = 10


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
    tasks = {t: infer_task(frame[t], task) for t in targets}
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


def infer_task(column: pd.Series, task: str = "auto") -> str:
    """Text, booleans or few integer levels -> classification; other numbers -> regression."""
    if task != "auto":
        return task
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return "classification"
    values = column.dropna().to_numpy(dtype=float)
    integral = np.all(np.mod(values, 1) == 0)
    return "classification" if integral and len(np.unique(values)) <= MAX_CLASS_LEVELS else "regression"


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
