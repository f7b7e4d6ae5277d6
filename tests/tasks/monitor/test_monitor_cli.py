"""The monitor task through the command line: its own `train monitor` command (tasks/monitor/command.py, gathered
by the CLI from the task registry) and the faces every task shares, with no line of the CLI naming the task."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from monitor_processes import SENSORS, pump, with_fault
from typer.testing import CliRunner

from shopfloor.cli import app
from shopfloor.tasks.monitor.model import MonitorModel


def shopfloor(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_train_info_predict_and_evaluate_with_a_label_column(tmp_path):
    pump(rows=400, seed=0).to_csv(tmp_path / "history.csv", index=False)
    faulty, _ = with_fault(pump(rows=400, seed=1), "drift", start=250)
    faulty["fault"] = (faulty.index >= 250).astype(int)
    faulty.to_csv(tmp_path / "new.csv", index=False)

    trained = shopfloor("train", "monitor", "--data", tmp_path / "history.csv", "--time", "time",
                        "--out", tmp_path / "model", "--quiet")
    assert trained.exit_code == 0, trained.output
    info = shopfloor("info", "--model", tmp_path / "model")
    text = " ".join(info.output.split())  # rich wraps long lines
    assert info.exit_code == 0 and "sensor monitoring" in text and "pressure" in text

    predicted = shopfloor("predict", "--model", tmp_path / "model", "--data", tmp_path / "new.csv",
                          "--out", tmp_path / "scores.csv")
    assert predicted.exit_code == 0, predicted.output
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert len(scores) == 400 and {"time", "score", "anomaly", "sensor_1"} <= set(scores.columns)

    scored = shopfloor("evaluate", "--model", tmp_path / "model", "--data", tmp_path / "new.csv",
                       "--label", "fault", "--json", tmp_path / "metrics.json")
    assert scored.exit_code == 0, scored.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"f1", "precision", "recall", "far", "mar", "event_f1", "nab_standard"} <= set(metrics)
    assert metrics["recall"] > 0.5  # a drift of the pressure from row 250 is found

    twice = shopfloor("evaluate", "--model", tmp_path / "model", "--data", tmp_path / "new.csv",
                      "--label", "fault", "--rul", tmp_path / "new.csv")
    assert twice.exit_code == 2 and "give the truth once" in twice.output


# -- the files a monitor model writes, and bad input, through the command line --------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A quick model saved once, and a faulty history beside it with a label column."""
    folder = tmp_path_factory.mktemp("monitor-cli")
    MonitorModel(time="time", max_epochs=3, progress=False).fit(pump(rows=500, seed=0)).save(folder / "model")
    faulty, _ = with_fault(pump(rows=400, seed=1), "stuck", start=250)
    faulty.assign(fault=(faulty.index >= 250).astype(int)).to_csv(folder / "new.csv", index=False)
    return folder


def error_lines(result) -> list[str]:
    assert "Traceback" not in result.output
    return [line for line in result.output.splitlines() if line.startswith("error:")]


def test_predict_writes_the_events_beside_the_rows_and_explain_every_sensor_of_every_row(saved, tmp_path):
    predicted = shopfloor("predict", "--model", saved / "model", "--data", saved / "new.csv", "--out", tmp_path / "p.csv")
    assert predicted.exit_code == 0, predicted.output
    assert "-events" in predicted.output and predicted.output.count("warning:") == 1  # the label column, said once
    rows, events = pd.read_csv(tmp_path / "p.csv"), pd.read_csv(tmp_path / "p-events.csv")
    assert len(rows) == 400 and rows["anomaly"].iloc[300:].mean() > 0.5
    assert len(events) >= 1 and {"start", "end", "rows", "peak_score", "top_sensor", "sensors"} <= set(events.columns)
    assert events.sort_values("rows")["top_sensor"].iloc[-1] == "flow"  # the stuck sensor
    assert events["rows"].sum() == rows["anomaly"].sum()  # every flagged row is in one event

    parquet = shopfloor("predict", "--model", saved / "model", "--data", saved / "new.csv", "--out", tmp_path / "p.parquet")
    assert parquet.exit_code == 0 and len(pd.read_parquet(tmp_path / "p-events.parquet")) == len(events)

    explained = shopfloor("explain", "--model", saved / "model", "--data", saved / "new.csv", "--out", tmp_path / "e.csv")
    assert explained.exit_code == 0, explained.output
    contributions = pd.read_csv(tmp_path / "e.csv")
    assert len(contributions) == 400 and set(SENSORS) <= set(contributions.columns)
    assert contributions[SENSORS].notna().all().all() and (contributions[SENSORS] >= 0).all().all()
    assert contributions["flow"].iloc[300:].mean() > 3 * contributions["flow"].iloc[:200].mean()


