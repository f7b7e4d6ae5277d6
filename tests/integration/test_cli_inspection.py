"""`shopfloor train defects|anomaly` and the commands that use them, end to end, and the bad inputs of issue 4."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_cli import assert_refused, files_under, shopfloor

FAST_DEFECTS = ["--backbone", "scratch", "--image-size", "64", "--max-epochs", "2", "--quiet"]


@pytest.fixture(scope="module")
def classes(tmp_path_factory) -> Path:
    from shopfloor.vision.surfaces import write_defect_classes

    return write_defect_classes(tmp_path_factory.mktemp("cli-classes") / "classes", per_class=12, size=64)


def copy_of(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / folder.name
    shutil.copytree(folder, target)
    return target


def test_defects_train_evaluate_predict_export_report_info(classes: Path, tmp_path: Path):
    model = tmp_path / "model"
    result = shopfloor("train", "defects", "--data", classes, "--out", model, *FAST_DEFECTS)
    assert result.exit_code == 0, result.output
    assert "backbone scratch" in result.stderr  # which backbone was trained, now that the default is auto
    assert shopfloor("evaluate", "--model", model, "--data", classes, "--json", tmp_path / "m.json").exit_code == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert {"accuracy", "f1_macro"} <= set(metrics) and metrics["images"] == 36

    result = shopfloor("predict", "--model", model, "--data", classes, "--out", tmp_path / "verdicts.csv")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "verdicts.csv")
    assert len(table) == 36 and {"file", "defect", "confidence", "heatmap"} <= set(table.columns)
    assert all(Path(p).is_file() for p in table["heatmap"])
    with Image.open(table["heatmap"][0]) as overlay:
        assert overlay.mode == "RGB"

    single = next((classes / "crack").iterdir())
    result = shopfloor("predict", "--model", model, "--data", single, "--out", tmp_path / "one")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "one" / "predictions.csv").is_file() and len(list((tmp_path / "one" / "heatmaps").iterdir())) == 1

    result = shopfloor("export", "--model", model, "--out", tmp_path / "m.onnx", "--data", classes)
    assert result.exit_code == 0, result.output
    assert float(result.stderr.rsplit("difference", 1)[1]) <= 1e-4
    assert shopfloor("report", "--model", model, "--out", tmp_path / "r.html", "--data", classes).exit_code == 0
    assert "Confusion matrix" in (tmp_path / "r.html").read_text()
    assert shopfloor("report", "--model", model, "--out", tmp_path / "r2.html").exit_code == 0
    result = shopfloor("info", "--model", model)
    assert result.exit_code == 0 and "crack, scratch, spot" in result.output and "backbone scratch" in result.output


def test_anomaly_train_evaluate_predict_export_report(surfaces, tmp_path: Path):
    model = tmp_path / "model"
    result = shopfloor("train", "anomaly", "--data", surfaces.inspection, "--out", model, "--image-size", "96", "--quiet")
    assert result.exit_code == 0, result.output
    assert "good-only" in result.stderr
    assert shopfloor("evaluate", "--model", model, "--data", surfaces.inspection, "--json", tmp_path / "m.json").exit_code == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert {"image_auroc", "pixel_auroc", "aupro", "f1"} <= set(metrics)
    result = shopfloor("predict", "--model", model, "--data", surfaces.inspection / "test", "--out", tmp_path / "v.csv")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "v.csv")
    assert set(table["verdict"]) <= {"good", "defect"} and table["score"].between(0, 1).all()
    result = shopfloor("export", "--model", model, "--out", tmp_path / "a.onnx", "--data", surfaces.inspection / "test")
    assert result.exit_code == 0, result.output
    assert shopfloor("report", "--model", model, "--out", tmp_path / "r.html", "--data", surfaces.inspection).exit_code == 0
    assert "ROC" in (tmp_path / "r.html").read_text()
    assert "aspect ratio kept" in shopfloor("info", "--model", model).output


def test_corrupt_and_non_image_files_are_skipped_with_a_warning(classes: Path, tmp_path: Path):
    data = copy_of(classes, tmp_path)
    (data / "crack" / "notes.txt").write_text("shift log")
    good = next((data / "spot").iterdir()).read_bytes()
    (data / "spot" / "cut.png").write_bytes(good[: len(good) // 2])
    (data / "scratch" / "fake.jpg").write_text("not a picture")
    result = shopfloor("train", "defects", "--data", data, "--out", tmp_path / "m", *FAST_DEFECTS)
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "fake.jpg" in result.stderr


@pytest.mark.parametrize("case", ["empty class", "one class", "no folder", "not a model folder"])
def test_hopeless_inputs_exit_2_with_one_line_and_write_nothing(case, classes: Path, tmp_path: Path):
    data = copy_of(classes, tmp_path)
    if case == "empty class":
        (data / "dent").mkdir()
        expected = "dent"
    elif case == "one class":
        shutil.rmtree(data / "scratch")
        shutil.rmtree(data / "spot")
        expected = "class"
    elif case == "no folder":
        data = tmp_path / "missing"
        expected = "missing"
    else:
        (tmp_path / "m").mkdir()
        (tmp_path / "m" / "keep.txt").write_text("mine")
        expected = "refusing to overwrite"
    before = files_under(tmp_path)
    assert_refused(shopfloor("train", "defects", "--data", data, "--out", tmp_path / "m", *FAST_DEFECTS), expected)
    assert files_under(tmp_path) == before


def test_anomaly_without_good_images_is_refused(tmp_path: Path):
    (tmp_path / "line" / "train" / "good").mkdir(parents=True)
    assert_refused(shopfloor("train", "anomaly", "--data", tmp_path / "line", "--out", tmp_path / "m"), "good")
    assert not (tmp_path / "m").exists()


def test_a_mask_of_another_size_is_refused(anomaly_model, surfaces, tmp_path: Path):
    data = copy_of(surfaces.inspection, tmp_path)
    mask = next((data / "ground_truth" / "crack").iterdir())
    Image.new("L", (50, 40)).save(mask)
    assert_refused(shopfloor("evaluate", "--model", anomaly_model.folder, "--data", data), mask.name, "50 x 40")


def test_a_huge_image_is_shrunk_without_running_out_of_memory(anomaly_model, tmp_path: Path):
    """10,000 x 10,000 pixels: decoded and shrunk inside PIL, never held as floats at full size."""
    Image.new("L", (10_000, 10_000), 128).save(tmp_path / "huge.png")
    result = shopfloor("predict", "--model", anomaly_model.folder, "--data", tmp_path / "huge.png", "--out", tmp_path / "v.csv")
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "v.csv")) == 1


def test_grey_and_colour_images_mixed_in_one_folder(classes: Path, tmp_path: Path):
    data = copy_of(classes, tmp_path)
    for file in list((data / "spot").iterdir())[:4]:  # tinted: a colour camera's picture, not grey saved as RGB
        grey = np.asarray(Image.open(file).convert("L"), dtype=np.uint8)
        Image.fromarray(np.stack([grey, grey // 2, grey // 3], -1)).save(file)
    model = tmp_path / "m"
    assert shopfloor("train", "defects", "--data", data, "--out", model, *FAST_DEFECTS).exit_code == 0
    assert json.loads((model / "manifest.json").read_text())["state"]["channels"] == 3
    result = shopfloor("predict", "--model", model, "--data", data, "--out", tmp_path / "v.csv")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "v.csv")
    assert len(table) == 36 and np.isfinite(table["confidence"]).all()
