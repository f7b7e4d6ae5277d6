"""The report page of a monitor model: sensors and score over time with the anomaly bands, events with their
contribution bars, the metrics when the data has labels, the model's facts; light on long histories."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from monitor_processes import FAULT_START, SENSORS, pump, with_fault

import shopfloor.tasks.monitor.report as report
from shopfloor.errors import BadOption, ColumnMissing
from shopfloor.tasks.monitor.model import MonitorModel

pytestmark = pytest.mark.filterwarnings("ignore:.*numeric column.*the model did not learn")


@pytest.fixture(scope="module")
def fitted() -> MonitorModel:
    return MonitorModel(time="time", max_epochs=4, progress=False).fit(pump(rows=600, seed=0))


def labelled(kind: str = "drift", rows: int = 1_200, seed: int = 1) -> pd.DataFrame:
    faulty, _ = with_fault(pump(rows=rows, seed=seed, start="2024-02-01"), kind)
    return faulty.assign(fault=(np.arange(len(faulty)) >= FAULT_START).astype(int))


def images(page: str) -> int:
    return len(re.findall(r'<img src="data:image/png;base64,', page))


def text(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", re.sub(r"<img[^>]+>", "", page)).split())


def test_a_labelled_history_gives_metrics_bands_and_an_event_with_its_sensors(fitted, tmp_path):
    data = labelled()
    page = fitted.write_report(tmp_path / "page.html", data, "fault").read_text()
    words = text(page)
    events = fitted.events(data)
    metrics = fitted.evaluate(data, truth="fault")
    assert len(events) >= 1 and metrics["recall"] > 0.5
    assert f"f1 {metrics['f1']:.4f}" in words and "far" in words and "nab_standard" in words
    assert "hatched yellow" in words  # the labelled rows are banded too
    assert images(page) == 1 + min(len(events), report.MAX_EVENTS)  # the timeline, one bar chart per event
    assert f"Events ({len(events)})" in words and str(events["sensors"].iloc[0]) in words
    assert "pressure" in str(events.sort_values("rows")["top_sensor"].iloc[-1])  # the drifting sensor carries it
    for fact in ("temperature", "1 min (median step)", fitted.threshold_rule_, "32 steps (32 min)"):
        assert fact in words  # sensors, slow sensors, step, window, threshold rule
    assert "time buckets" not in words  # 1,200 rows are drawn as they are


def test_without_a_label_the_page_says_where_its_metrics_come_from(fitted, tmp_path):
    page = text(fitted.write_report(tmp_path / "page.html", labelled().drop(columns="fault")).read_text())
    assert "held-out rows of the training history" in page and "hatched" not in page
    assert "held_out_false_alarm_rate" in page and "Events (" in page


def test_a_model_trained_with_labels_finds_its_label_column_in_the_data(tmp_path):
    history = labelled(rows=1_200, seed=0).rename(columns={"fault": "known"})
    model = MonitorModel(time="time", label="known", max_epochs=3, progress=False).fit(history)
    page = text(model.write_report(tmp_path / "page.html", labelled(seed=2).rename(columns={"fault": "known"}))
                .read_text())
    assert "against its label column" in page and "F1-optimal" in page
    plain = text(model.write_report(tmp_path / "plain.html", labelled(seed=2).drop(columns="fault")).read_text())
    assert "against its label column" not in plain and "no label column" in plain


def test_without_data_the_page_shows_the_model(fitted, tmp_path):
    page = text(fitted.write_report(tmp_path / "model.html").read_text())
    assert "Give a history" in page and "current, flow, pressure, vibration, temperature" in page
    with pytest.raises(BadOption, match="give the data too"):
        fitted.write_report(tmp_path / "nothing.html", None, "fault")


def test_a_long_fleet_history_is_drawn_in_buckets_and_the_page_stays_light(fitted, tmp_path, monkeypatch):
    monkeypatch.setattr(report, "MAX_BUCKETS", 300)  # as a year of minutes is to 1,500 buckets
    fleet = MonitorModel(time="time", machine="pump", max_epochs=2, progress=False).fit(
        pd.concat([pump(rows=400, seed=s).assign(pump=f"P{s}") for s in range(2)], ignore_index=True))
    data = pd.concat([labelled(kind, rows=3_000, seed=s).assign(pump=f"P{s}")
                      for s, kind in enumerate(["stuck", "spike", "drift", "correlation", "mode"])], ignore_index=True)
    path = fleet.write_report(tmp_path / "fleet.html", data, "fault")
    page = path.read_text()
    words = text(page)
    assert "time buckets" in words and f"{report.MAX_MACHINES} of 5 machines are drawn" in words
    assert words.count("machine P") >= report.MAX_MACHINES and "<th>pump</th>" in page
    assert path.stat().st_size < 2_000_000


def test_the_truth_is_a_column_of_the_data(fitted, tmp_path):
    with pytest.raises(ColumnMissing, match="label column 'broken'"):
        fitted.write_report(tmp_path / "page.html", labelled(), "broken")
    with pytest.raises(BadOption, match="takes its labels from the data"):
        fitted.write_report(tmp_path / "page.html", labelled(), truth=np.zeros(3))
    assert not (tmp_path / "page.html").exists()


def test_names_from_the_data_are_escaped(tmp_path):
    history = pump(rows=500).rename(columns={"flow": "<b>flow</b>"})
    model = MonitorModel(time="time", max_epochs=2, progress=False).fit(history)
    page = model.write_report(tmp_path / "page.html", history).read_text()
    assert "<b>flow</b>" not in page and "&lt;b&gt;flow&lt;/b&gt;" in page
    assert set(SENSORS) - {"flow"} <= set(model.sensor_columns_)
