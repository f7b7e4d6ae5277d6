"""Cross-validation splits: stratified, grouped (machines, lots) and time-ordered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shopfloor.crossval import Split, choose_split, cross_validate, fold_indices, holdout_folds, stratification_labels
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


@pytest.mark.parametrize("bags", [1, 2, 5])
def test_holdout_in_time_order_validates_on_later_rows_than_it_trains_on(bags):
    # random folds put neighbouring, nearly identical rows on both sides: 0.85 accuracy in validation, 0.67 later
    frame = machine_log()
    time = frame["hour"].to_numpy()
    folds = holdout_folds(frame, Split("time", "hour"), bags)
    assert len(folds) == bags
    check_partition(folds)
    for train, test in folds:
        assert time[train].max() < time[test].min()
        assert len(train) >= len(frame) // 2  # every network learns from at least the earlier half
    validated = np.concatenate([test for _, test in folds])
    assert len(np.unique(validated)) == len(validated)
    assert len(validated) == (len(frame) // 5 if bags == 1 else len(frame) - len(frame) // 2)  # the latest rows
    assert time[validated].min() == np.sort(time)[len(frame) - len(validated)]


@pytest.mark.parametrize("bags", [1, 4])
def test_holdout_by_run_never_splits_a_run(bags):
    frame = machine_log()
    folds = holdout_folds(frame, Split("group", "machine"), bags, stratification_labels(frame, ["failure"], True))
    assert len(folds) == bags
    for train, test in folds:
        assert not set(frame["machine"].iloc[train]) & set(frame["machine"].iloc[test])


def test_random_holdout_is_unchanged():
    from sklearn.model_selection import StratifiedKFold

    frame = machine_log()
    strata = frame["failure"].to_numpy()
    expected = list(StratifiedKFold(3, shuffle=True, random_state=7).split(np.arange(len(frame)), strata))
    for (a, b), (c, d) in zip(holdout_folds(frame, Split(), 3, strata, seed=7), expected, strict=True):
        assert np.array_equal(a, c) and np.array_equal(b, d)


def test_split_is_chosen_from_the_table():
    frame = machine_log()
    assert choose_split(frame, dates=["timestamp"]) == Split("time", "timestamp")
    assert choose_split(frame) == Split()  # 'machine' is a group, but not a run: random unless named
    assert choose_split(frame, group="machine") == Split("group", "machine")
    assert choose_split(frame, time="hour", group="machine") == Split("time", "hour")
    assert choose_split(frame, "group", time="hour", group="machine") == Split("group", "machine")
    runs = frame.assign(**{"batch no": np.repeat(np.arange(30), 10)})
    assert choose_split(runs) == Split("group", "batch no")
    assert choose_split(runs, dates=["timestamp"]) == Split("time", "timestamp")
    assert choose_split(runs, "random", dates=["timestamp"]) == Split()
    assert choose_split(frame.assign(batch=np.arange(300))) == Split()  # every row its own 'batch': an id
    with pytest.raises(BadOption, match="--split time needs a time column"):
        choose_split(frame, "time")
    with pytest.raises(BadOption, match="--split group needs a run id column"):
        choose_split(frame, "group")
    with pytest.raises(ColumnMissing, match="--group 'lot'"):
        choose_split(frame, group="lot")
    with pytest.raises(BadOption, match="split must be one of"):
        choose_split(frame, "shuffled")


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
