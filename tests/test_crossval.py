"""Cross-validation splits: stratified, grouped (machines, lots) and time-ordered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shopfloor.crossval import cross_validate, fold_indices, stratification_labels
from shopfloor.errors import BadOption, ColumnMissing


def machine_log(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-03-01")
    stamps = start + pd.to_timedelta(rng.permutation(rows) * 7, unit="min")  # rows not in time order
    return pd.DataFrame({
        "machine": rng.choice([f"M{i:02d}" for i in range(12)], size=rows),
        "timestamp": stamps.strftime("%d.%m.%Y %H:%M"),
        "hour": rng.permutation(rows).astype(float),
        "failure": (rng.random(rows) < 0.1).astype(int),
        "mode": rng.choice(["ok", "wear", "heat"], size=rows, p=[0.8, 0.15, 0.05]),
    })


def check_partition(folds) -> None:
    """No fold is empty, and no row is trained on in the fold that tests it."""
    for train, test in folds:
        assert len(np.intersect1d(train, test)) == 0
        assert len(train) and len(test)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_stratified_folds_keep_the_class_ratio(k):
    frame = machine_log()
    folds = fold_indices(frame, k, stratification_labels(frame, ["failure"], True), seed=3)
    assert len(folds) == k
    check_partition(folds)
    assert np.array_equal(np.sort(np.concatenate([test for _, test in folds])), np.arange(len(frame)))
    overall = frame["failure"].mean()
    for train, test in folds:
        failures = frame["failure"].to_numpy()[test].sum()
        assert abs(failures - overall * len(test)) <= 1  # as even as whole rows allow
        assert abs(frame["failure"].to_numpy()[train].mean() - overall) < 0.02


def test_stratified_on_several_targets_and_rare_classes():
    frame = machine_log()
    labels = stratification_labels(frame, ["failure", "mode"], True)
    assert labels.iloc[0] == f"{frame['failure'].iloc[0]}|{frame['mode'].iloc[0]}"
    folds = fold_indices(frame, 3, labels)
    for _, test in folds:
        shares = frame["mode"].iloc[test].value_counts(normalize=True)
        assert abs(shares["ok"] - 0.8) < 0.1
    assert stratification_labels(frame, ["hour"], classification=False) is None


def test_group_folds_never_split_a_group():
    frame = machine_log()
    for stratify in (None, stratification_labels(frame, ["failure"], True)):
        folds = fold_indices(frame, 4, stratify, group="machine")
        check_partition(folds)
        tested = np.concatenate([test for _, test in folds])
        assert np.array_equal(np.sort(tested), np.arange(len(frame)))
        for train, test in folds:
            assert not set(frame["machine"].iloc[train]) & set(frame["machine"].iloc[test])


def test_group_folds_need_enough_groups():
    frame = machine_log().assign(line=lambda f: np.where(f["hour"] < 150, "A", "B"))
    with pytest.raises(BadOption, match="'line' has only 2 distinct values"):
        fold_indices(frame, 3, group="line")


@pytest.mark.parametrize("column", ["timestamp", "hour"])
def test_time_folds_train_on_the_past_only(column):
    frame = machine_log()
    time = (pd.to_datetime(frame["timestamp"], format="%d.%m.%Y %H:%M") if column == "timestamp"
            else frame["hour"]).to_numpy()
    folds = fold_indices(frame, 4, time=column, date_order="dayfirst")  # 1 and 2 March: readable either way
    assert len(folds) == 4
    check_partition(folds)
    previous_test_start = None
    for train, test in folds:
        assert time[train].max() < time[test].min()  # distinct times here, so strictly before
        if previous_test_start is not None:
            assert time[test].min() > previous_test_start  # the test block walks forward in time
        previous_test_start = time[test].min()


def test_bad_fold_requests_are_refused():
    frame = machine_log(20)
    with pytest.raises(BadOption, match="at least 2 folds"):
        fold_indices(frame, 1)
    with pytest.raises(BadOption, match="too few"):
        fold_indices(frame, 11)
    with pytest.raises(ColumnMissing, match="'lot'"):
        fold_indices(frame, 2, group="lot")
    with pytest.raises(ColumnMissing, match="'shift start'"):
        fold_indices(frame, 2, time="shift start")


def test_cross_validate_reports_mean_std_and_every_fold():
    frame = pd.DataFrame({"x": np.arange(12.0)})
    folds = fold_indices(frame, 3, seed=0)
    seen = []

    def fit_and_score(train, test):
        assert list(train.index) == list(range(len(train)))  # fresh row numbers for the estimator
        seen.append(sorted(test["x"]))
        return {"mae": float(test["x"].mean()), "r2": float("nan") if len(seen) == 1 else 0.5}

    result = cross_validate(fit_and_score, frame, folds)
    means = [np.mean(s) for s in seen]
    assert result["folds"] == 3 and len(result["per_fold"]) == 3
    assert result["mean"]["mae"] == pytest.approx(np.mean(means))
    assert result["std"]["mae"] == pytest.approx(np.std(means))
    assert result["mean"]["r2"] == 0.5  # a fold without a value does not poison the mean
