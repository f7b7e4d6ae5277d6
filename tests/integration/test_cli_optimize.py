"""`shopfloor optimize` end to end: the JSON answer, the model and report it writes, and every bad input of the issue."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_cli import assert_refused, files_under, shopfloor

from shopfloor.tasks.optimize.simulators import SIMULATORS

SETTINGS = ["--setting", "residence_time=0.5:2", "--setting", "equivalents=1:5", "--setting", "concentration=0.1:0.5",
            "--setting", "temperature=30:120:1"]


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("records")
    data = SIMULATORS["snar"].history(30, seed=4, noise=0.01)
    data["line"] = "L1"
    data.to_csv(folder / "reactor.csv", index=False)
    return folder / "reactor.csv"


def test_optimize_writes_the_answer_model_and_report(records, tmp_path):
    result = shopfloor("optimize", "--data", records, "--target", "sty", "--maximize", *SETTINGS,
                       "--constraint", "e_factor<=10.5", "--fixed", "line=L1", "--batch", "3", "--json", tmp_path / "answer.json",
                       "--out", tmp_path / "optimiser", "--report", tmp_path / "page.html")
    assert result.exit_code == 0, result.output
    answer = json.loads((tmp_path / "answer.json").read_text())
    assert set(answer["recommended"]) == {"residence_time", "equivalents", "concentration", "temperature"}
    assert float(answer["recommended"]["temperature"]).is_integer()
    sty = answer["predicted"]["sty"]
    assert sty["low"] < sty["mean"] < sty["high"]
    assert sty["mean"] > pd.read_csv(records)["sty"].max()  # better than any past run, as predicted
    assert answer["predicted"]["e_factor"]["mean"] <= 10.5
    assert 0 <= answer["distance_to_data"] <= 0.15 and answer["inside_trust_region"]
    assert len(answer["experiments"]) == 3 and all(set(e) == set(answer["recommended"]) for e in answer["experiments"])
    page = (tmp_path / "page.html").read_text()
    assert "Partial dependence" in page and page.count("<img") == 8  # 4 settings x (sty, e_factor)
    again = shopfloor("report", "--model", tmp_path / "optimiser", "--out", tmp_path / "again.html")
    assert again.exit_code == 0, again.output
    predicted = shopfloor("predict", "--model", tmp_path / "optimiser", "--data", records, "--out", tmp_path / "predicted.csv")
    assert predicted.exit_code == 0, predicted.output
    assert {"sty predicted", "sty low", "sty high", "e_factor predicted"} <= set(pd.read_csv(tmp_path / "predicted.csv").columns)


def test_two_objectives_give_a_front(records, tmp_path):
    result = shopfloor("optimize", "--data", records, "--target", "sty:max", "--target", "e_factor:min", *SETTINGS,
                       "--batch", "2", "--json", tmp_path / "answer.json", "--report", tmp_path / "page.html")
    assert result.exit_code == 0, result.output
    answer = json.loads((tmp_path / "answer.json").read_text())
    assert len(answer["pareto_front"]) >= 3
    assert "Pareto front" in (tmp_path / "page.html").read_text()


@pytest.mark.parametrize("extra, fragments", [
    (["--setting", "equivalents=5:1"], ["equivalents=5:1", "not below the high end"]),
    (["--setting", "pressure=1:5"], ["'pressure' is not a column of"]),
    (["--setting", "line"], ["always 'L1'", "--fixed"]),
    (["--constraint", "purity>=0.9"], ["a constraint names 'purity'", "columns found"]),
    (["--constraint", "e_factor =< 10"], ["not a comparison"]),
    (["--constraint", "e_factor <= 2"], ["no settings inside the bounds and trust region", "closest is"]),
    (["--constraint", "temperature + 100*residence_time <= 20"], ["no settings inside the bounds meet", "closest is"]),
    (["--fixed", "line=L9"], ["line=L9 never occurs"]),
    (["--trust-radius", "-1"], ["--trust-radius must be a positive number"]),
])
def test_bad_input_is_one_line_and_nothing_is_written(records, tmp_path, extra, fragments):
    before = files_under(tmp_path)
    result = shopfloor("optimize", "--data", records, "--target", "sty", "--maximize", "--setting", "residence_time=0.5:2",
                       "--setting", "temperature=30:120", "--json", tmp_path / "answer.json", "--out", tmp_path / "model", *extra)
    assert_refused(result, *fragments)
    assert files_under(tmp_path) == before


def test_a_target_needs_a_direction(records, tmp_path):
    result = shopfloor("optimize", "--data", records, "--target", "sty", *SETTINGS, "--json", tmp_path / "a.json")
    assert_refused(result, "add --maximize or --minimize")
