"""The anomaly detector's report page, on the saved fixture model: no training needed."""

from __future__ import annotations

import re

import pytest
from conftest import FIXTURES

import shopfloor
from shopfloor.errors import BadOption, NotFitted
from shopfloor.tasks.anomaly.model import AnomalyModel
from shopfloor.tasks.anomaly.report import write_report
from shopfloor.vision.folders import read_inspection_folder
from shopfloor.vision.surfaces import write_inspection_set

IMG = '<img src="data:image/png;base64,'


@pytest.fixture(scope="module")
def model():
    return shopfloor.load(FIXTURES / "models" / "anomaly-v1")


@pytest.fixture(scope="module")
def inspection(tmp_path_factory):
    return write_inspection_set(tmp_path_factory.mktemp("surfaces") / "set", train_good=2, test_good=3,
                                test_per_defect=2, size=64, seed=1)


def _page(path) -> str:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text and "https://" not in text
    return text


def test_without_data_the_page_shows_the_good_parts_set_aside(model, tmp_path):
    text = _page(model.write_report(tmp_path / "r.html"))
    assert "shopfloor report: good-only anomaly detection" in text and "Anomaly detection report" in text
    assert "the set-aside good images (no test folder given)" in text and "<h2>Good parts</h2>" in text
    assert "squashed to a square" in text and "100 patches" in text
    assert "Example heatmaps" not in text and text.count(IMG) == 1


def test_on_a_test_folder_the_page_scores_it_and_shows_heatmaps(model, inspection, tmp_path):
    text = _page(model.write_report(tmp_path / "r.html", inspection))
    images = len(read_inspection_folder(inspection, "test"))
    assert f"{inspection} ({images} test images)" in text
    assert "image_auroc" in text and "ROC curve of the image scores" in text and "score distribution" in text
    shown = min(images, 8)
    assert f"<h2>Example heatmaps ({shown} random images)</h2>" in text and text.count(IMG) == 2 + shown
    captions = re.findall(r"<figcaption>(\w+): score (\d\.\d\d) \((\w+)\)</figcaption>", text)
    assert len(captions) == shown and {c[2] for c in captions} <= {"good", "defect"}


def test_the_page_names_the_source_it_is_given_escaped(model, inspection, tmp_path):
    path = write_report(model, tmp_path / "r.html", read_inspection_folder(inspection, "test"), source="<line 3>")
    assert "&lt;line 3&gt; (" in _page(path)


def test_true_values_beside_the_folder_and_unfitted_models_are_refused(model, tmp_path):
    with pytest.raises(BadOption, match="labels from the data"):
        model.write_report(tmp_path / "r.html", truth="rul.txt")
    with pytest.raises(NotFitted):
        AnomalyModel().write_report(tmp_path / "r.html")
    assert not list(tmp_path.iterdir())
