"""A sensor-monitoring model behind the service (issue 16): windows of readings in, one answer per reading out, never
merged with another request's window; and the dashboard's score trend and the sensors behind a machine's last event,
from what the stream worker stored."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from rest_service import Service
from services import OfflineMessage, offline_worker

from shopfloor.registry import Registry
from shopfloor.serve.auth import COOKIE, create_token
from shopfloor.store import Store, default_url
from shopfloor.stream.payload import encode_message, encode_reading
from shopfloor.tasks.monitor.model import MonitorModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks" / "monitor"))
from monitor_processes import pump, with_fault  # noqa: E402


def window(frame) -> list[dict]:
    return frame.assign(time=frame["time"].dt.strftime("%Y-%m-%d %H:%M")).to_dict("records")


@pytest.fixture(scope="module")
def plant(tmp_path_factory) -> SimpleNamespace:
    """A registry with a pump monitor live, whose store holds what a stream worker made of a healthy and a stuck
    pump; the service over it."""
    model = MonitorModel(time="time", max_epochs=8, progress=False).fit(pump(rows=900, seed=0))
    root = tmp_path_factory.mktemp("plant")
    registry = Registry(root / "models", create=True)
    registry.add("pump", model.save(root / "pump-monitor"))
    store = Store(default_url(registry.root))
    worker = offline_worker(registry.root, store)
    faulty, culprit = with_fault(pump(rows=400, seed=4, start="2024-03-01"), "stuck", start=300)
    for machine, frame in (("pump-1", pump(rows=400, seed=2, start="2024-03-01")), ("pump-2", faulty)):
        seconds = (frame["time"] - frame["time"].iloc[0]).dt.total_seconds().to_numpy() + 1.7e9
        values = frame[model.sensor_columns_].to_dict("records")
        for start in range(0, len(frame), 25):
            rows = [encode_reading(float(t), v) for t, v in zip(seconds[start:start + 25], values[start:start + 25],
                                                                strict=True)]
            message = OfflineMessage(f"plant/line-1/{machine}/telemetry", encode_message(rows, time.time()), start)
            worker.process([(worker.session, message)])
    store.close()
    token = create_token(registry.root, "mes", "read")
    with Service(registry.root) as running:
        yield SimpleNamespace(url=running.url, token=token, model=model, culprit=culprit,
                              headers={"Authorization": f"Bearer {token}"})


def test_a_window_of_readings_gets_one_answer_per_reading(plant):
    frame = pump(rows=150, seed=5, start="2024-04-01")
    answer = httpx.post(f"{plant.url}/api/models/pump/predict", json={"rows": window(frame)}, headers=plant.headers)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    expected = plant.model.predict(frame)
    assert [p["time"] for p in predictions] == list(frame["time"].dt.strftime("%Y-%m-%dT%H:%M:%S"))
    np.testing.assert_allclose([p["score"] for p in predictions], expected["score"], rtol=1e-5, atol=1e-6)
    assert [p["sensor_1"] for p in predictions] == list(expected["sensor_1"])


def test_windows_sent_at_once_are_scored_each_on_its_own(plant):
    """A pump's two hours sent as two windows while the service is busy with a long one: merged, the second hour
    would be scored after the first, not from its own start as sent."""
    hours = pump(rows=240, seed=5, start="2024-04-01")
    frames = [pump(rows=3_000, seed=6, start="2023-01-01"), hours.iloc[:120].reset_index(drop=True),
              hours.iloc[120:].reset_index(drop=True)]

    async def together():
        async with httpx.AsyncClient(base_url=plant.url, headers=plant.headers, timeout=30) as client:
            return await asyncio.gather(*(client.post("/api/models/pump/predict", json={"rows": window(f)})
                                          for f in frames))

    answers = asyncio.run(together())
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200][:1]
    for frame, answer in zip(frames, answers, strict=True):
        expected = plant.model.predict(frame)["score"]
        np.testing.assert_allclose([p["score"] for p in answer.json()["predictions"]], expected, rtol=1e-5, atol=1e-6)


def test_a_window_without_one_of_the_sensors_is_refused_naming_it(plant):
    rows = window(pump(rows=40, seed=5).drop(columns="pressure"))
    answer = httpx.post(f"{plant.url}/api/models/pump/predict", json={"rows": rows}, headers=plant.headers)
    assert answer.status_code == 422 and "'pressure'" in answer.json()["detail"], answer.text


def test_the_machine_page_shows_the_score_trend_and_the_sensors_behind_the_last_event(plant):
    cookies = {COOKIE: plant.token}
    page = httpx.get(f"{plant.url}/machines/line-1/pump-2", cookies=cookies)
    assert page.status_code == 200, page.text
    chart = re.search(r'<svg class="chart"[^>]*aria-label="anomaly score">.*?</svg>', page.text)
    assert chart and "<polyline" in chart.group(0) and "anomaly</text>" in chart.group(0)
    event = re.search(r'<dd class="event-sensors">(.*?)</dd>', page.text, re.S)
    assert event, "no last anomaly event on the faulty pump's page"
    sensors = re.findall(r'<span class="sensor">([^<]+)</span> (\d+) %', event.group(1))
    shares = [int(share) for _, share in sensors]
    assert sensors[0][0] == plant.culprit and len(sensors) == 3 and shares == sorted(shares, reverse=True)
    healthy = httpx.get(f"{plant.url}/machines/line-1/pump-1", cookies=cookies).text
    assert 'aria-label="anomaly score"' in healthy and 'class="event-sensors"' not in healthy
    fleet = httpx.get(f"{plant.url}/fragments/fleet", cookies=cookies).text
    row = re.search(r'data-machine="line-1/pump-2">.*?</tr>', fleet, re.S).group(0)
    assert f"({plant.culprit} " in row
