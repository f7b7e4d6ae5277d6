"""The RUL report: the same self-contained page, with or without test histories and their true RUL."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from conftest import FIXTURES, RUL_COLUMNS

import shopfloor
from shopfloor.data.runs import read_runs
from shopfloor.kits.page import number
from shopfloor.tasks.rul.report import write_report

IMG = '<img src="data:image/png;base64,'
BY_UNIT = "One point per test unit"  # caption of the per-unit predicted-vs-true figure only
VOID = {"meta", "img", "br", "hr", "link", "input"}


class _Nesting(HTMLParser):
    """Fails on a closing tag that does not match the open one: the page is well formed."""

    def __init__(self):
        super().__init__()
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()


def _histories(rul_model):
    """The test histories read as the model reads them: `RULModel.write_report` does this before the page."""
    return read_runs(rul_model.test, **RUL_COLUMNS)


def _check_page(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    parser = _Nesting()
    parser.feed(page)
    parser.close()
    assert parser.open == []
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "the page must not load anything from the network"


def test_report_without_data_shows_the_validation(rul_model, tmp_path):
    path = write_report(rul_model.model, tmp_path / "rul.html")
    page = path.read_text(encoding="utf-8")
    _check_page(page)
    assert "Remaining useful life" in page
    for title in ["Metrics", "Predicted vs true with intervals", "Interval by estimate", "Degradation curves",
                  "Sensor importance", "Training log"]:
        assert f"<h2>{title}</h2>" in page
    assert "out-of-fold validation" in page
    bands = rul_model.model.interval_bands_
    assert f"estimate - {bands['below'][0]:.1f} to estimate + {bands['above'][0]:.1f}" in page  # near failure
    assert f"&gt;= {bands['edges'][-1]:g}" in page  # the top band, healthy units
    assert number(rul_model.model.validation_metrics_["rmse"]) in page
    assert "Pass test run histories" in page
    assert page.count(IMG) >= 2
    assert BY_UNIT not in page
    for sensor in rul_model.model.sensor_columns_:
        assert sensor in page


def test_report_with_data_and_truth_scores_the_test_units(rul_model, tmp_path):
    metrics = rul_model.model.evaluate(rul_model.test, rul_model.truth)
    path = write_report(rul_model.model, tmp_path / "rul.html", data=_histories(rul_model), truth=rul_model.truth,
                        source='test <script>alert("x")</script>.csv')
    page = path.read_text(encoding="utf-8")
    _check_page(page)
    assert "last cycle of each test unit, true RUL as given" in page
    assert number(metrics["rmse"]) in page
    assert "<h2>Degradation curves</h2>" in page and "dashed: the true RUL, capped" in page
    assert BY_UNIT in page
    assert page.count(IMG) >= 4
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_report_with_data_but_no_truth_draws_the_curves(rul_model, tmp_path):
    path = write_report(rul_model.model, tmp_path / "rul.html", data=_histories(rul_model))
    page = path.read_text(encoding="utf-8")
    _check_page(page)
    assert "Solid: the estimate at each cycle." in page and "Health index of the same units" in page
    assert "Pass test run histories" not in page
    assert BY_UNIT not in page
    assert "No true RUL was given" in page
    assert page.count(IMG) >= 4  # validation, test units by estimate, two curves, importance


def test_report_is_written_atomically(rul_model, tmp_path):
    target = tmp_path / "reports" / "rul.html"
    write_report(rul_model.model, target)
    write_report(rul_model.model, target)  # replacing a page leaves no temporary file either
    assert [p.name for p in target.parent.iterdir()] == ["rul.html"]


def test_report_of_a_model_saved_with_one_margin(tmp_path):
    """Saved before the interval had bands: one row, P10-P90 widened by its margin."""
    model = shopfloor.load(FIXTURES / "models" / "rul-v1")
    page = write_report(model, tmp_path / "rul.html").read_text(encoding="utf-8")
    _check_page(page)
    margin = model.interval_margin_
    assert f"P10 - {margin:.1f} to P90 + {margin:.1f}" in page and ">all<" in page
