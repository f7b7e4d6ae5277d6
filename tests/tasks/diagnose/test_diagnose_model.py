"""DiagnoseModel on generated bearing vibration: faults told apart by their defect frequencies, a fault type never
seen in training called unknown, answers that survive save and load, and explanations that point at a band."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bearings import write_classes

import shopfloor
from shopfloor.errors import BadOption, BadTarget
from shopfloor.tasks.diagnose.model import DiagnoseModel

KNOWN = ("normal", "inner", "outer", "ball")


@pytest.fixture(scope="module")
def bearings(tmp_path_factory):
    root = tmp_path_factory.mktemp("bearings")
    write_classes(root / "train", KNOWN, recordings=2, seconds=1.5, seed=0)
    write_classes(root / "test", (*KNOWN, "looseness"), recordings=1, seconds=1.5, seed=1)
    model = DiagnoseModel(window=1024, rate=12_000, max_epochs=15, progress=False).fit(root / "train")
    return root, model


def test_faults_are_told_apart_by_their_defect_frequency_in_new_recordings(bearings):
    root, model = bearings
    metrics = model.evaluate(root / "test")
    assert model.classes_ == sorted(KNOWN) and model.validation_metrics_["accuracy"] > 0.9
    assert metrics["accuracy"] > 0.9 and metrics["f1_macro"] > 0.9 and metrics["recording_accuracy"] == 1.0
    assert metrics["known_windows"] == 4 * 17 and metrics["windows"] == 5 * 17  # 1.5 s at 12 kHz: 17 windows of 1024
    assert metrics["unknown_rate"] < 0.2 and metrics["accepted_accuracy"] > 0.75


def test_a_fault_type_never_seen_in_training_comes_back_unknown(bearings):
    root, model = bearings
    table = model.predict(root / "test")
    unseen = table[table["truth"] == "looseness"]
    assert unseen["unknown"].mean() >= 0.8
    assert table[table["truth"] != "looseness"]["unknown"].mean() < 0.2
    assert model.evaluate(root / "test")["unseen_unknown_rate"] >= 0.8


def test_predictions_are_calibrated_probabilities_with_a_runner_up(bearings):
    root, model = bearings
    table = model.predict(root / "test" / "inner")
    assert {"recording", "start", "end", "class", "probability", "runner_up", "runner_up_probability",
            "novelty", "unknown"} <= set(table.columns)
    assert (table["probability"] >= table["runner_up_probability"]).all() and (table["class"] != table["runner_up"]).all()
    assert table["probability"].between(0, 1).all() and model.net_.temperature.item() > 0
    assert table["start"].iloc[1] == pytest.approx(1024 / 12_000) and table["end"].iloc[0] == pytest.approx(1024 / 12_000)
    recordings = model.predict_recordings(root / "test")
    assert len(recordings) == 5 and (recordings.set_index("truth").loc[list(KNOWN), "class"] == list(KNOWN)).all()
    assert recordings.set_index("truth").loc["looseness", "unknown"] == 1


def test_a_single_unlabelled_file_is_predicted_and_cannot_be_evaluated(bearings):
    root, model = bearings
    table = model.predict(root / "test" / "outer" / "outer_0.npy")
    assert "truth" not in table.columns and (table["class"] == "outer").mean() > 0.8
    with pytest.raises(BadTarget, match="needs the fault type of every recording"):
        model.evaluate(root / "test" / "outer" / "outer_0.npy")


def test_save_and_load_reproduce_the_predictions(bearings, tmp_path):
    root, model = bearings
    model.save(tmp_path / "model")
    loaded = shopfloor.load(tmp_path / "model")
    assert isinstance(loaded, DiagnoseModel) and loaded.classes_ == model.classes_ and loaded.sample_rate_ == 12_000
    pd.testing.assert_frame_equal(loaded.predict(root / "test"), model.predict(root / "test"))
    summary = DiagnoseModel.summary(__import__("json").loads((tmp_path / "model" / "manifest.json").read_text()))
    assert "ball, inner, normal, outer" in " ".join(summary["lines"])


def test_explain_names_the_time_span_and_frequency_band_behind_each_verdict(bearings):
    root, model = bearings
    table = model.explain(root / "test" / "inner")
    assert len(table) == 17
    assert {f"band_{i}" for i in range(1, 9)} | {f"span_{i}" for i in range(1, 9)} <= set(table.columns)
    assert (table["top_band_high_hz"] - table["top_band_low_hz"]).eq(750.0).all()  # 8 bands up to 6 kHz
    assert ((table["top_span_start"] >= table["start"]) & (table["top_span_end"] <= table["end"] + 1e-9)).all()
    # the inner-race impacts ring the 3 kHz resonance: one of the two bands beside it matters most
    assert ((table["top_band_low_hz"] <= 3_000.0) & (table["top_band_high_hz"] >= 3_000.0)).mean() > 0.8
    bands = table[[f"band_{i}" for i in range(1, 9)]].to_numpy()
    assert np.isfinite(bands).all()


def test_training_refuses_unlabelled_data_one_class_and_bad_options(tmp_path):
    write_classes(tmp_path / "one", ("normal",), seconds=0.5)
    with pytest.raises(BadTarget, match="every recording is of class 'normal'"):
        DiagnoseModel(window=256, rate=12_000, progress=False).fit(tmp_path / "one")
    with pytest.raises(BadTarget, match="training needs the fault type"):
        DiagnoseModel(window=256, rate=12_000, progress=False).fit(tmp_path / "one" / "normal")
    with pytest.raises(BadOption, match="front 'fft' is not one of raw, spectrum, both"):
        DiagnoseModel(front="fft").fit(tmp_path / "one")


def test_a_long_table_of_process_signals_trains_per_run(tmp_path):
    rng = np.random.default_rng(0)
    frames = []
    for cycle in range(40):
        state = ["ok", "worn", "leak"][cycle % 3]
        t = np.arange(30, dtype=float)
        pressure = 100 - 5 * (state == "leak") * t / 30 + rng.normal(0, 0.5, 30)
        temperature = 40 + 3 * (state == "worn") + rng.normal(0, 0.5, 30)
        frames.append(pd.DataFrame({"cycle": cycle, "second": t, "pressure": pressure, "temperature": temperature,
                                    "state": state}))
    table = pd.concat(frames, ignore_index=True)
    model = DiagnoseModel(window=30, time="second", label="state", run="cycle", max_epochs=30, progress=False)
    model.fit(table[table["cycle"] < 30])
    assert model.sample_rate_ == 1.0 and model.channels_ == ["pressure", "temperature"]
    metrics = model.evaluate(table[table["cycle"] >= 30])
    assert metrics["windows"] == 10 and metrics["accuracy"] >= 0.9


def test_the_onnx_graph_takes_raw_windows_and_answers_as_torch_does(bearings, tmp_path):
    from shopfloor.kits.onnx import read_metadata

    root, model = bearings
    path = model.export_onnx(tmp_path / "diagnose.onnx")
    facts = read_metadata(path)
    assert facts["task"] == "diagnose" and facts["window"] == "1024" and facts["rate"] == "12000"
    assert __import__("json").loads(facts["classes"]) == model.classes_
    assert model.onnx_parity(path, root / "test") <= 1e-4
