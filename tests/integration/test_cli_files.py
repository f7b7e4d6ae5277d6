"""The files the commands read and write: outputs never replace inputs, names and dates read as written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import failure_table, run_histories
from test_cli import FAST, assert_refused, files_under, shopfloor

from shopfloor.artifacts import MANIFEST


@pytest.fixture
def workdir(tmp_path, binary_model) -> Path:
    failure_table(40, seed=1).to_csv(tmp_path / "same.csv", index=False)
    failure_table(40, seed=1).to_parquet(tmp_path / "same.parquet", index=False)
    os.symlink(tmp_path / "same.csv", tmp_path / "link.csv")
    return tmp_path


# -- issue 14.6: an output over an input ----------------------------------------------------------
@pytest.mark.parametrize("command, data, out", [
    ("predict", "same.csv", "same.csv"),
    ("predict", "same.parquet", "./same.parquet"),
    ("predict", "link.csv", "same.csv"),  # through a link
    ("predict", "same.csv", "link.csv"),
    ("explain", "same.csv", "sub/../same.csv"),
    ("report", "same.csv", "same.csv"),
])
def test_an_output_that_is_the_input_file_is_refused(binary_model, workdir, monkeypatch, command, data, out):
    monkeypatch.chdir(workdir)
    (workdir / "sub").mkdir()
    before = files_under(workdir)
    result = shopfloor(command, "--model", binary_model.folder, "--data", data, "--out", out)
    assert_refused(result, f"--out {Path(out)} is the --data file", "replace your input")
    assert files_under(workdir) == before


def test_evaluate_json_over_its_data_is_refused(binary_model, workdir):
    before = files_under(workdir)
    result = shopfloor("evaluate", "--model", binary_model.folder, "--data", workdir / "same.csv",
                       "--json", workdir / "same.csv")
    assert_refused(result, "--json", "is the --data file")
    assert files_under(workdir) == before


# -- issue 14.12: a data file given as the model ---------------------------------------------------
def test_a_file_given_as_the_model_says_what_model_wants(workdir):
    assert_refused(shopfloor("predict", "--model", workdir / "same.csv", "--data", workdir / "same.csv",
                             "--out", workdir / "out.csv"),
                   "same.csv is a file, not a model folder", "'shopfloor train' wrote")


# -- issue 13.3: names with the spaces of the header ---------------------------------------------------
def test_target_and_drop_copied_from_a_header_with_spaces(tmp_path):
    frame = failure_table(120, seed=0).rename(columns={"failure": "failure ", "Type": "Type "})
    frame.to_csv(tmp_path / "export.csv", index=False)
    result = shopfloor("train", "tabular", "--data", tmp_path / "export.csv", "--target", "failure ",
                       "--drop", "Type ", "--out", tmp_path / "model", "--cv", "2", *FAST)
    assert result.exit_code == 0, result.output
    assert_refused(shopfloor("train", "tabular", "--data", tmp_path / "export.csv", "--target", "Failure",
                             "--out", tmp_path / "other", *FAST),
                   "target 'Failure' is not a column", "did you mean 'failure'?")


# -- issue 13.1: day-first dates --------------------------------------------------------------------
def test_train_tabular_refuses_ambiguous_dates_and_takes_the_option(tmp_path):
    frame = failure_table(120, seed=0)
    frame["date"] = [f"{1 + i % 12:02d}/{1 + (i // 12) % 12:02d}/2018" for i in range(120)]  # never above 12
    frame.sample(frac=1, random_state=0).to_csv(tmp_path / "log.csv", index=False)
    assert_refused(shopfloor("train", "tabular", "--data", tmp_path / "log.csv", "--target", "failure",
                             "--out", tmp_path / "model", *FAST),
                   "column 'date'", "day-first or month-first", "--dayfirst or --monthfirst")
    result = shopfloor("train", "tabular", "--data", tmp_path / "log.csv", "--target", "failure",
                       "--out", tmp_path / "model", "--dayfirst", "--cv", "2", "--time", "date", *FAST)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "model" / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["params"]["date_order"] == "dayfirst"
    assert manifest["state"]["schema"]["date_orders"] == {"date": "dayfirst"}


def test_train_rul_reads_time_stamps_in_the_order_given_and_keeps_it(tmp_path):
    histories = run_histories(6, seed=0, min_life=8, max_life=11)  # within one year
    # one reading on the first of every month: 01/02/2018 is 1 February, and readable either way
    months = pd.to_datetime("2018-01-01") + histories["cycle"].map(lambda c: pd.DateOffset(months=int(c)))
    histories["cycle"] = [m.strftime("%d/%m/%Y") for m in months]
    histories.to_csv(tmp_path / "runs.csv", index=False)
    args = ["--unit", "engine", "--time", "cycle", "--settings", "altitude,throttle",
            "--members", "2", "--max-epochs", "2", "--window", "8", "--rul-cap", "20", "--quiet"]
    assert_refused(shopfloor("train", "rul", "--data", tmp_path / "runs.csv", "--out", tmp_path / "model", *args),
                   "column 'cycle' of runs.csv", "--dayfirst or --monthfirst")
    result = shopfloor("train", "rul", "--data", tmp_path / "runs.csv", "--out", tmp_path / "model", "--dayfirst", *args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "model" / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["state"]["time_order"] == "dayfirst"
    result = shopfloor("predict", "--model", tmp_path / "model", "--data", tmp_path / "runs.csv",
                       "--out", tmp_path / "rul.csv")  # no option: the model reads its dates as in training
    assert result.exit_code == 0, result.output
    last = months.groupby(histories["engine"]).max()
    assert pd.to_datetime(pd.read_csv(tmp_path / "rul.csv")["time"]).tolist() == last.tolist()
    result = shopfloor("predict", "--model", tmp_path / "model", "--data", tmp_path / "runs.csv",
                       "--out", tmp_path / "rul.csv", "--monthfirst")  # the option overrides the model's order
    assert result.exit_code == 0, result.output
    swapped = [pd.Timestamp(m.year, m.day, m.month) for m in last]
    assert pd.to_datetime(pd.read_csv(tmp_path / "rul.csv")["time"]).tolist() == swapped
