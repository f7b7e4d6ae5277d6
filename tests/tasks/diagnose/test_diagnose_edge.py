"""A diagnosis model on the edge: int8 export within 0.5 points of accuracy (the unknown verdict kept), attacks
that lower its accuracy, the channel it was built to rely on named by the stuck-channel curves, and a too-small
calibration set refused in one line with nothing written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bearings import DEFECTS, RATE, vibration
from typer.testing import CliRunner

from shopfloor.cli import app
from shopfloor.kits import quantise
from shopfloor.robustness.curves import robustness_curves
from shopfloor.tasks.diagnose.model import DiagnoseModel

CLASSES = ("normal", "inner", "outer")
WINDOW = 512


def write_two_channels(root, seconds: float, seed: int):
    """Class folders of CSV recordings with two channels: `housing`, a healthy bearing's vibration in every class
    (no fault shows there), and `bearing`, the class's own vibration: a model can only learn from `bearing`."""
    for c, name in enumerate(CLASSES):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"housing": vibration(None, seconds, seed=seed * 100 + 50 + c),
                      "bearing": vibration(DEFECTS.get(name), seconds, seed=seed * 100 + c)}).to_csv(
            folder / f"{name}.csv", index=False)
    return root


@pytest.fixture(scope="module")
def two_channels(tmp_path_factory):
    root = tmp_path_factory.mktemp("two-channels")
    write_two_channels(root / "train", 2.0, seed=0)
    write_two_channels(root / "test", 1.5, seed=1)  # 3 classes x 35 windows of 512 samples
    write_two_channels(root / "few", 0.4, seed=2)  # 3 classes x 9 windows: too few to calibrate
    model = DiagnoseModel(window=WINDOW, rate=RATE, max_epochs=12, progress=False).fit(root / "train")
    folder = model.save(root / "model")
    return model, folder, root


def test_int8_keeps_accuracy_and_the_unknown_verdict(two_channels, tmp_path):
    model, _, root = two_channels
    out = tmp_path / "diagnose.onnx"
    report = quantise.export_int8(model, out, root / "test")
    assert report["method"] == "static" and report["metric"] == "accuracy" and report["items"] >= 100
    assert report["float_accuracy"] > 0.9  # the model learned: a broken graph scores near 1/3
    assert report["int8_accuracy"] >= report["float_accuracy"] - 0.005  # the stated tolerance, 0.5 points
    assert out.is_file() and quantise.int8_path_for(out).is_file()
    edge = model.edge_data(root / "test")
    exported, compact = quantise.run_all(out, edge), quantise.run_all(quantise.int8_path_for(out), edge)
    assert np.mean((exported["novelty"] > 1) != (compact["novelty"] > 1)) <= 0.01  # spectra and distances in float
    assert np.abs(exported["probabilities"] - compact["probabilities"]).max() < 0.2


def test_attacks_lower_accuracy_and_the_curves_name_the_channel_it_relies_on(two_channels):
    model, _, root = two_channels
    report = robustness_curves(model, root / "test")
    names = [c["name"] for c in report["curves"]]
    assert names == ["gaussian noise", "channel gain", "FGSM", "PGD (3 steps)"]
    assert report["metric"] == "accuracy" and report["clean"] > 0.9
    for attack in report["curves"][2:]:
        points = [m for _, m in attack["points"]]
        assert points[0] == report["clean"] and points[-1] < report["clean"] - 0.3
    assert report["leans_on"][0] == "bearing"  # ranked by the loss with the channel shuffled among the windows
    effects = {row["input"]: row for row in report["inputs"]}
    assert effects["bearing"]["shuffled"] < 0.6 and effects["housing"]["shuffled"] > 0.85
    assert effects["bearing"]["stuck"] < 0.6  # a dead sensor: a flat channel (on either, as it happens)
    assert effects["bearing"]["missing"] is None  # the network reads no missing samples


def test_cli_refuses_a_too_small_calibration_set_in_one_line(two_channels, tmp_path):
    _, folder, root = two_channels
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(app, ["export", "--model", str(folder), "--out", str(out / "d.onnx"), "--int8",
                                      "--data", str(root / "few")])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert f"needs at least {quantise.MIN_CALIBRATION}" in result.output and "windows" in result.output
    assert list(out.iterdir()) == []
