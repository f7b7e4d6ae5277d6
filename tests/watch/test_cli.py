"""`shopfloor drift` end to end on the session's small models: the report, and one-line refusals that write nothing."""

import json
import shutil
from pathlib import Path

from tests.integration.test_cli import assert_refused
from typer.testing import CliRunner

from shopfloor.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def shopfloor(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_drift_reports_a_shifted_input_by_name_with_the_estimated_performance(binary_model, tmp_path):
    new = binary_model.new.copy()
    new["Air temperature [K]"] += 5.0  # 2.5 training standard deviations
    new.to_csv(tmp_path / "new.csv", index=False)
    result = shopfloor("drift", "--model", binary_model.folder, "--data", tmp_path / "new.csv",
                       "--json", tmp_path / "drift.json", "--report", tmp_path / "drift.html")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "drift.json").read_text())
    assert report["drifting"] == ["Air temperature [K]"]
    assert set(report["performance"]["estimated"]) >= {"accuracy", "f1"}
    assert "measured" in report["performance"]  # the file has its failure column
    assert "Air temperature [K]" in (tmp_path / "drift.html").read_text()


def test_drift_on_undrifted_rows_is_ok(binary_model, tmp_path):
    binary_model.new.to_csv(tmp_path / "new.csv", index=False)
    result = shopfloor("drift", "--model", binary_model.folder, "--data", tmp_path / "new.csv", "--json", tmp_path / "d.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "d.json").read_text())["drifting"] == []


def test_a_rul_model_watches_its_sensors(rul_model, tmp_path):
    test = rul_model.test.copy()
    test["vibration"] *= 1.5
    test.to_csv(tmp_path / "runs.csv", index=False)
    result = shopfloor("drift", "--model", rul_model.folder, "--data", tmp_path / "runs.csv", "--json", tmp_path / "d.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "d.json").read_text())
    assert "vibration" in report["drifting"] and [o["input"] for o in report["outputs"]] == ["rul"]
    assert all("between_groups" in r for r in rul_model.model.drift_profile_["inputs"].values())
    assert len(rul_model.model.drift_profile_["stages"]["edges"]) >= 1  # life-stage bands: ages known at fit


def test_bad_inputs_are_one_line_and_write_nothing(binary_model, tmp_path):
    out = tmp_path / "d.json"
    (tmp_path / "empty.csv").write_text("")
    assert_refused(shopfloor("drift", "--model", binary_model.folder, "--data", tmp_path / "empty.csv", "--json", out),
                   "empty")
    (tmp_path / "images").mkdir()
    assert_refused(shopfloor("drift", "--model", binary_model.folder, "--data", tmp_path / "images", "--json", out),
                   "folder")
    binary_model.new.drop(columns=["Torque [Nm]"]).to_csv(tmp_path / "few.csv", index=False)
    assert_refused(shopfloor("drift", "--model", binary_model.folder, "--data", tmp_path / "few.csv", "--json", out),
                   "Torque [Nm]")
    assert not out.exists()


def test_a_model_saved_before_drift_profiles_is_asked_to_be_retrained(tmp_path):
    old = shutil.copytree(FIXTURES / "tabular-v2", tmp_path / "old")
    inputs = FIXTURES / "tabular-v2.inputs.csv"
    result = shopfloor("drift", "--model", old, "--data", inputs, "--json", tmp_path / "d.json")
    assert_refused(result, "saved before drift profiles; retrain it")
    assert not (tmp_path / "d.json").exists()
