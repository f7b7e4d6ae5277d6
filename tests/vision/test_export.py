"""The image tasks' ONNX export (defect classes, anomaly detection): one exporter, asked of each estimator."""

from __future__ import annotations

import json

from shopfloor.kits.onnx import read_metadata
from shopfloor.vision.export import check_parity, export_onnx


def test_onnx_matches_torch(defect_model, surfaces, tmp_path):
    path = export_onnx(defect_model.model, tmp_path / "defects.onnx")
    assert check_parity(defect_model.model, path, surfaces.classes_test) <= 1e-4


def test_defect_file_names_its_task_outputs_and_classes(defect_model, surfaces, tmp_path):
    model = defect_model.model
    path = model.export_onnx(tmp_path / "defects.onnx")
    meta = read_metadata(path)
    assert meta["task"] == "defects" and json.loads(meta["outputs"]) == ["probabilities", "heatmap"]
    assert json.loads(meta["classes"]) == model.classes_ and "threshold" not in meta
    assert model.onnx_parity(path, surfaces.classes_test) <= 1e-4  # the estimator's face asks this exporter


def test_anomaly_file_names_its_task_outputs_and_threshold(anomaly_model, surfaces, tmp_path):
    model = anomaly_model.model
    path = model.export_onnx(tmp_path / "anomaly.onnx")
    meta = read_metadata(path)
    assert meta["task"] == "anomaly" and json.loads(meta["outputs"]) == ["score", "heatmap"]
    assert "0.5" in meta["threshold"] and "memory" in meta and "classes" not in meta
    assert model.onnx_parity(path, surfaces.inspection / "test") <= 1e-4