def test_export_and_report_through_the_command_line(saved, tmp_path):
    exported = shopfloor("export", "--model", saved / "model", "--out", tmp_path / "m.onnx", "--data", saved / "new.csv")
    assert exported.exit_code == 0, exported.output
    difference = float(re.search(r"difference ([0-9.e+-]+)", exported.output).group(1))
    assert difference <= 1e-4
    page = shopfloor("report", "--model", saved / "model", "--data", saved / "new.csv", "--label", "fault",
                     "--out", tmp_path / "page.html")
    assert page.exit_code == 0, page.output
    assert "event_f1" in (tmp_path / "page.html").read_text()
    twice = shopfloor("report", "--model", saved / "model", "--data", saved / "new.csv", "--label", "fault",
                      "--rul", saved / "new.csv", "--out", tmp_path / "twice.html")
    assert twice.exit_code == 2 and "give the truth once" in twice.output and not (tmp_path / "twice.html").exists()


@pytest.mark.parametrize("edit, words", [
    (lambda f: f[["time"]].assign(status="on"), "no numeric sensor"),
    (lambda f: f.iloc[:20], "needs at least"),  # fewer rows than one window
    (lambda f: f.assign(time=f["time"].astype(str).where(f.index != 7, "yesterday")), "row 8"),
    (lambda f: f.assign(flow=f["flow"].astype(object).where(f.index != 12, "broken")),
     "'flow' of history.csv holds text at row 13"),
    (lambda f: pd.concat([f.iloc[:10], f.iloc[9:]], ignore_index=True), "two rows at time"),
])
def test_bad_training_input_is_one_line_exit_2_and_no_model_folder(edit, words, tmp_path):
    edit(pump(rows=400)).to_csv(tmp_path / "history.csv", index=False)
    trained = shopfloor("train", "monitor", "--data", tmp_path / "history.csv", "--time", "time",
                        "--out", tmp_path / "model", "--quiet")
    lines = error_lines(trained)
    assert trained.exit_code == 2 and len(lines) == 1 and re.search(words, lines[0]), trained.output
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("edit, words", [
    (lambda f: f.drop(columns="flow"), "sensor 'flow' is in the model but not in new.csv"),
    (lambda f: f.assign(pressure=f["pressure"].astype(object).where(f.index != 40, "high")), "'pressure'.*row 41"),
    (lambda f: f.assign(time=f["time"].astype(str).where(f.index != 3, "later")), "row 4"),
    (lambda f: pd.concat([f.iloc[:30], f.iloc[29:]], ignore_index=True), "rows 30 and 31"),
])
def test_bad_input_to_predict_writes_neither_rows_nor_events(saved, edit, words, tmp_path):
    edit(pd.read_csv(saved / "new.csv")).to_csv(tmp_path / "new.csv", index=False)
    for command in ("predict", "explain", "report"):
        out = tmp_path / ("out.html" if command == "report" else "out.csv")
        done = shopfloor(command, "--model", saved / "model", "--data", tmp_path / "new.csv", "--out", out)
        lines = error_lines(done)
        assert done.exit_code == 2 and len(lines) == 1 and re.search(words, lines[0]), (command, done.output)
        assert not out.exists() and not (tmp_path / "out-events.csv").exists()


def test_the_events_file_never_replaces_the_data(saved, tmp_path):
    data = tmp_path / "today-events.csv"
    data.write_bytes((saved / "new.csv").read_bytes())
    done = shopfloor("predict", "--model", saved / "model", "--data", data, "--out", tmp_path / "today.csv")
    lines = error_lines(done)
    assert done.exit_code == 2 and len(lines) == 1 and "the data file itself" in lines[0]
    assert data.read_bytes() == (saved / "new.csv").read_bytes() and not (tmp_path / "today.csv").exists()


def test_levels_other_than_machine_or_fleet_are_refused_before_training(tmp_path):
    pump(rows=400).assign(machine="P1").to_csv(tmp_path / "history.csv", index=False)
    trained = shopfloor("train", "monitor", "--data", tmp_path / "history.csv", "--time", "time", "--machine", "machine",
                        "--levels", "plant", "--out", tmp_path / "model", "--quiet")
    lines = error_lines(trained)
    assert trained.exit_code == 2 and len(lines) == 1 and "'machine'" in lines[0] and "'fleet'" in lines[0], trained.output
    assert not (tmp_path / "model").exists()
