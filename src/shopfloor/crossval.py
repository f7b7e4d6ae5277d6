"""K-fold cross-validation of any estimator: stratified, grouped or time-ordered splits.

The same folds can be handed to other systems (the benchmarks train LightGBM on them), so
the split is its own function. `fit_with_cross_validation` scores any estimator that says how to fold its
data (`cv_folds`) and keeps the result with the model it then fits on all rows.

Which split is honest depends on the table: where rows have a time or belong to runs, neighbouring
rows are near copies, and random folds put them on both sides (accuracy 0.85 in validation, 0.67 on
the next month). `choose_split` picks time order or whole runs whenever the table has them, for the
estimator's own validation as for `--cv`, and says which it chose.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

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
        order = time_order(frame[time], date_order)
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
    # rows without a target (left out of every fit) are a stratum of their own: astype(str) keeps NaN a float
    return frame[targets].fillna("missing").astype(str).agg("|".join, axis=1)


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


class Folds(list):
    """(train rows, test rows) for each fold, and in words how rows were held out ('time order by ...'): what an
    estimator's `cv_folds` returns, so that the result says which split it scored."""

    def __init__(self, folds, split: str | None = None):
        super().__init__(folds)
        self.split = split


def fit_with_cross_validation(estimator, data: pd.DataFrame | str | os.PathLike, k: int,
                              report: Callable[[dict], None] | None = None):
    """K-fold cross-validation of `estimator`, then `estimator` fitted on all of `data`, with the result kept in
    `cv_metrics_` (saved with the model as "cross_validation"); returns the fitted estimator.

    The folds are the estimator's (`cv_folds(frame, k)`: stratified, by run or in time order as its own validation
    splits). Each fold fits a fresh estimator with the same parameters and scores it with `evaluate` on the rows
    it did not see; their warnings are silenced, since the fit on all rows says the same once. `report(result)`
    is called before that last fit (the CLI prints the table while the model trains). The result holds folds,
    mean, std and per_fold (see `cross_validate`) and, when the folds say it, "split": how rows were held out.
    """
    from shopfloor.data.tables import read_table, tidy_columns
    from shopfloor.errors import ShopfloorWarning

    frame = tidy_columns(data) if isinstance(data, pd.DataFrame) else read_table(data)
    with warnings.catch_warnings():  # rows without a target, say: the fit on all rows below warns of them once
        warnings.simplefilter("ignore", ShopfloorWarning)
        folds = estimator.cv_folds(frame, k)

    def fit_and_score(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ShopfloorWarning)
            return type(estimator)(**estimator.get_params()).fit(train).evaluate(test)

    result = cross_validate(fit_and_score, frame, folds)
    if getattr(folds, "split", None) is not None:
        result["split"] = folds.split
    if report is not None:
        report(result)
    estimator.fit(frame)
    estimator.cv_metrics_ = result
    return estimator


# -- which split: random rows, time order or whole runs ---------------------------------------
SPLITS = ("auto", "random", "time", "group")
RUN_NAME = re.compile(r"(^|[\s_\-])(run|batch|lot|job|charge|heat)([\s_\-]?(id|no|nr|number))?$", re.IGNORECASE)
MIN_RUNS = 5  # a column with fewer distinct runs is not taken for a run id on its own


@dataclass(frozen=True)
class Split:
    """How rows are held out: 'random', 'time' (validated on later rows than trained on) or 'group'."""

    kind: str = "random"
    column: str | None = None

    def words(self) -> str:
        if self.kind == "time":
            return f"time order by '{self.column}'"
        if self.kind == "group":
            return f"whole runs by '{self.column}'"
        return "random rows"

    def to_json(self) -> dict:
        return {"kind": self.kind, "column": self.column, "words": self.words()}


def choose_split(frame: pd.DataFrame, split: str = "auto", time: str | None = None, group: str | None = None,
                 dates: list[str] = (), columns: list[str] | None = None) -> Split:
    """The split for `frame`. auto: `time`, else `group`, else the first date column, else a run id
    column (run, batch, lot, job, charge, heat), else random rows.

    dates: the table's date columns (the schema's); columns: where to look for a run id.
    """
    if split not in SPLITS:
        raise BadOption(f"split must be one of {', '.join(SPLITS)}, not '{split}'")
    for name, option in ((time, "--time"), (group, "--group")):
        if name is not None and name not in frame.columns:
            found = ", ".join(map(repr, frame.columns[:15]))
            raise ColumnMissing(f"{option} '{name}' is not a column of the data (columns found: {found})")
    if split == "random":
        return Split()
    if split in ("auto", "time") and (time or (split == "time" and dates)):
        return Split("time", time or dates[0])
    if split in ("auto", "group") and group:
        return Split("group", group)
    if split == "auto" and dates:
        return Split("time", dates[0])
    runs = [c for c in (columns if columns is not None else frame.columns) if RUN_NAME.search(str(c))
            and MIN_RUNS <= frame[c].nunique() <= len(frame) / 2]
    if split in ("auto", "group") and runs:
        return Split("group", runs[0])
    if split == "auto":
        return Split()
    what = "a time column (--time COL)" if split == "time" else "a run id column (--group COL)"
    raise BadOption(f"--split {split} needs {what}; none was named and none was recognised in the data")


def time_order(column: pd.Series, date_order: str | None = "auto") -> np.ndarray:
    """Row positions from earliest to latest (missing times last); dates read as `data.times` reads them."""
    values = column.to_numpy() if pd.api.types.is_numeric_dtype(column) \
        else parse_times(column, str(column.name), order=date_order)[0].to_numpy()
    return np.argsort(values, kind="stable")


def holdout_folds(frame: pd.DataFrame, split: Split, bags: int, strata: np.ndarray | None = None,
                  seed: int = 0, date_order: str | None = "auto") -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, validation rows) for each of `bags` cross-fitted networks.

    random: shuffled (stratified) k-fold; one bag holds out a fifth. group: k-fold by whole runs.
    time: each network trains on everything before its validation block; the blocks tile the later
    half of the rows (one bag: the latest fifth), so every network sees at least half of the table.
    """
    rows = np.arange(len(frame))
    k = 5 if bags == 1 else bags
    if split.kind == "time":
        order = time_order(frame[split.column], date_order)
        start = len(rows) - max(1, len(rows) // 5) if bags == 1 else len(rows) // 2
        blocks = np.array_split(np.arange(start, len(rows)), bags)
        return [(order[:block[0]], order[block]) for block in blocks]
    if split.kind == "group":
        groups = frame[split.column].astype(str).to_numpy()
        runs = len(np.unique(groups))
        if runs < 2:
            raise BadOption(f"'{split.column}' has only one run: rows cannot be held out by run (use split='random')")
        k = min(k, runs)
        if strata is not None and pd.Series(strata).value_counts().min() >= k:
            folds = list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(rows, strata, groups))
        else:
            folds = list(GroupKFold(k).split(rows, groups=groups))
    elif strata is not None:
        folds = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(rows, strata))
    else:
        folds = list(KFold(k, shuffle=True, random_state=seed).split(rows))
    return folds[:1] if bags == 1 else folds
