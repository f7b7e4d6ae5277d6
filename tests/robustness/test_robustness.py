"""The robustness report: attacks that can lower a brittle model's accuracy, noise curves that fall as the
noise grows, the inputs a model leans on named, and the command's bad inputs refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import failure_table
from typer.testing import CliRunner

from shopfloor.cli import app
from shopfloor.robustness import attacks, perturb
from shopfloor.robustness.curves import robustness_curves
from shopfloor.robustness.probe import Probe, per_input


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def linear_probe(weights: list[float]) -> Probe:
    """A linear yes/no classifier on 3 readings whose label is the sign of the first: with a huge weight on the
    third, a reading that carries no information, it is right on clean rows only thanks to a bias that
    cancels it, and a small push on that reading flips its answers."""
    rng = np.random.default_rng(0)
    raw = torch.from_numpy(rng.normal(size=(400, 3)).astype(np.float32))
    raw[:, 2] = 1.0  # constant: the reading carries nothing
    labels = (raw[:, 0] > 0).float()
    weight = torch.tensor(weights)

    def forward(x):
        return torch.sigmoid(x @ weight - weight[2] * 1.0)

    def loss(outputs, part):
        return torch.nn.functional.binary_cross_entropy(outputs.clamp(1e-6, 1 - 1e-6), labels[part])

    def metric(outputs):
        return float(torch.mean(((outputs >= 0.5).float() == labels).float()))

    spread, typical = per_input(raw.numpy(), 1)
    spread = torch.ones_like(spread)  # budgets in reading units: both models meet the same push
    return Probe(raw, forward, loss, metric, "accuracy", True, "table", spread, ["a", "b", "c"], 1, typical)


def test_attacks_lower_a_brittle_models_accuracy_and_spare_a_sound_one():
    brittle, sound = linear_probe([1.0, 0.0, 400.0]), linear_probe([5.0, 0.0, 0.0])
    assert brittle.score(brittle.raw) > 0.95 and sound.score(sound.raw) > 0.95
    for attack in (attacks.fgsm, attacks.pgd):
        assert brittle.score(attack(brittle, 0.05)) < 0.6  # a push of 0.05 on the third reading flips it
        assert sound.score(attack(sound, 0.05)) > 0.85  # only rows within 0.05 of the boundary can flip
    assert brittle.score(attacks.pgd(brittle, 0.0)) == brittle.score(brittle.raw)


def test_stuck_input_names_what_the_model_leans_on():
    probe = linear_probe([5.0, 0.0, 0.0])
    stuck = probe.score(perturb.set_input(probe.raw, 1, 0, probe.typical[0, 0]))
    ignored = probe.score(perturb.set_input(probe.raw, 1, 1, probe.typical[0, 1]))
    assert stuck < 0.7 and ignored == probe.score(probe.raw)


def test_table_model_curves_fall_with_noise_and_name_torque_and_speed(binary_model):
    report = robustness_curves(binary_model.model, failure_table(300, seed=1))
    noise = [m for _, m in report["curves"][0]["points"]]
    assert report["curves"][0]["name"] == "gaussian noise" and report["metric"] == "f1"
    assert noise[0] > 0.7 and noise[-1] < noise[0] - 0.2
    assert all(later <= earlier + 0.05 for earlier, later in zip(noise, noise[1:], strict=False))  # monotone-ish
    assert set(report["leans_on"][:2]) == {"Torque [Nm]", "Rotational speed [rpm]"}  # failure = torque x speed
    fgsm = [m for _, m in report["curves"][1]["points"]]
    assert fgsm[-1] < fgsm[0] - 0.2


def test_rul_model_attack_raises_rmse(rul_model):
    report = robustness_curves(rul_model.model, rul_model.test, rul_model.truth)
    assert report["metric"] == "rmse" and not report["higher_is_better"]
    pgd = [m for _, m in report["curves"][2]["points"]]
    assert pgd[-1] > 1.5 * pgd[0]
    assert set(report["leans_on"]) <= set(rul_model.model.sensor_columns_ + rul_model.model.setting_columns_)


def test_image_perturbations_keep_shape_and_range():
    images = torch.rand(2, 1, 32, 32) * 255
    for change, strengths, _ in perturb.IMAGE_CURVES.values():
        for strength in strengths:
            out = change(images, strength)
            assert out.shape == images.shape and float(out.min()) >= -1e-3 and float(out.max()) <= 255 + 1e-3
    assert torch.equal(perturb.blur(images, 0.0), images)
    assert float((perturb.blur(images, 2.0) - images).abs().mean()) > 5  # noise images lose their detail


def test_cli_writes_curves_and_page(binary_model, tmp_path):
    data = tmp_path / "new.csv"
    failure_table(300, seed=1).to_csv(data, index=False)
    result = cli("robustness", "--model", binary_model.folder, "--data", data, "--json", tmp_path / "r.json",
                 "--report", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "r.json").read_text())
    assert {c["name"] for c in written["curves"]} == {"gaussian noise", "FGSM", "PGD (3 steps)"}
    assert "leans most on" in result.output and "<img" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("case", ["columns", "images", "empty", "label"])
def test_cli_bad_inputs_are_one_line_and_write_nothing(binary_model, surfaces, tmp_path, case):
    data = tmp_path / "bad.csv"
    label = []
    if case == "label":  # a table model's labels are its target columns: a label column means nothing to it
        failure_table(50, seed=1).to_csv(data, index=False)
        label = ["--label", "failure"]
    elif case == "columns":
        failure_table(50, seed=1).drop(columns=["Torque [Nm]"]).to_csv(data, index=False)
    elif case == "empty":
        data.write_text("")
    else:
        data = surfaces.classes_test
    out = tmp_path / "out"
    out.mkdir()
    result = cli("robustness", "--model", binary_model.folder, "--data", data, "--json", out / "r.json",
                 "--report", out / "r.html", *label)
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    if case == "columns":
        assert "Torque [Nm]" in result.output
    if case == "label":
        assert "takes its labels from the data itself" in result.output
    assert list(out.iterdir()) == []


def test_image_models_get_image_curves_and_attacks_hurt(defect_model, anomaly_model, surfaces):
    for model, data, metric in [(defect_model.model, surfaces.classes_test, "accuracy"),
                                (anomaly_model.model, surfaces.inspection, "image_auroc")]:
        report = robustness_curves(model, data)
        names = [c["name"] for c in report["curves"]]
        assert report["metric"] == metric and report["items"] <= 32 and "inputs" not in report
        assert names == ["blur", "brightness", "jpeg", "rotation", "FGSM", "PGD (3 steps)"]
        assert report["clean"] > 0.7  # the generated defects are plain: a broken probe scores near chance
        pgd = report["curves"][-1]["points"]
        assert pgd[0][1] == report["clean"] and pgd[-1][1] < report["clean"]
