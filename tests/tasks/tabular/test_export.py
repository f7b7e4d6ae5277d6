"""Table models' ONNX export: onnxruntime must give the torch model's answers from the raw table columns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
from conftest import SHARED_DATA

from shopfloor.errors import BadOption
from shopfloor.kits.onnx import run_onnx
from shopfloor.tasks.tabular.export import check_parity, export_onnx, onnx_inputs, read_facts
from shopfloor.tasks.tabular.model import TabularModel

AI4I = SHARED_DATA / "ai4i2020" / "ai4i2020.csv"
FAST = {"bags": 2, "members": 2, "max_epochs": 5, "hidden": 32, "n_bins": 8, "d_embedding": 4, "progress": False}
TARGETS = ["failed", "mode", "overheat", "scrap_rate"]
TOLERANCE = 1e-4


def factory_table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    torque = rng.normal(40, 10, rows)
    speed = rng.uniform(1200, 2800, rows)
    line = rng.choice(["press", "mill", "lathe"], rows)
    torque[rng.random(rows) < 0.05] = np.nan  # gaps in training teach the model a missing indicator
    risk = np.nan_to_num(torque, nan=40) / 10 + (line == "mill") - speed / 1000 + rng.normal(0, 0.5, rows)
    return pd.DataFrame({
        "Torque [Nm]": torque,
        "speed": speed,
        "serviced": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), unit="D"),
        "line": line,
        "failed": np.where(risk > 3, "yes", "no"),
        "mode": np.select([risk > 3.5, risk < 1.5], ["wear", "power"], "none"),
        "overheat": (speed > 2300).astype(int),
        "scrap_rate": 0.1 * risk + rng.normal(0, 0.05, rows),
    })


def new_rows() -> pd.DataFrame:
    """Rows the model must handle at predict time: unseen, missing, padded and empty categories, gaps."""
    frame = factory_table(60, seed=1)
    frame.loc[0, "line"] = "grinder"  # unseen
    frame.loc[1, "line"] = None
    frame.loc[2, "line"] = "  mill "
    frame.loc[3, "line"] = ""
    frame.loc[4, "Torque [Nm]"] = np.nan
    frame.loc[5, "serviced"] = pd.NaT
    return frame


def fit_and_export(tmp_path_factory, target: str | list[str]) -> tuple[TabularModel, Path]:
    torch.manual_seed(0)
    targets = [target] if isinstance(target, str) else target
    model = TabularModel(target, drop=[t for t in TARGETS if t not in targets], **FAST).fit(factory_table(160, 0))
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "model.onnx")
    return model, path


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    return fit_and_export(tmp_path_factory, "failed")


def assert_same_decisions(model: TabularModel, outputs: np.ndarray, decision: np.ndarray) -> None:
    thresholds = np.asarray(model.thresholds_)[None, :]
    clear = np.abs(outputs - thresholds) > 1e-5  # a hair from the threshold, float rounding may decide
    assert decision.dtype == bool and decision.shape == outputs.shape
    assert np.array_equal(decision[clear], (outputs >= thresholds)[clear])


def torch_outputs(model: TabularModel, frame: pd.DataFrame) -> np.ndarray:
    return model._outputs(*model.schema_.to_arrays(frame))


def test_binary_matches_torch_with_unseen_and_missing_values(binary):
    model, path = binary
    frame = new_rows()
    assert check_parity(model, path, frame) <= TOLERANCE
    exported = run_onnx(path, onnx_inputs(model, frame))
    outputs = torch_outputs(model, frame)
    assert_same_decisions(model, outputs, exported["decision"])
    # A single row, and the special rows one by one: no batch size or code is special-cased.
    for row in range(6):
        assert check_parity(model, path, frame.iloc[[row]]) <= TOLERANCE


def test_overflowing_readings_give_torchs_finite_answer_not_nan(binary):
    # the graph cannot refuse a row as Python, the CLI and the service do; it holds such a reading
    # at the module's far bound, as torch does, instead of answering NaN
    model, path = binary
    frame = new_rows().head(8)
    frame.loc[6, ["Torque [Nm]", "speed"]] = 1e308
    frame.loc[7, ["Torque [Nm]", "speed"]] = [np.inf, -np.inf]
    exported = run_onnx(path, onnx_inputs(model, frame))
    assert np.isfinite(exported["probabilities"]).all()
    assert check_parity(model, path, frame) <= TOLERANCE


def test_graph_takes_one_input_per_column_and_carries_metadata(binary):
    model, path = binary
    proto = onnx.load(path)
    inputs = {i.name: i.type.tensor_type.elem_type for i in proto.graph.input}
    assert list(inputs) == ["Torque [Nm]", "speed", "serviced", "line"]
    assert inputs["line"] == onnx.TensorProto.STRING and inputs["speed"] == onnx.TensorProto.FLOAT
    assert [o.name for o in proto.graph.output] == ["probabilities", "decision"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["inputs"]) == model.schema_.features
    assert json.loads(meta["thresholds"]) == pytest.approx(model.thresholds_)
    assert json.loads(meta["classes"]) == [["no", "yes"]] and meta["kind"] == "binary"
    assert meta["exporter"] == "torch.export"  # the TorchScript fallback is for when it fails, not the rule
    assert len({entry.domain for entry in proto.opset_import}) == len(proto.opset_import)
    assert not list(path.parent.glob(".*tmp*"))  # the atomic write left nothing behind


def test_torchscript_fallback_gives_the_same_answers(binary, tmp_path, monkeypatch):
    model, _ = binary
    real_export = torch.onnx.export

    def dynamo_broken(*args, dynamo=True, **kwargs):
        if dynamo:
            raise RuntimeError("simulated torch.export failure")
        return real_export(*args, dynamo=False, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", dynamo_broken)
    path = export_onnx(model, tmp_path / "fallback.onnx", opset=17)
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert meta["exporter"] == "torchscript"
    assert check_parity(model, path, new_rows()) <= TOLERANCE


def test_multiclass_matches_torch(tmp_path_factory):
    model, path = fit_and_export(tmp_path_factory, "mode")
    frame = new_rows()
    assert check_parity(model, path, frame) <= TOLERANCE
    exported = run_onnx(path, onnx_inputs(model, frame))
    assert exported["probabilities"].shape == (len(frame), 3)
    assert np.array_equal(exported["decision"], exported["probabilities"].argmax(1))


def test_multilabel_matches_torch(tmp_path_factory):
    model, path = fit_and_export(tmp_path_factory, ["failed", "overheat"])
    frame = new_rows()
    assert check_parity(model, path, frame) <= TOLERANCE
    exported = run_onnx(path, onnx_inputs(model, frame))
    assert_same_decisions(model, torch_outputs(model, frame), exported["decision"])


def test_regression_matches_torch_in_target_units(tmp_path_factory):
    model, path = fit_and_export(tmp_path_factory, "scrap_rate")
    frame = new_rows()
    assert check_parity(model, path, frame) <= TOLERANCE
    exported = run_onnx(path, onnx_inputs(model, frame))
    assert list(exported) == ["values"] and exported["values"].shape == (len(frame), 1)


@pytest.mark.skipif(not AI4I.exists(), reason=f"AI4I 2020 data not found at {AI4I}")
def test_ai4i_matches_torch(tmp_path):
    table = pd.read_csv(AI4I, encoding="utf-8-sig")
    rows = table.sample(900, random_state=0)
    train, new = rows.iloc[:600], rows.iloc[600:].copy()
    new.iloc[0, new.columns.get_loc("Type")] = "X"  # a product type the model never saw
    new.iloc[1, new.columns.get_loc("Torque [Nm]")] = np.nan
    model = TabularModel("Machine failure", drop=["TWF", "HDF", "PWF", "OSF", "RNF"], **FAST).fit(train)
    path = export_onnx(model, tmp_path / "ai4i.onnx")
    assert check_parity(model, path, new) <= TOLERANCE
    assert_same_decisions(model, torch_outputs(model, new), run_onnx(path, onnx_inputs(model, new))["decision"])


def test_unsupported_formats_and_opsets_are_refused(binary, tmp_path):
    model, _ = binary
    with pytest.raises(BadOption, match="'.onnx' file"):
        export_onnx(model, tmp_path / "model.pt")
    with pytest.raises(BadOption, match="opset 9"):
        export_onnx(model, tmp_path / "model.onnx", opset=9)


def test_metadata_names_the_task_and_the_kind_of_target(binary):
    model, path = binary
    meta = read_facts(path)
    assert (meta["task"], meta["kind"]) == ("tabular", model.kind_) == ("tabular", "binary")
    assert meta == {p.key: p.value for p in onnx.load(path).metadata_props}  # today's files need no reading-in


def test_files_written_before_the_kind_key_read_as_tabular_with_their_kind(binary, tmp_path):
    # older files held the kind of target under `task`; readers see today's meaning of each key
    _, path = binary
    proto = onnx.load(path)
    old = {p.key: p.value for p in proto.metadata_props if p.key != "kind"} | {"task": "multiclass"}
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, old)
    onnx.save_model(proto, tmp_path / "old.onnx")
    meta = read_facts(tmp_path / "old.onnx")
    assert (meta["task"], meta["kind"]) == ("tabular", "multiclass")
