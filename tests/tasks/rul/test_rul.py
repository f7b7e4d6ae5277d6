"""RULModel: learning, intervals, round trip, explanations, ONNX, and the same answers from every reader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FIXTURES, RUL_COLUMNS, cut_short, run_histories
from manifests import edited_copy

import shopfloor
from shopfloor.data.runs import read_runs
from shopfloor.errors import BadOption, BadTarget, ColumnMissing, NotAModel
from shopfloor.metrics import nasa_score, rul_metrics
from shopfloor.tasks.rul.conditions import fit_conditions
from shopfloor.tasks.rul.export import check_parity, export_onnx
from shopfloor.tasks.rul.model import RULModel
from shopfloor.tasks.rul.network import OperatingConditions

OUTPUT_COLUMNS = ["unit", "time", "rul", "rul_low", "rul_high"]


def test_metrics_follow_the_phm08_definition():
    assert nasa_score([10, 10], [10, 10]) == 0
    late, early = nasa_score([10], [20]), nasa_score([10], [0])
    assert late == pytest.approx(np.e - 1) and early == pytest.approx(np.exp(10 / 13) - 1)
    assert late > early  # a late warning costs more than an early one
    assert rul_metrics([0, 10], [3, 6])["rmse"] == pytest.approx(np.sqrt((9 + 16) / 2))


def test_conditions_are_found_only_where_they_exist():
    rng = np.random.default_rng(0)
    jitter = rng.normal(0, 1e-3, (3000, 3))  # one operating point, measurement noise
    assert fit_conditions(jitter, None, seed=0)["k"] == 1
    points = np.array([[0, 0.0], [20, 0.7], [35, 0.8], [42, 0.84], [10, 0.25], [25, 0.62]])
    six = points[rng.integers(0, 6, 3000)] + rng.normal(0, 1e-3, (3000, 2))
    found = fit_conditions(six, None, seed=0)
    assert found["k"] == 6
    assert len(np.unique(found["labels"])) == 6


def test_condition_normalisation_removes_the_operating_point():
    """Per condition, the standardised sensors have mean 0 and spread 1, whatever the level."""
    model = RULModel(**RUL_COLUMNS, max_epochs=1, members=1, progress=False).fit(run_histories(8, conditions=3))
    runs = read_runs(run_histories(8, conditions=3, seed=5), **RUL_COLUMNS)
    values = torch.tensor(runs.frame[model.setting_columns_ + model.sensor_columns_].to_numpy(np.float32))
    conditions: OperatingConditions = model.net_.conditions
    standard, condition = conditions.standardise(values[None])
    assert conditions.n_conditions == 3
    for c in range(3):
        chosen = standard[0][condition[0] == c]
        assert chosen.mean(0).abs().max() < 0.35  # new units, a little off from the training mean
        assert ((chosen.std(0) - 1).abs() < 0.35).all()


def test_learns_remaining_life_far_better_than_a_constant(rul_model):
    metrics = rul_model.model.evaluate(rul_model.test, rul_model.truth)
    truth = rul_model.truth["rul"].to_numpy(float)
    constant = np.sqrt(np.mean((truth - np.minimum(truth, 60).mean()) ** 2))
    assert metrics["rmse"] < 0.7 * constant, (metrics, constant)
    assert set(metrics) >= {"rmse", "mae", "nasa_score", "coverage"}


def test_short_fd001_training_beats_a_constant_by_a_wide_margin(shared_data):
    """FD001, 40 engines, a few epochs: the test RMSE is well below the best constant's."""
    train = read_runs(shared_data / "cmapss" / "train_FD001.txt")
    train.frame = train.frame[train.frame["unit"] <= 40].reset_index(drop=True)
    model = RULModel(members=2, max_epochs=6, patience=3, progress=False).fit(train)
    metrics = model.evaluate(shared_data / "cmapss" / "test_FD001.txt", shared_data / "cmapss" / "RUL_FD001.txt")
    truth = np.loadtxt(shared_data / "cmapss" / "RUL_FD001.txt")
    constant = np.sqrt(np.mean((truth - truth.mean()) ** 2))  # the best constant, knowing the test labels
    assert metrics["rmse"] < 0.6 * constant, (metrics["rmse"], constant)


