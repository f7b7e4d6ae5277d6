"""RULModel's ONNX export: raw cycles in, onnxruntime gives torch's estimate and interval, conditions and bands inside."""

from __future__ import annotations

import json

import numpy as np

from shopfloor.data.runs import read_runs
from shopfloor.kits.onnx import read_metadata, run_onnx
from shopfloor.tasks.rul.export import check_parity, export_onnx
from shopfloor.tasks.rul.model import RULModel


def test_onnx_graph_matches_torch_with_conditions_inside(rul_model, tmp_path):
    path = export_onnx(rul_model.model, tmp_path / "rul.onnx")
    assert check_parity(rul_model.model, path, rul_model.test) < 1e-4
    inputs, _ = rul_model.model.last_windows(rul_model.test)
    out = run_onnx(path, {"history": inputs[0].numpy(), "start": inputs[1].numpy(), "age": inputs[2].numpy()})["rul"]
    table = rul_model.model.predict(rul_model.test)
    np.testing.assert_allclose(out, table[["rul", "rul_low", "rul_high"]].to_numpy(), atol=1e-3)
    bands = np.searchsorted(rul_model.model.interval_bands_["edges"], table["rul"], side="right")
    assert len(np.unique(bands)) >= 3  # the graph picks each unit's own band's margins
    import onnx

    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert json.loads(props["interval_bands"]) == rul_model.model.interval_bands_


def test_fd001_onnx_parity(shared_data, tmp_path):
    train = read_runs(shared_data / "cmapss" / "train_FD001.txt")
    train.frame = train.frame[train.frame["unit"] <= 10].reset_index(drop=True)
    model = RULModel(members=2, max_epochs=1, progress=False).fit(train)
    path = export_onnx(model, tmp_path / "fd001.onnx")
    assert check_parity(model, path, shared_data / "cmapss" / "test_FD001.txt") < 1e-4


def test_metadata_names_the_task(rul_model, tmp_path):
    path = rul_model.model.export_onnx(tmp_path / "rul.onnx")
    meta = read_metadata(path)
    assert meta["task"] == "rul" and json.loads(meta["outputs"]) == ["rul", "rul_low", "rul_high"]
    assert json.loads(meta["columns"]) == rul_model.model.setting_columns_ + rul_model.model.sensor_columns_
    assert rul_model.model.onnx_parity(path, rul_model.test) < 1e-4  # the estimator's face asks this exporter
