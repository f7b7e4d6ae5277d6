"""A monitor model on the edge: int8 export within the stated tolerance (AUROC within 0.005 against a label; without
one, at most 0.5 % of steps flagged otherwise than float), attacks that push the score the wrong way lower its
AUROC, the unlabelled report measured against the model's own flags, and a too-short history refused in one line
with nothing written."""

from __future__ import annotations

import json
import warnings

import pytest
from monitor_processes import pump, with_fault
from typer.testing import CliRunner

from shopfloor.cli import app
from shopfloor.errors import BadOption
from shopfloor.kits import quantise
from shopfloor.robustness.curves import robustness_curves
from shopfloor.tasks.monitor import edge
from shopfloor.tasks.monitor.model import MonitorModel

FAULT = 2_000


@pytest.fixture(scope="module")
def monitor(tmp_path_factory):
    model = MonitorModel(time="time", max_epochs=10, progress=False).fit(pump(rows=800, seed=0))
    readings, _ = with_fault(pump(rows=2_400, seed=3), "drift", start=FAULT)  # pressure drifts from row 2,000
    readings["fault"] = (readings.index >= FAULT).astype(int)
    return model, readings, model.save(tmp_path_factory.mktemp("monitor") / "model")


def test_pieces_cover_every_row_once_with_its_label(monitor):
    model, readings, _ = monitor
    pieces = edge.read_pieces(model, readings, "fault")
    assert pieces.readings.shape[1:] == (len(model.sensor_columns_), model.net_.reach() + edge.PIECE)
    assert pieces.scored.sum() == len(readings) and pieces.label[pieces.scored].sum() == len(readings) - FAULT


def test_int8_keeps_the_auroc_and_the_file_runs_faster_or_smaller(monitor, tmp_path):
    model, readings, _ = monitor
    out = tmp_path / "monitor.onnx"
    report = quantise.export_int8(model, out, readings, "fault")
    assert report["method"] == "static" and report["metric"] == "auroc"
    assert report["float_auroc"] > 0.9  # the model finds the drift: a broken graph scores near 0.5
    assert report["int8_auroc"] >= report["float_auroc"] - 0.005  # the stated tolerance
    assert out.is_file() and quantise.int8_path_for(out).is_file() and report["int8_bytes"] < report["float_bytes"]


def test_the_attacks_lower_the_auroc(monitor):
    model, readings, _ = monitor
    report = robustness_curves(model, readings, "fault")
    assert report["metric"] == "auroc" and report["clean"] > 0.9
    assert [c["name"] for c in report["curves"]] == ["gaussian noise", "FGSM", "PGD (3 steps)"]
    for attack in report["curves"][1:]:
        points = [m for _, m in attack["points"]]
        assert points[0] == report["clean"] and points[-1] < report["clean"] - 0.1
    assert set(report["leans_on"]) <= set(model.sensor_columns_) and report["inputs"][0]["missing"] is None


def test_without_a_label_the_report_measures_agreement_with_the_models_own_flags(monitor):
    model, readings, _ = monitor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fault column is a numeric column the model did not learn
        report = robustness_curves(model, readings)
    assert report["metric"] == "flag_agreement" and report["clean"] == 1.0
    fgsm = [m for _, m in report["curves"][1]["points"]]
    assert fgsm[-1] < 0.9  # pushed up where the model is calm and down where it alarms


def test_too_short_a_history_says_how_many_pieces_are_needed(monitor, tmp_path):
    model, readings, folder = monitor
    with pytest.raises(BadOption, match=f"needs at least {quantise.MIN_CALIBRATION}"):
        quantise.export_int8(model, tmp_path / "m.onnx", readings.head(600), "fault")
    short = tmp_path / "short.csv"
    readings.head(600).drop(columns=["fault"]).to_csv(short, index=False)  # unlabelled: flag agreement
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(app, ["export", "--model", str(folder), "--out", str(out / "m.onnx"), "--int8",
                                      "--data", str(short)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "pieces" in result.output and list(out.iterdir()) == []


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def readings_file(monitor, tmp_path_factory):
    """The day with a drift and its `fault` column, as the demo's pumps-today.csv holds one."""
    _, readings, _ = monitor
    path = tmp_path_factory.mktemp("readings") / "today.csv"
    readings.to_csv(path, index=False)
    return path


def test_export_with_label_is_judged_by_auroc_and_without_by_flag_agreement(monitor, readings_file, tmp_path):
    _, _, folder = monitor
    labelled = cli("export", "--model", folder, "--out", tmp_path / "a" / "m.onnx", "--int8", "--data", readings_file,
                   "--label", "fault")
    assert labelled.exit_code == 0, labelled.output
    assert "auroc on" in labelled.output and "flag_agreement" not in labelled.output
    assert (tmp_path / "a" / "m.int8.onnx").is_file()
    unlabelled = cli("export", "--model", folder, "--out", tmp_path / "b" / "m.onnx", "--int8", "--data", readings_file)
    assert "flag_agreement" in unlabelled.output and "auroc" not in unlabelled.output  # written or refused by it


def test_robustness_with_label_is_judged_by_auroc(monitor, readings_file, tmp_path):
    _, _, folder = monitor
    result = cli("robustness", "--model", folder, "--data", readings_file, "--json", tmp_path / "r.json",
                 "--label", "fault")
    assert result.exit_code == 0, result.output
    found = json.loads((tmp_path / "r.json").read_text())
    assert found["metric"] == "auroc" and found["clean"] > 0.9 and "-> auroc" in result.output


@pytest.mark.parametrize("command", ["export", "robustness"])
def test_a_label_column_not_in_the_data_is_named_in_one_line_and_nothing_written(monitor, readings_file, tmp_path,
                                                                                   command):
    _, _, folder = monitor
    out = tmp_path / "out"
    out.mkdir()
    written = (["--out", out / "m.onnx", "--int8"] if command == "export" else ["--json", out / "r.json"])
    result = cli(command, "--model", folder, "--data", readings_file, *written, "--label", "faults")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "faults" in result.output and list(out.iterdir()) == []


def test_export_truth_needs_int8_and_is_given_once(monitor, readings_file, tmp_path):
    _, _, folder = monitor
    without_int8 = cli("export", "--model", folder, "--out", tmp_path / "m.onnx", "--data", readings_file,
                       "--label", "fault")
    assert without_int8.exit_code == 2 and "--int8" in without_int8.output
    twice = cli("export", "--model", folder, "--out", tmp_path / "m.onnx", "--int8", "--data", readings_file,
                "--label", "fault", "--rul", readings_file)
    assert twice.exit_code == 2 and "give the truth once" in twice.output
    assert list(tmp_path.iterdir()) == []