def test_predictions_are_per_unit_with_ordered_intervals(rul_model):
    table = rul_model.model.predict(rul_model.test)
    assert list(table.columns) == OUTPUT_COLUMNS
    assert list(table["unit"]) == sorted(rul_model.test["engine"].unique())
    assert (table["rul_low"] <= table["rul"]).all() and (table["rul"] <= table["rul_high"]).all()
    assert (table["rul_low"] >= 0).all()


def test_out_of_fold_intervals_cover_the_nominal_share(rul_model):
    assert rul_model.model.validation_metrics_["coverage"] == pytest.approx(0.9, abs=0.02)


def test_interval_narrows_near_failure_and_covers_every_band_of_true_rul(rul_model):
    """Every cycle of new units: the generated wear shows only late in life, so the estimate misses
    more the more life is left. One margin for all gave units near failure intervals almost as wide
    as healthy ones (51 against 63 cycles) and covered 69 % at true RUL 24-36; margins per band of
    the estimate follow the misses."""
    model = rul_model.model
    inputs, rul, _, _ = model._windows(read_runs(run_histories(30, conditions=3, seed=7), **RUL_COLUMNS))
    estimate, low, high = model.predict_windows(*(x.numpy() for x in inputs)).T
    inside, width = (low <= rul) & (rul <= high), high - low
    bands = [(0, 12), (12, 24), (24, 36), (36, 60), (60, np.inf)]  # true RUL; the cap is 60
    coverage = {band: inside[(rul >= band[0]) & (rul < band[1])].mean() for band in bands}
    assert 0.85 <= inside.mean() <= 0.95, inside.mean()
    assert all(share >= 0.8 for share in coverage.values()), coverage
    near, far = width[rul < 12].mean(), width[rul >= 60].mean()
    assert near < 0.4 * far, (near, far)
    assert len(model.interval_bands_["edges"]) == 4  # every band of the estimate had enough cycles


def test_models_saved_with_one_margin_predict_as_before(tmp_path):
    """tests/fixtures/make_rul_v1.py saved this model before the interval had bands: it keeps P10-P90
    widened by its one margin, in Python and in ONNX."""
    folder = FIXTURES / "models" / "rul-v1"
    model = shopfloor.load(folder)
    inputs = pd.read_csv(FIXTURES / "models" / "rul-v1.inputs.csv")
    expected = pd.read_csv(FIXTURES / "models" / "rul-v1.expected.csv")
    got = model.predict(inputs)
    assert list(got.columns) == ["unit", "time", *expected.columns[1:]]  # each unit's last time is kept since
    got = got[list(expected.columns)]
    np.testing.assert_allclose(got.to_numpy(float), expected.to_numpy(float), atol=1e-6, rtol=0)
    assert model.interval_bands_["around"] == "quantiles"
    path = export_onnx(model, tmp_path / "rul-v1.onnx")
    assert check_parity(model, path, inputs) < 1e-4


def test_health_index_falls_as_units_wear(rul_model):
    health = rul_model.model.health(rul_model.train[rul_model.train["engine"] <= 4])
    assert set(health.columns) == {"unit", "time", "rul", "health"}
    assert health["health"].between(0, 1).all()
    for _, curve in health.groupby("unit"):
        assert curve["health"].iloc[:10].mean() > curve["health"].iloc[-5:].mean() + 0.5


def test_save_load_round_trip_gives_identical_answers(rul_model):
    loaded = shopfloor.load(rul_model.folder)
    pd.testing.assert_frame_equal(loaded.predict(rul_model.test), rul_model.model.predict(rul_model.test))
    assert loaded.get_params() == rul_model.model.get_params()
    assert not list(rul_model.folder.glob("*.pkl"))


