"""Int8 export (`kits.quantise`, `shopfloor export --int8`): parity with the float model within the stated
tolerance, and the refusals (too few items, a metric outside tolerance, a task without int8), each leaving
no file."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FIXTURES, failure_table
from typer.testing import CliRunner

from shopfloor.cli import app
from shopfloor.errors import BadOption, NotSupported
from shopfloor.kits import quantise


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_table_model_int8_keeps_its_f1_and_shrinks(binary_model, tmp_path):
    out = tmp_path / "failure.onnx"
    report = quantise.export_int8(binary_model.model, out, failure_table(300, seed=1))
    assert report["method"] == "dynamic" and report["metric"] == "f1"
    assert out.is_file() and quantise.int8_path_for(out).is_file()
    assert report["int8_bytes"] < report["float_bytes"]
    assert abs(report["int8_f1"] - report["float_f1"]) <= 0.02  # a row or two of 300 may cross the threshold
    assert report["float_f1"] > 0.6  # the tiny model learned the rule: a broken graph would score near 0
    edge = binary_model.model.edge_data(failure_table(300, seed=1))
    exported, compact = quantise.run_all(out, edge), quantise.run_all(quantise.int8_path_for(out), edge)
    assert np.abs(exported["probabilities"] - compact["probabilities"]).max() < 0.05


def test_rul_model_int8_keeps_its_rmse_within_two_percent(rul_model, tmp_path):
    report = quantise.export_int8(rul_model.model, tmp_path / "rul.onnx", rul_model.train)  # runs to failure
    assert report["method"] == "static" and report["metric"] == "rmse" and report["items"] > 500
    assert report["int8_rmse"] <= report["float_rmse"] * 1.02
    assert report["float_rmse"] < 0.5 * rul_model.model.rul_cap  # the model learned: a broken graph is far off


def test_rul_edge_data_with_truth_scores_as_evaluate_does(rul_model, tmp_path):
    edge = rul_model.model.edge_data(rul_model.test, rul_model.truth)
    float_path = rul_model.model.export_onnx(tmp_path / "rul.onnx")
    rmse = edge.score(quantise.run_all(float_path, edge))
    assert rmse == pytest.approx(rul_model.model.evaluate(rul_model.test, rul_model.truth)["rmse"], rel=1e-3)


def test_image_model_static_int8_agrees_with_float(defect_model, surfaces, tmp_path):
    edge = defect_model.model.edge_data(surfaces.classes)
    assert edge.method == "static" and edge.count >= quantise.MIN_CALIBRATION
    float_path = defect_model.model.export_onnx(tmp_path / "float.onnx")
    int8_path = quantise.quantise_file(float_path, tmp_path / "int8.onnx", edge)
    exported, compact = quantise.run_all(float_path, edge), quantise.run_all(int8_path, edge)
    agree = np.mean(exported["probabilities"].argmax(1) == compact["probabilities"].argmax(1))
    assert agree >= 0.9
    assert np.abs(exported["probabilities"] - compact["probabilities"]).max() < 0.25
    assert int8_path.stat().st_size * 2 < float_path.stat().st_size


def test_too_small_a_calibration_set_says_how_many_are_needed(defect_model, surfaces, tmp_path):
    with pytest.raises(BadOption, match=f"needs at least {quantise.MIN_CALIBRATION}"):
        quantise.export_int8(defect_model.model, tmp_path / "d.onnx", surfaces.classes_test)  # 30 images
    assert list(tmp_path.iterdir()) == []


def test_a_metric_outside_tolerance_refuses_and_writes_nothing(binary_model, tmp_path, monkeypatch):
    monkeypatch.setitem(quantise.TOLERANCES, "f1", (-1.0, False))  # a tolerance no int8 file can meet
    with pytest.raises(NotSupported, match="beyond the tolerance"):
        quantise.export_int8(binary_model.model, tmp_path / "f.onnx", failure_table(300, seed=1))
    assert list(tmp_path.iterdir()) == []


def test_within_tolerance_counts_only_the_harmful_direction():
    assert quantise.within_tolerance("accuracy", 0.90, 0.896)
    assert not quantise.within_tolerance("accuracy", 0.90, 0.894)
    assert quantise.within_tolerance("accuracy", 0.90, 0.95)
    assert quantise.within_tolerance("rmse", 20.0, 20.39)
    assert not quantise.within_tolerance("rmse", 20.0, 20.41)


def test_cli_int8_writes_both_files_and_reports(binary_model, tmp_path):
    data = tmp_path / "new.csv"
    failure_table(300, seed=1).to_csv(data, index=False)
    result = cli("export", "--model", binary_model.folder, "--out", tmp_path / "m.onnx", "--int8", "--data", data)
    assert result.exit_code == 0, result.output
    assert "smaller" in result.output and "f1 on 300 items" in result.output
    assert (tmp_path / "m.onnx").is_file() and (tmp_path / "m.int8.onnx").is_file()


@pytest.mark.parametrize("case", ["no data", "few rows", "optimiser"])
def test_cli_int8_refusals_are_one_line_and_write_nothing(binary_model, tmp_path, case):
    data = tmp_path / "few.csv"
    failure_table(5, seed=1).to_csv(data, index=False)
    model = FIXTURES / "models" / "optimize-v2" if case == "optimiser" else binary_model.folder
    extra = [] if case == "no data" else ["--data", data]
    result = cli("export", "--model", model, "--out", tmp_path / "out" / "m.onnx", "--int8", *extra)
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert {"no data": "--int8 needs --data", "few rows": "at least 20", "optimiser": "int8"}[case] in result.output
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("ratio", [0.6, 1.8])
def test_report_says_when_int8_runs_slower(ratio):
    report = {"metric": "f1", "float_path": "m.onnx", "int8_path": "m.int8.onnx", "method": "static", "why": "a CNN",
              "float_bytes": 4e6, "int8_bytes": 1e6, "size_ratio": 4.0, "speed_batch": 8, "items": 40,
              "float_f1": 0.9, "int8_f1": 0.9, "float_ms_2_threads": 10.0, "int8_ms_2_threads": 10 / ratio,
              "speed_ratio_2_threads": ratio, "float_ms_1_threads": 10.0, "int8_ms_1_threads": 10 / ratio,
              "speed_ratio_1_threads": ratio}
    lines = quantise.report_lines(report)
    assert "4.0x smaller" in lines[1] and f"({ratio:.2f}x)" in lines[2]
    assert any("slower" in line for line in lines) == (ratio < 1)
