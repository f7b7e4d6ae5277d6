"""The process optimiser's report page, on the saved fixture model: no training needed."""

from __future__ import annotations

import pytest
from conftest import FIXTURES

import shopfloor
from shopfloor import ProcessOptimizer
from shopfloor.errors import BadOption, NotFitted
from shopfloor.tasks.optimize.report import write_report


@pytest.fixture(scope="module")
def model():
    return shopfloor.load(FIXTURES / "models" / "optimize-v1")


def test_the_page_shows_the_recommendation_experiments_and_how_well_the_models_predict(model, tmp_path):
    text = model.write_report(tmp_path / "r.html").read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text
    assert "shopfloor report: optimise maximize output, minimize scrap" in text
    for title in ("Recommended settings", "Next experiments", "Partial dependence", "Pareto front",
                  "How well the models predict"):
        assert f"<h2>{title}</h2>" in text
    assert "scrap &lt;= 4" in text and "product=M" in text and "output rmse" in text


def test_a_result_already_computed_is_not_searched_again(model, tmp_path, monkeypatch):
    result = model.optimize()
    monkeypatch.setattr(model, "optimize", lambda: pytest.fail("searched again"))
    text = write_report(model, tmp_path / "r.html", result=result).read_text(encoding="utf-8")
    assert "<h2>Recommended settings</h2>" in text


def test_true_values_and_unfitted_optimisers_are_refused(model, tmp_path):
    with pytest.raises(BadOption):
        model.write_report(tmp_path / "r.html", truth="rul.txt")
    with pytest.raises(NotFitted):
        ProcessOptimizer(["a=0:1"], maximize=["y"]).write_report(tmp_path / "r.html")
    assert not list(tmp_path.iterdir())
