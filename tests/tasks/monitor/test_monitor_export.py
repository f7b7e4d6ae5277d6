"""A monitor model as one ONNX graph: readings [batch, sensors, time] in, the 0..1 score and every sensor's
contribution out, both axes dynamic, agreeing with `predict` within 1e-4 on generated histories and a real
SKAB file (GPL data: read from ../shared/data, never copied), on sequences shorter than the window too."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from monitor_processes import SENSORS, pump, with_fault

from shopfloor.errors import BadOption, NotAModel, NotFitted
from shopfloor.kits.onnx import read_metadata, run_onnx
from shopfloor.tasks.monitor.model import MonitorModel

PARITY = 1e-4


def quick(**params) -> MonitorModel:
    return MonitorModel(time="time", max_epochs=3, progress=False, **params)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = quick().fit(pump(rows=500, seed=0))
    return model, model.export_onnx(tmp_path_factory.mktemp("onnx") / "pump-monitor.onnx")


def pieces(lengths: list[int], seed: int = 5) -> tuple[pd.DataFrame, list[slice]]:
    """A faulty pump's history cut into runs of `lengths` rows, an hour apart (each run its own sequence)."""
    frame, _ = with_fault(pump(rows=sum(lengths) + 20, seed=seed), "drift", start=sum(lengths) // 2)
    frame = frame.iloc[:sum(lengths)].copy()
    bounds = np.cumsum([0, *lengths])
    for start in bounds[1:-1]:
        frame.loc[frame.index >= start, "time"] += pd.Timedelta(hours=1)  # one hour more after each cut
    return frame, [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def test_every_sequence_scores_as_predict_does_also_when_shorter_than_the_window(exported):
    model, path = exported
    lengths = [7, model.window - 1, model.window, 150, 1]
    frame, runs = pieces(lengths)
    answers = model.predict(frame)
    contributions = model.explain(frame)
    assert answers["anomaly"].any()  # the drift is in the data the parity is measured on
    for run in runs:
        readings = frame[SENSORS].iloc[run].to_numpy(np.float32).T[None]
        out = run_onnx(path, {"readings": readings})
        assert out["score"].shape == (1, run.stop - run.start)
        np.testing.assert_allclose(out["score"][0], answers["score"].iloc[run], atol=PARITY, rtol=0)
        np.testing.assert_allclose(out["contributions"][0].T, contributions[SENSORS].iloc[run], rtol=PARITY, atol=PARITY)
    assert model.onnx_parity(path, frame) <= PARITY


def test_the_batch_and_time_axes_are_both_dynamic(exported):
    model, path = exported
    generator = torch.Generator().manual_seed(3)
    for batch, steps in [(1, 2), (3, 50), (6, 333)]:
        readings = model.net_.mean[:, None] + 2 * model.net_.std[:, None] * torch.randn(batch, len(SENSORS), steps,
                                                                                       generator=generator)
        out = run_onnx(path, {"readings": readings.numpy()})
        with torch.no_grad():
            contributions, raw = model.net_(readings)
            score = model.net_.squash(raw)
        assert out["score"].shape == (batch, steps) and out["contributions"].shape == (batch, len(SENSORS), steps)
        np.testing.assert_allclose(out["score"], score.numpy(), atol=PARITY, rtol=0)


def test_the_file_says_the_sensors_order_step_and_threshold(exported):
    model, path = exported
    meta = read_metadata(path)
    assert meta["task"] == "monitor" and json.loads(meta["outputs"]) == ["score", "contributions"]
    assert json.loads(meta["sensors"]) == model.sensor_columns_ == SENSORS
    assert float(meta["step"]) == 60.0 and meta["time"] == "time" and meta["machine"] == ""
    assert float(meta["threshold"]) == pytest.approx(float(model.net_.threshold))
    assert int(meta["window"]) == model.window and int(meta["reach"]) == model.net_.reach()
    assert meta["threshold_rule"] == model.threshold_rule_ and "held-out" in meta["threshold_rule"]


def test_a_fleet_with_gaps_and_missing_readings_keeps_parity(tmp_path):
    frames = [pump(rows=300, seed=s).assign(machine=f"P{s}") for s in range(2)]
    fleet = quick(machine="machine").fit(pd.concat(frames, ignore_index=True))
    path = fleet.export_onnx(tmp_path / "fleet.onnx")
    new = pd.concat([with_fault(pump(rows=200, seed=7 + s), "stuck", start=120)[0].assign(machine=f"P{s}")
                     for s in range(2)], ignore_index=True)
    new.loc[30:34, "flow"] = np.nan  # carried forward, as the caller of the graph is told to
    new = new.drop(index=range(60, 90))  # half an hour without readings: a new sequence
    meta = read_metadata(path)
    assert meta["machine"] == "machine"
    levels = json.loads(meta["machine_levels"])  # each pump judged against its own level: the caller maps it first
    assert levels["machines"] == ["P0", "P1"]
    gain, offset = fleet.machine_levels(["P1"])
    np.testing.assert_allclose(levels["gain"][1], gain[0])
    np.testing.assert_allclose(levels["offset"][1], offset[0])
    assert fleet.onnx_parity(path, new) <= PARITY


def test_a_real_skab_file_keeps_parity(shared_data, tmp_path):
    path = shared_data / "skab" / "valve1" / "3.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    frame = pd.read_csv(path, sep=";").drop(columns="changepoint")
    model = MonitorModel(time="datetime", label="anomaly", max_epochs=3, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(frame.iloc[:400])
        onnx_path = model.export_onnx(tmp_path / "valve.onnx")
        answers = model.predict(frame.iloc[400:])
        difference = model.onnx_parity(onnx_path, frame.iloc[400:])
        short = model.onnx_parity(onnx_path, frame.iloc[400:410])  # ten readings: fewer than one window
    assert answers["anomaly"].any() and difference <= PARITY and short <= PARITY


def test_refusals_come_before_any_work(exported, tmp_path):
    model, path = exported
    with pytest.raises(BadOption, match="'.onnx' file"):
        model.export_onnx(tmp_path / "model.bin")
    with pytest.raises(NotFitted):
        quick().export_onnx(tmp_path / "unfitted.onnx")
    other = quick().fit(pump(rows=400, seed=1).drop(columns="vibration"))
    with pytest.raises(NotAModel, match="different model"):
        other.onnx_parity(path, pump(rows=100, seed=2))
    assert not (tmp_path / "unfitted.onnx").exists() and not (tmp_path / "model.bin").exists()


def test_a_stream_sending_the_last_reach_readings_gets_the_newest_score(exported):
    model, path = exported
    frame, _ = with_fault(pump(rows=400, seed=8), "spike", start=330)
    answers = model.predict(frame)
    last = model.net_.reach() + 1
    for end in (200, 340, 400):  # before, in and after the fault
        readings = frame[SENSORS].iloc[end - last:end].to_numpy(np.float32).T[None]
        newest = run_onnx(path, {"readings": readings})["score"][0, -1]
        assert abs(newest - answers["score"].iloc[end - 1]) <= PARITY


def test_opset_17_takes_the_torchscript_exporter_with_both_axes_dynamic(exported, tmp_path):
    model, _ = exported
    path = model.export_onnx(tmp_path / "old-runtime.onnx", opset=17)
    assert read_metadata(path)["exporter"] == "torchscript"
    frame, _ = pieces([5, 90])
    assert model.onnx_parity(path, frame) <= PARITY
