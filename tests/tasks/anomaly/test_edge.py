"""Int8 export of the anomaly detector (`tasks/anomaly/edge.py`, `bank_search.py`): the int8 bank search finds
what the float search finds, the exported pair keeps image AUROC within the stated 0.005 and shrinks 3x, and a
tolerance the int8 file cannot meet still refuses with the reason and writes nothing."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from shopfloor.cli import app
from shopfloor.kits import quantise
from shopfloor.tasks.anomaly.bank_search import float_tail, int8_search, quantise_bank, search_nodes


@pytest.fixture(scope="module")
def float_file(anomaly_model, tmp_path_factory):
    return anomaly_model.model.export_onnx(tmp_path_factory.mktemp("edge") / "float.onnx")


@pytest.fixture(scope="module")
def check_set(tmp_path_factory):
    """More test images than the session's inspection set (28, under the 32 a static calibration needs), drawn
    from the same generator with another seed."""
    from shopfloor.vision.surfaces import write_inspection_set

    return write_inspection_set(tmp_path_factory.mktemp("edge") / "check", train_good=1, test_good=24,
                                test_per_defect=8, size=96, seed=1)


def test_bank_rounding_is_within_half_a_step_per_patch():
    bank = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32) * np.linspace(0.01, 5, 50)[:, None]
    quantised, scale = quantise_bank(bank)
    assert quantised.dtype == np.int8 and np.abs(quantised).max() == 127
    assert np.all(np.abs(quantised * scale[:, None] - bank) <= scale[:, None] / 2 + 1e-7)


def test_int8_search_finds_the_float_nearest_patch(anomaly_model, surfaces, float_file, tmp_path):
    """Only the search rewritten (the backbone float), so any difference is the search's: the heatmaps agree to
    a small fraction of their 0..1 range, where a wrong distance (a lost factor, a wrong bank row) moves them far."""
    model = anomaly_model.model
    float_path = float_file
    proto = int8_search(onnx.load(str(float_path)))
    assert "Gemm" not in {n.op_type for n in proto.graph.node}  # the float bank left the file
    assert not any(i.data_type == onnx.TensorProto.FLOAT and len(i.dims) == 2 and i.dims[0] == len(model.net_.bank)
                   for i in proto.graph.initializer)
    search_path = tmp_path / "search.onnx"
    onnx.save(proto, str(search_path))
    edge = model.edge_data(surfaces.inspection)
    exact, searched = quantise.run_all(float_path, edge), quantise.run_all(search_path, edge)
    assert np.abs(exact["heatmap"] - searched["heatmap"]).max() < 0.05
    assert np.abs(exact["score"] - searched["score"]).mean() < 0.005
    assert search_path.stat().st_size < float_path.stat().st_size - 2.9 * model.net_.bank.numel()  # 4 bytes -> 1


def test_the_tail_from_the_patch_features_on_stays_float(float_file):
    proto = onnx.load(str(float_file))
    tail = set(float_tail(proto))
    gemm, minimum = search_nodes(proto)
    assert {gemm.name, minimum.name} <= tail
    kinds = {n.op_type for n in proto.graph.node if n.name in tail}
    assert "Sigmoid" in kinds and "Conv" in kinds  # the score, and the heatmap's smoothing
    backbone = [n for n in proto.graph.node if n.op_type == "Conv" and n.name not in tail]
    assert len(backbone) > 20  # the network's convolutions are left to the quantiser


def test_int8_export_keeps_image_auroc_and_is_three_times_smaller(anomaly_model, check_set, tmp_path):
    report = quantise.export_int8(anomaly_model.model, tmp_path / "anomaly.onnx", check_set)
    assert report["metric"] == "image_auroc" and report["items"] >= quantise.MIN_CALIBRATION
    assert report["float_image_auroc"] > 0.9  # the model tells the defects: a broken graph would score near 0.5
    assert report["int8_image_auroc"] >= report["float_image_auroc"] - 0.005
    assert report["size_ratio"] >= 3
    ops = {n.op_type for n in onnx.load(report["int8_path"]).graph.node}
    assert {"MatMulInteger", "TopK", "QuantizeLinear"} <= ops and "Gemm" not in ops


def test_a_tolerance_the_int8_file_breaks_refuses_in_one_line_and_writes_nothing(anomaly_model, check_set, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setitem(quantise.TOLERANCES, "image_auroc", (-1.0, False))  # a tolerance no int8 file can meet
    monkeypatch.setattr(quantise, "median_seconds", lambda *args, **kwargs: 1.0)  # speed plays no part here
    result = CliRunner().invoke(app, ["export", "--model", str(anomaly_model.folder), "--out",
                                      str(tmp_path / "out" / "a.onnx"), "--int8", "--data", str(check_set)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "image_auroc" in result.output and "beyond the tolerance" in result.output
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