def test_explanations_add_up_to_the_change_from_as_new(rul_model):
    table = rul_model.model.explain(rul_model.test)
    sensors = rul_model.model.sensor_columns_
    assert list(table.columns) == ["unit", "time", "rul", "reference_rul", *sensors]
    total = table[sensors].sum(axis=1)
    np.testing.assert_allclose(total, table["rul"] - table["reference_rul"], atol=1e-3)
    # the drifting sensors carry the estimate, the noise sensor does not
    importance = rul_model.model.importance_
    assert importance["noise"] < max(importance["temperature"], importance["pressure"], importance["vibration"])


def test_cmapss_text_and_generic_csv_give_the_same_predictions(tmp_path):
    frame = run_histories(10, conditions=1, seed=3)
    # the same numbers as a C-MAPSS text file: unit, cycle, 3 settings, 21 sensors, no header
    cmapss = pd.DataFrame({"unit": frame["engine"], "cycle": frame["cycle"], "s1": frame["altitude"],
                           "s2": frame["throttle"], "s3": 100.0})
    sensors = ["temperature", "pressure", "vibration", "noise"] + ["noise"] * 17
    for i, name in enumerate(sensors):
        cmapss[f"x{i}"] = frame[name] if i < 4 else 1.0
    cmapss.to_csv(tmp_path / "train_FD009.txt", sep=" ", header=False, index=False)
    named = cmapss.copy()
    named.columns = ["unit", "cycle", "setting_1", "setting_2", "setting_3"] + [f"sensor_{i}" for i in range(1, 22)]
    named.to_csv(tmp_path / "train.csv", index=False)
    params = dict(members=2, max_epochs=2, window=15, progress=False)
    from_text = RULModel(**params).fit(tmp_path / "train_FD009.txt")
    from_csv = RULModel(unit="unit", time="cycle", settings=["setting_1", "setting_2", "setting_3"], **params)
    from_csv.fit(tmp_path / "train.csv")
    pd.testing.assert_frame_equal(from_text.predict(tmp_path / "train_FD009.txt"), from_csv.predict(tmp_path / "train.csv"))


def test_units_shorter_than_the_window_and_single_rows_are_padded(rul_model):
    short = rul_model.test.groupby("engine").head(1)  # one row per unit
    table = rul_model.model.predict(short)
    assert len(table) == short["engine"].nunique() and np.isfinite(table[["rul", "rul_low", "rul_high"]]).all().all()


def test_a_sensor_missing_at_predict_time_is_named(rul_model):
    with pytest.raises(ColumnMissing, match="pressure"):
        rul_model.model.predict(rul_model.test.drop(columns=["pressure"]))


def test_bad_options_and_too_little_data_are_refused():
    with pytest.raises(BadOption, match="interval_coverage"):
        RULModel(**RUL_COLUMNS, interval_coverage=1.5).fit(run_histories(4))
    with pytest.raises(BadTarget, match="at least 2 units"):
        RULModel(**RUL_COLUMNS).fit(run_histories(1))


def test_intervals_are_calibrated_on_units_not_seen_in_training():
    """The conformal margin comes from out-of-fold estimates: a model that memorised its units
    would report tiny residuals and intervals far too narrow on new units."""
    train = run_histories(24, conditions=1, seed=11)
    model = RULModel(**RUL_COLUMNS, window=20, rul_cap=60, members=3, max_epochs=10, progress=False).fit(train)
    test, truth = cut_short(run_histories(40, conditions=1, seed=12), seed=12)
    coverage = model.evaluate(test, truth)["coverage"]
    assert 0.7 <= coverage <= 1.0, coverage


@pytest.mark.parametrize(("change", "named"), [
    ({"params__window": 10**7}, "params.window"),
    ({"params__hidden": 10**7}, "params.hidden"),
    ({"params__layers": 10**6}, "params.layers"),
    ({"params__members": 3}, "params.members"),
    ({"state__conditions": 10**6}, "state.conditions"),
    ({"params__baseline_cycles": 10**9}, "params.baseline_cycles"),
])
def test_a_declared_size_that_disagrees_with_the_weights_is_refused(rul_model, tmp_path, change, named):
    folder = edited_copy(rul_model.folder, tmp_path / "edited", **change)
    with pytest.raises(NotAModel, match=named.replace(".", r"\.")):
        shopfloor.load(folder)
