"""K-fold cross-validation of any estimator: stratified, grouped or time-ordered splits.

The same folds can be handed to other systems (the benchmarks train LightGBM on them), so
the split is its own function.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold, TimeSeriesSplit

from shopfloor.data.tables import column_name, did_you_mean
from shopfloor.data.times import parse_times
from shopfloor.errors import BadOption, ColumnMissing


def fold_indices(frame: pd.DataFrame, k: int, stratify: pd.Series | None = None, group: str | None = None,
                 time: str | None = None, seed: int = 0,
                 date_order: str = "auto") -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, test rows) for each of k folds.

    time: train on the past, test on the block that follows (expanding window);
    group: all rows of a group (machine, batch, lot) fall in the same fold;
    otherwise stratified on `stratify` when given, shuffled k-fold when not.
    date_order: how to read a time column of dates ('auto', 'dayfirst', 'monthfirst'; see data.times).
    """
    if k < 2:
        raise BadOption(f"--cv needs at least 2 folds, not {k}")
    if len(frame) < 2 * k:
        raise BadOption(f"{len(frame)} rows are too few for {k}-fold cross-validation")
    group, time = (None if name is None else column_name(name) for name in (group, time))
    for name in (group, time):
        if name is not None and name not in frame.columns:
            found = ", ".join(map(repr, frame.columns[:15]))
            raise ColumnMissing(f"'{name}' is not a column of the data (columns found: {found})"
                                f"{did_you_mean(name, frame.columns)}")
    rows = np.arange(len(frame))
    if time is not None:
        order = np.argsort(parse_times(frame[time], time, order=date_order)[0].to_numpy()
                           if not pd.api.types.is_numeric_dtype(frame[time]) else frame[time].to_numpy(), kind="stable")
        return [(order[tr], order[te]) for tr, te in TimeSeriesSplit(n_splits=k).split(rows)]
    if group is not None:
        groups = frame[group].astype(str).to_numpy()
        if len(np.unique(groups)) < k:
            raise BadOption(f"--group '{group}' has only {len(np.unique(groups))} distinct values; {k} folds need {k}")
        if stratify is not None and _can_stratify(stratify, k):
            splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
            return list(splitter.split(rows, stratify.to_numpy(), groups))
        return list(GroupKFold(k).split(rows, groups=groups))
    if stratify is not None and _can_stratify(stratify, k):
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(rows, stratify.to_numpy()))
    return list(KFold(k, shuffle=True, random_state=seed).split(rows))


def _can_stratify(labels: pd.Series, k: int) -> bool:
    return labels.value_counts().min() >= k


def stratification_labels(frame: pd.DataFrame, targets: list[str], classification: bool) -> pd.Series | None:
    if not classification:
        return None
    return frame[targets].astype(str).agg("|".join, axis=1)


def cross_validate(fit_and_score: Callable[[pd.DataFrame, pd.DataFrame], dict[str, float]],
                   frame: pd.DataFrame, folds: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Run `fit_and_score(train, test)` on each fold; mean and std of every metric."""
    scores = []
    for train_rows, test_rows in folds:
        scores.append(fit_and_score(frame.iloc[train_rows].reset_index(drop=True),
                                    frame.iloc[test_rows].reset_index(drop=True)))
    keys = list(scores[0])
    return {
        "folds": len(folds),
        "mean": {k: float(np.nanmean([s[k] for s in scores])) for k in keys},
        "std": {k: float(np.nanstd([s[k] for s in scores])) for k in keys},
        "per_fold": scores,
    }
