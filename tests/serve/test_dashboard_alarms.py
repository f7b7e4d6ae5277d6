"""The dashboard's alarms: why a machine is in alarm, its sensor trends, and alerts sorted, filtered and acknowledged."""

from __future__ import annotations

import json
import re
import time

import pytest
from conftest import FIXTURES

from shopfloor.registry import Registry
from shopfloor.serve.auth import COOKIE, create_token
from shopfloor.store import Store, default_url

ALARMS = {"rul": {"kind": "rul", "version": 1, "on": True, "judged": 20.0, "rule": "rul<=20", "clear": "rul>=30",
                  "value": 18.0, "since": 19.0}}


def _fill(store: Store) -> None:
    now = time.time()
    readings = [dict(line="line-1", machine="press-1", time=float(t), sent_at=now, received_at=now,
                     values=json.dumps({"temperature": 60.0 + t, "pressure": 3.0 - t / 10, "Type": "L"}))
                for t in range(1, 21)]
    predictions = [dict(line="line-1", machine="press-1", time=float(t), model="rul", version=1, risk=None,
                        rul=40.0 - t, rul_low=30.0 - t, rul_high=50.0 - t, sent_at=now) for t in range(1, 21)]
    states = [dict(line="line-1", machine="press-1", time=20.0, rul=20.0, rul_low=10.0, rul_high=30.0, rul_model="rul@1",
                   alerting=True, alarms=json.dumps(ALARMS)),
              dict(line="line-2", machine="mill-1", time=5.0, risk=0.2, risk_threshold=0.5, risk_model="failure@1",
                   alerting=False, alarms=json.dumps({"failure": {"kind": "risk", "version": 1, "on": False,
                                                                  "judged": 5.0}}))]
    alert = dict(line="line-1", machine="press-1", time=19.0, kind="rul", model="rul", version=1, value=18.0,
                 threshold=20.0, rule="rul<=20", clear="rul>=30", message="press-1 on line-1: rul 18 cycles")
    risky = dict(alert, line="line-2", machine="mill-1", time=3.0, kind="risk", model="failure", value=0.8,
                 threshold=0.5, rule="risk>=0.5", clear="risk<0.5", message="mill-1 on line-2: failure risk 80 %")
    store.write_batch(readings, predictions, [alert, dict(risky, at=now - 60)], states)


@pytest.fixture
def dashboard(tmp_path):
    from fastapi.testclient import TestClient

    from shopfloor.serve.app import create_app

    root = tmp_path / "models"
    registry = Registry(root, create=True)
    registry.add("failure", FIXTURES / "models" / "tabular-v1")
    registry.set_alarm("failure", "risk>=0.7", "risk<0.4")
    token = create_token(root, "anna", "read")
    store = Store(default_url(root))
    _fill(store)
    with TestClient(create_app(root), base_url="http://testserver", follow_redirects=False) as client:
        client.cookies.set(COOKIE, token)
        yield client, store
    store.close()


def test_fleet_and_machine_pages_say_why_a_machine_is_in_alarm(dashboard):
    client, _ = dashboard
    reason = "remaining useful life 18 cycles met rul&lt;=20 at time 19 (model rul v1; clears at rul&gt;=30)"
    fleet = client.get("/fragments/fleet")
    assert fleet.status_code == 200 and reason in fleet.text
    page = client.get("/machines/line-1/press-1")
    assert page.status_code == 200 and reason in page.text


def test_the_models_page_shows_each_models_alarm_rule(dashboard):
    client, _ = dashboard
    row = re.search(r'<tr class="model" data-model="failure">.*?</tr>', client.get("/models").text, re.S).group(0)
    assert "<code>risk&gt;=0.7</code> <small>clears at <code>risk&lt;0.4</code>" in row


def test_the_machine_page_draws_each_sensor_and_says_when_no_model_applies(dashboard):
    client, _ = dashboard
    page = client.get("/machines/line-1/press-1").text
    for sensor in ("temperature", "pressure"):
        chart = re.search(rf'<svg class="chart"[^>]*aria-label="{sensor}">.*?</svg>', page)
        assert chart and "<polyline" in chart.group(0), sensor
    assert 'aria-label="Type"' not in page  # text, not a trend
    assert "failure risk: no live model of this kind scores this machine" in page
    assert "not enough readings yet" not in page
    other = client.get("/machines/line-2/mill-1").text
    assert "remaining useful life (cycles), 90 % interval: no live model of this kind" in other
    assert "failure risk: not enough readings yet" in other  # a model applies; one prediction is not a trend


def test_alerts_are_sorted_filtered_and_acknowledged_with_who_and_when(dashboard):
    client, store = dashboard
    page = client.get("/alerts").text
    assert page.index("press-1") < page.index("mill-1")  # newest first
    oldest = client.get("/alerts", params={"sort": "oldest"}).text
    assert oldest.index("mill-1") < oldest.index("press-1")
    only_risk = client.get("/alerts", params={"kind": "risk"}).text
    assert "mill-1" in only_risk and "/machines/line-1/press-1" not in only_risk
    assert "<code>risk&gt;=0.5</code><br><small>clears at <code>risk&lt;0.5</code>" in only_risk
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page).group(1)
    alert = store.alerts(kind="risk")[0]
    ack = f"/alerts/{alert['id']}/ack"
    form = {"csrf": csrf, "back": "/alerts?kind=risk"}
    assert client.post(ack, data={**form, "csrf": "0" * 64}).status_code == 403  # a form made elsewhere
    assert client.post(ack, data=form, headers={"Origin": "https://evil.example"}).status_code == 403
    same_site = {"Origin": "http://testserver"}  # the service's Origin check runs before sign-in is looked at
    outsider = client.post(ack, data=form, cookies={COOKIE: "sf_not-a-token"}, headers=same_site)
    assert outsider.status_code == 401
    assert store.alerts(kind="risk")[0]["acked_at"] is None
    done = client.post(ack, data={**form, "back": "https://evil.example/"}, headers={"Origin": "http://testserver"})
    assert done.status_code == 303 and done.headers["location"] == "/"  # back to this site only
    acked = store.alerts(kind="risk")[0]
    assert acked["acked_by"] == "anna" and acked["acked_at"] > 0
    assert client.post("/alerts/999/ack", data=form, headers=same_site).status_code == 404
    assert "mill-1" not in client.get("/alerts").text  # open alerts only, by default
    shown = client.get("/alerts", params={"state": "acknowledged"}).text
    assert "mill-1" in shown and "acknowledged by anna" in shown
