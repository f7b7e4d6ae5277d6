"""The monitor task through the command line: its own `train monitor` command (tasks/monitor/command.py, gathered
by the CLI from the task registry) and the faces every task shares, with no line of the CLI naming the task."""

from __future__ import annotations

import json

import pandas as pd
from monitor_processes import pump, with_fault
from typer.testing import CliRunner

from shopfloor.cli import app


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
