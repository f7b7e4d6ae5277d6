"""The HTML report: one self-contained page, escaped, for every kind of tabular model."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest

import shopfloor
from shopfloor import TabularModel
from shopfloor.errors import NotFitted
from shopfloor.kits.page import number
from shopfloor.metrics import CLASSIFICATION_KEYS, REGRESSION_KEYS
from shopfloor.tasks.tabular.report import OUT_OF_FOLD, write_report

NASTY = 'failure <script>alert("x")</script> & $1'
IMG = '<img src="data:image/png;base64,'


def _table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    score = x1 + 0.5 * x2 + 0.3 * rng.normal(size=rows)
    return pd.DataFrame({
        "Torque [Nm]": x1,
        "speed <b>rpm</b>": x2,
        "Type": rng.choice(["L", "M", "H"], size=rows),
        NASTY: (score > 0.8).astype(int),
        "second failure": (x2 > 0.7).astype(int),
        "mode": np.select([score < -0.5, score < 0.5], ["wear", "ok"], "overheat"),
        "kpi": 3 * x1 - x2 + 0.1 * rng.normal(size=rows),
    })


TARGETS = {"binary": NASTY, "multilabel": [NASTY, "second failure"], "multiclass": "mode", "regression": "kpi"}
OTHER_TARGETS = {"binary": ["second failure", "mode", "kpi"], "multilabel": ["mode", "kpi"],
                 "multiclass": [NASTY, "second failure", "kpi"], "regression": [NASTY, "second failure", "mode"]}


@pytest.fixture(scope="module", params=list(TARGETS))
def fitted(request):
    kind = request.param
    train, new = _table(300, 0), _table(150, 1)
    train, new = train.drop(columns=OTHER_TARGETS[kind]), new.drop(columns=OTHER_TARGETS[kind])
    model = TabularModel(TARGETS[kind], bags=2, members=2, max_epochs=5, progress=False).fit(train)
    return kind, model, train, new


def _read_page(path) -> str:
    assert path.exists()
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("<html") == 1 and text.count("</html>") == 1
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text  # self-contained and nothing to execute
    return text


def _check_plots(text: str, at_least: int) -> None:
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert text.count(IMG) == len(images) >= at_least
    assert all(base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n" for image in images)


def _check_content(text: str, kind: str, model: TabularModel) -> None:
    keys = REGRESSION_KEYS if kind == "regression" else CLASSIFICATION_KEYS
    assert all(f"<td class=\"\">{key}</td>" in text for key in keys)
    assert shopfloor.__version__ in text and f"{model.fingerprint_['rows']:,}" in text
    assert "Feature importance" in text and "Training log" in text and "best_epoch" in text
    if kind in ("binary", "multilabel"):
        for threshold in model.thresholds_:
            assert f"at least <b>{threshold:.3g}</b>" in text
    elif kind == "multiclass":
        assert "highest probability" in text
    else:
        assert f"± <b>{model.interval_halfwidth_[0]:.4g}</b>" in text


def test_report_from_out_of_fold_validation(fitted, tmp_path):
    kind, model, _, _ = fitted
    path = write_report(model, tmp_path / "report.html")
    assert path == tmp_path / "report.html"
    text = _read_page(path)
    _check_plots(text, at_least=4)
    _check_content(text, kind, model)
    assert OUT_OF_FOLD in text
    assert list(tmp_path.iterdir()) == [path]  # the temporary file is gone


def test_report_on_new_data(fitted, tmp_path):
    kind, model, _, new = fitted
    path = write_report(model, tmp_path / "deep" / "folder" / "new.html", data=new, source="line 3 <march>.csv")
    text = _read_page(path)
    _check_plots(text, at_least=4)
    _check_content(text, kind, model)
    assert "line 3 &lt;march&gt;.csv (150 labelled rows)" in text
    assert OUT_OF_FOLD not in text and "optimistic" not in text
    value = model.evaluate(new)["rmse" if kind == "regression" else "f1"]
    assert f'<td class="number">{number(value)}</td>' in text


def test_user_strings_are_escaped(fitted, tmp_path):
    _, model, _, new = fitted
    text = _read_page(write_report(model, tmp_path / "r.html", data=new))
    if NASTY in model.targets:
        assert html_escaped(NASTY) in text
    assert "<b>rpm</b>" not in text


def html_escaped(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def test_report_on_training_table_warns(fitted, tmp_path):
    _, model, train, _ = fitted
    text = _read_page(write_report(model, tmp_path / "r.html", data=train))
    assert "optimistic" in text


def test_report_after_save_and_load(fitted, tmp_path):
    kind, model, _, _ = fitted
    loaded = shopfloor.load(model.save(tmp_path / "model"))
    text = _read_page(write_report(loaded, tmp_path / "r.html"))
    _check_plots(text, at_least=4)
    _check_content(text, kind, loaded)


def test_report_replaces_an_old_page(fitted, tmp_path):
    _, model, _, _ = fitted
    path = tmp_path / "r.html"
    path.write_text("old")
    write_report(model, path)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_numbers_are_readable():
    assert number(0.86904) == "0.8690" and number(0.0) == "0.0000" and number(-0.25) == "-0.2500"
    assert number(1234.5678) == "1,235" and number(0.000123) == "0.000123" and number(float("nan")) == "n/a"


def test_unfitted_model_is_refused(tmp_path):
    with pytest.raises(NotFitted):
        write_report(TabularModel("y"), tmp_path / "r.html")
    assert not list(tmp_path.iterdir())
