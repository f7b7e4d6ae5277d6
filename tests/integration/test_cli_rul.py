"""`shopfloor train rul` and the commands that use a RUL model, end to end, and the bad inputs of issue 3."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import cut_short, run_histories
from test_cli import assert_refused, files_under, shopfloor

GENERIC = ["--unit", "engine", "--time", "cycle", "--settings", "altitude,throttle"]
FAST = ["--members", "2", "--max-epochs", "3", "--window", "15", "--rul-cap", "60", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rul-cli")
    run_histories(12, conditions=2, seed=0).to_csv(folder / "train.csv", index=False)
    test, truth = cut_short(run_histories(6, conditions=2, seed=1), seed=1)
    test.to_csv(folder / "test.csv", index=False)
    truth.to_csv(folder / "truth.csv", index=False)
    result = shopfloor("train", "rul", "--data", folder / "train.csv", "--out", folder / "model", *GENERIC, *FAST)
    assert result.exit_code == 0, result.output
    return folder


def test_train_evaluate_predict_explain_export_report_info(trained: Path, tmp_path: Path):
    result = shopfloor("evaluate", "--model", trained / "model", "--data", trained / "test.csv",
                       "--rul", trained / "truth.csv", "--json", tmp_path / "metrics.json")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"rmse", "mae", "nasa_score", "coverage"} <= set(metrics)
    assert all(isinstance(v, float) for v in metrics.values())

    assert shopfloor("predict", "--model", trained / "model", "--data", trained / "test.csv",
                     "--out", tmp_path / "rul.csv").exit_code == 0
    predictions = pd.read_csv(tmp_path / "rul.csv")
    assert list(predictions.columns) == ["unit", "time", "rul", "rul_low", "rul_high"] and len(predictions) == 6

    assert shopfloor("explain", "--model", trained / "model", "--data", trained / "test.csv",
                     "--out", tmp_path / "why.csv").exit_code == 0
    assert {"unit", "reference_rul", "temperature"} <= set(pd.read_csv(tmp_path / "why.csv").columns)

    result = shopfloor("export", "--model", trained / "model", "--out", tmp_path / "rul.onnx",
                       "--data", trained / "test.csv")
    assert result.exit_code == 0, result.output
    difference = float(result.stderr.split("difference")[-1])
    assert difference < 1e-4

    result = shopfloor("report", "--model", trained / "model", "--out", tmp_path / "report.html",
                       "--data", trained / "test.csv", "--rul", trained / "truth.csv")
    assert result.exit_code == 0, result.output
    assert "Degradation" in (tmp_path / "report.html").read_text()

    result = shopfloor("info", "--model", trained / "model")
    assert result.exit_code == 0 and "remaining useful life" in result.output and "2 operating" in result.output


def test_cmapss_text_is_detected_without_column_options(shared_data, tmp_path):
    lines = (shared_data / "cmapss" / "train_FD001.txt").read_text().splitlines()
    small = [line for line in lines if int(line.split()[0]) <= 6]
    (tmp_path / "train_small.txt").write_text("\n".join(small) + "\n")
    result = shopfloor("train", "rul", "--data", tmp_path / "train_small.txt", "--out", tmp_path / "model",
                       "--members", "2", "--max-epochs", "1", "--quiet")
    assert result.exit_code == 0, result.output
    assert "21 sensors" not in result.stderr  # constant sensors were dropped
    result = shopfloor("evaluate", "--model", tmp_path / "model", "--data", shared_data / "cmapss" / "test_FD001.txt",
                       "--rul", shared_data / "cmapss" / "RUL_FD001.txt")
    assert result.exit_code == 0, result.output


# -- bad input -------------------------------------------------------------------------------
def _train_refused(tmp_path: Path, frame: pd.DataFrame, *fragments: str, options=GENERIC):
    frame.to_csv(tmp_path / "runs.csv", index=False)
    before = files_under(tmp_path)
    result = shopfloor("train", "rul", "--data", tmp_path / "runs.csv", "--out", tmp_path / "model", *options, *FAST)
    assert_refused(result, *fragments)
    assert files_under(tmp_path) == before  # nothing written


def test_duplicate_time_stamps_name_the_unit_and_time(tmp_path):
    frame = run_histories(4, seed=2)
    frame = pd.concat([frame, frame.iloc[[5]]], ignore_index=True)
    _train_refused(tmp_path, frame, "unit 1", "cycle 6")


def test_an_all_empty_sensor_is_refused(tmp_path):
    frame = run_histories(4, seed=2)
    frame["pressure"] = np.nan
    _train_refused(tmp_path, frame, "pressure")


def test_generic_files_need_unit_and_time(tmp_path):
    _train_refused(tmp_path, run_histories(4, seed=2), "--unit", options=[])


def test_out_of_order_rows_and_gaps_are_repaired_with_warnings(tmp_path):
    frame = run_histories(6, seed=2).sample(frac=1.0, random_state=0)
    frame.loc[frame.index[:5], "temperature"] = np.nan
    frame.to_csv(tmp_path / "runs.csv", index=False)
    result = shopfloor("train", "rul", "--data", tmp_path / "runs.csv", "--out", tmp_path / "model", *GENERIC, *FAST)
    assert result.exit_code == 0, result.output
    assert "sorted" in result.stderr and "interpolat" in result.stderr


def test_a_sensor_missing_at_predict_time_is_named(trained, tmp_path):
    pd.read_csv(trained / "test.csv").drop(columns=["vibration"]).to_csv(tmp_path / "test.csv", index=False)
    result = shopfloor("predict", "--model", trained / "model", "--data", tmp_path / "test.csv",
                       "--out", tmp_path / "out.csv")
    assert_refused(result, "vibration")
    assert not (tmp_path / "out.csv").exists()


def test_rul_lines_must_match_the_test_units(trained, tmp_path):
    (tmp_path / "RUL_short.txt").write_text("10\n20\n30\n")  # 3 lines, 6 units
    result = shopfloor("evaluate", "--model", trained / "model", "--data", trained / "test.csv",
                       "--rul", tmp_path / "RUL_short.txt")
    assert_refused(result, "3", "6 units")


def test_a_test_unit_absent_from_the_rul_file_is_named(trained, tmp_path):
    truth = pd.read_csv(trained / "truth.csv")
    truth[truth["unit"] != 4].to_csv(tmp_path / "truth.csv", index=False)
    result = shopfloor("evaluate", "--model", trained / "model", "--data", trained / "test.csv",
                       "--rul", tmp_path / "truth.csv")
    assert_refused(result, "4")


def test_evaluating_a_rul_model_needs_the_true_rul(trained):
    result = shopfloor("evaluate", "--model", trained / "model", "--data", trained / "test.csv")
    assert_refused(result, "--rul")


def test_a_unit_with_one_row_is_predicted(trained, tmp_path):
    test = pd.read_csv(trained / "test.csv")
    one = test[test["engine"] == test["engine"].iloc[0]].head(1)
    pd.concat([one, test[test["engine"] != one["engine"].iloc[0]]]).to_csv(tmp_path / "test.csv", index=False)
    result = shopfloor("predict", "--model", trained / "model", "--data", tmp_path / "test.csv",
                       "--out", tmp_path / "out.csv")
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "out.csv")) == 6


def test_int8_export_with_rul_scores_the_test_units(trained: Path, tmp_path: Path):
    """`--rul` on `export --int8` means what it means for `evaluate`: each test unit scored at its last cycle, so six
    units are too few to calibrate on (without it the histories would be runs to failure, scored per window)."""
    out = tmp_path / "out"
    out.mkdir()
    result = shopfloor("export", "--model", trained / "model", "--out", out / "rul.onnx", "--int8",
                       "--data", trained / "test.csv", "--rul", trained / "truth.csv")
    assert result.exit_code == 2 and "has 6 units" in result.output, result.output
    assert files_under(out) == {}
