"""The contract every task keeps (tasks/base.py): the state every task has is saved and restored by the base
class, with defaults for manifests written before it was kept; training_log_ is a list in every task;
evaluate takes a separate truth only where the task's labels cannot be in the data (RUL); image tasks explain
with a table; cross-validation is a library function that stores what the CLI stored before.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES, failure_table

import shopfloor
from shopfloor.artifacts import MANIFEST, read_manifest
from shopfloor.crossval import cross_validate, fit_with_cross_validation, fold_indices, stratification_labels
from shopfloor.errors import BadOption, NotSupported, ShopfloorWarning
from shopfloor.tasks import TASKS, estimator_class
from shopfloor.tasks.base import COMMON_STATE, Estimator
from shopfloor.tasks.tabular.model import TabularModel

MODELS = FIXTURES / "models"
SAVED = sorted(p for p in MODELS.iterdir() if (p / MANIFEST).is_file())
IMAGES = [p for p in SAVED if read_manifest(p)["task"] in ("defects", "anomaly")]


def _inputs(folder):
    table = MODELS / f"{folder.name}.inputs.csv"
    return pd.read_csv(table) if table.is_file() else MODELS / f"{folder.name}.inputs"


@pytest.mark.parametrize("folder", SAVED, ids=[p.name for p in SAVED])
def test_common_state_is_restored_with_defaults_for_what_an_old_manifest_lacks(folder):
    state = read_manifest(folder)["state"]
    model = shopfloor.load(folder)
    for key, (attribute, default) in COMMON_STATE.items():
        assert getattr(model, attribute) == state.get(key, default), key
    for key, attribute in type(model).saved_state.items():
        assert getattr(model, attribute) == state[key], key


@pytest.mark.parametrize("folder", SAVED, ids=[p.name for p in SAVED])
def test_training_log_is_a_list_of_records_after_loading_every_fixture(folder):
    log = shopfloor.load(folder).training_log_
    assert isinstance(log, list)
    assert all(isinstance(record, dict) and {"best_epoch", "epochs"} <= set(record) for record in log)


@pytest.mark.parametrize("name", ["rul-v1", "defects-v1"])
def test_a_format_1_dict_training_log_is_read_as_one_record(name):
    """Format 1 kept the RUL and defect logs as one dict; reading the manifest gives the list format 2 writes."""
    on_disk = json.loads((MODELS / name / MANIFEST).read_text())
    assert on_disk["format_version"] == 1 and isinstance(on_disk["state"]["training_log"], dict)
    manifest = read_manifest(MODELS / name)
    assert manifest["format_version"] == 1  # the manifest still says which format its file is in
    assert manifest["state"]["training_log"] == [on_disk["state"]["training_log"]]


@pytest.mark.parametrize("folder", SAVED, ids=[p.name for p in SAVED])
def test_a_loaded_model_saves_the_state_it_was_loaded_with(folder, tmp_path):
    """The manifest keys stay as they were: declared state and `_state` together write every old key back."""
    old = read_manifest(folder)["state"]
    shopfloor.load(folder).save(tmp_path / "again")
    new = read_manifest(tmp_path / "again")["state"]
    assert set(old) <= set(new)
    for key in set(type(shopfloor.load(folder)).saved_state) | set(COMMON_STATE) - {"training_log"}:
        assert new[key] == old.get(key, COMMON_STATE.get(key, (None, None))[1]), key
    assert new["training_log"] == old.get("training_log", [])


@pytest.mark.parametrize("folder", [p for p in SAVED if read_manifest(p)["task"] != "rul"],
                         ids=lambda p: p.name)
def test_evaluate_refuses_a_separate_truth_where_labels_are_in_the_data(folder):
    with pytest.raises(BadOption, match="takes its labels from the data itself"):
        shopfloor.load(folder).evaluate(_inputs(folder), truth=MODELS / "rul-v1.inputs.csv")


def test_a_rul_model_needs_the_truth_and_takes_it_by_name_or_position():
    model = shopfloor.load(MODELS / "rul-v1")
    with pytest.raises(BadOption, match="true remaining life of each test unit: add --rul FILE"):
        model.evaluate(_inputs(MODELS / "rul-v1"))
    table = model.predict(_inputs(MODELS / "rul-v1"))
    truth = pd.DataFrame({"unit": table["unit"], "rul": np.full(len(table), 50.0)})
    by_name = model.evaluate(_inputs(MODELS / "rul-v1"), truth=truth)
    assert by_name == model.evaluate(_inputs(MODELS / "rul-v1"), truth) and "rmse" in by_name


@pytest.mark.parametrize("folder", IMAGES, ids=lambda p: p.name)
def test_image_explain_is_a_table_with_one_row_per_image_saying_where_the_heatmap_points(folder):
    model = shopfloor.load(folder)
    table, maps = model.heatmaps(_inputs(folder))
    explained = model.explain(_inputs(folder))
    assert isinstance(explained, pd.DataFrame) and len(explained) == len(table) == len(maps)
    pd.testing.assert_frame_equal(explained[table.columns], table)
    for row, heatmap in zip(explained.itertuples(), maps, strict=True):
        assert row.heatmap_peak == pytest.approx(float(np.max(heatmap)))
        assert 0 < row.heatmap_peak_x < 1 and 0 < row.heatmap_peak_y < 1
        height, width = np.shape(heatmap)
        y, x = int(row.heatmap_peak_y * height), int(row.heatmap_peak_x * width)
        assert heatmap[y][x] == pytest.approx(row.heatmap_peak)
        assert row.heatmap_above_half == pytest.approx(float((np.asarray(heatmap) > 0.5).mean()))


def test_every_task_declares_what_it_accepts_and_a_task_without_folds_says_so():
    for task in TASKS:
        assert estimator_class(task).accepts in ("rows", "runs", "images", "settings")
    with pytest.raises(NotSupported, match="has no cross-validation"):
        fit_with_cross_validation(shopfloor.load(MODELS / "rul-v1"), failure_table(40), 2)
    with pytest.raises(NotSupported, match="x model has no cross-validation"):
        type("X", (Estimator,), {"task_name": "x"})().cv_folds(failure_table(40), 2)


def test_cross_validation_stores_what_the_cli_stored_before():
    """The CLI glued the folds together itself (until issue 15); the library function gives the same result."""
    frame = failure_table(160, seed=3)
    frame.loc[frame.index[:4], "failure"] = np.nan  # rows without a target: left out of every fit
    params = dict(target="failure", bags=2, max_epochs=3, progress=False, seed=1)
    labelled = frame.dropna(subset=["failure"])
    chosen = TabularModel(**params).validation_split(labelled)
    folds = fold_indices(frame, 2, stratification_labels(frame, ["failure"], True), seed=1)

    def fit_and_score(train, test):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ShopfloorWarning)
            return TabularModel(**params).fit(train).evaluate(test)

    before = {**cross_validate(fit_and_score, frame, folds), "split": chosen.words()}
    reported = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShopfloorWarning)
        model = fit_with_cross_validation(TabularModel(**params), frame, 2, report=reported.append)
        alone = TabularModel(**params).fit(frame)
    assert model.cv_metrics_ == before == reported[0]
    assert model.cv_metrics_["folds"] == 2 and model.cv_metrics_["split"] == "random rows"
    pd.testing.assert_frame_equal(model.predict(frame), alone.predict(frame))  # fitted on every row
