"""The defect classifier's report page, on the saved fixture model: no training needed."""

from __future__ import annotations

import re

import pytest
from conftest import FIXTURES

import shopfloor
from shopfloor.errors import BadOption, NotFitted
from shopfloor.tasks.defects.model import DefectModel
from shopfloor.tasks.defects.report import write_report
from shopfloor.vision.folders import read_class_folders
from shopfloor.vision.surfaces import write_defect_classes

IMG = '<img src="data:image/png;base64,'


@pytest.fixture(scope="module")
def model():
    return shopfloor.load(FIXTURES / "models" / "defects-v1")


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    return write_defect_classes(tmp_path_factory.mktemp("surfaces") / "classes <test>", per_class=4, size=32, seed=1)


def _page(path) -> str:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text and "https://" not in text
    return text


def test_without_data_the_page_shows_the_validation_kept_from_training(model, tmp_path):
    text = _page(model.write_report(tmp_path / "r.html"))
    assert "shopfloor report: defect classes (crack, scratch, spot)" in text
    assert "validation images held out in training (6)" in text
    assert "<h2>Confusion matrix</h2>" in text and "rows: true class, columns: predicted class" in text
    assert "Example heatmaps" not in text and text.count(IMG) == 1


def test_on_labelled_folders_the_page_scores_them_and_shows_heatmaps(model, classes, tmp_path):
    text = _page(model.write_report(tmp_path / "r.html", classes))
    metrics = model.evaluate(classes)
    assert f"{classes} (12 labelled images)".replace("<", "&lt;").replace(">", "&gt;") in text
    assert f'<td class="number">{metrics["accuracy"]:.4f}</td>' in text
    assert "<h2>Example heatmaps (8 random images)</h2>" in text and text.count(IMG) == 1 + 8
    captions = re.findall(r"<figcaption>(\w+) -&gt; (\w+) \((\d\.\d\d)\)</figcaption>", text)
    assert len(captions) == 8 and {c[0] for c in captions} <= set(model.classes_)


def test_the_page_names_the_source_it_is_given_escaped(model, classes, tmp_path):
    path = write_report(model, tmp_path / "r.html", read_class_folders(classes), source='line <3> "march"')
    assert "line &lt;3&gt; &quot;march&quot; (12 labelled images)" in _page(path)


def test_true_values_beside_the_folders_and_unfitted_models_are_refused(model, tmp_path):
    with pytest.raises(BadOption, match="labels from the data"):
        model.write_report(tmp_path / "r.html", truth="rul.txt")
    with pytest.raises(NotFitted):
        DefectModel().write_report(tmp_path / "r.html")
    assert not list(tmp_path.iterdir())
