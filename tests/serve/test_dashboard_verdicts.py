"""The dashboard's fault verdicts (issue 17): per machine that a fault-diagnosis model watches on the line, the latest
verdict with its probability on the fleet and machine pages, and a strip of the recent windows' verdicts, one cell per
window in time order, coloured by class; in the service's HTML and in a real Chromium."""

from __future__ import annotations

import json
import re
import shutil
import time

import pytest

from shopfloor.registry import Registry
from shopfloor.serve.auth import COOKIE, create_token
from shopfloor.serve.verdicts import NORMAL, UNKNOWN, verdict_strip, when
from shopfloor.store import Store, default_url

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# a bearing that runs normal, then shows an inner-race fault, one window it cannot place among them
CLASSES = ["normal"] * 6 + ["inner"] * 3 + ["outer"] + ["inner"] * 4


def _fill(store: Store) -> None:
    now = time.time()
    predictions = [dict(line="line-1", machine="press-1", time=100.0 + k, model="bearing", version=1, sent_at=now,
                        verdict=name, verdict_probability=0.9 + k / 1000, runner_up="outer" if name == "inner" else "inner",
                        unknown=k == 9) for k, name in enumerate(CLASSES)]
    predictions.append(dict(line="line-1", machine="press-1", time=100.0, model="failure", version=1, risk=0.1,
                            sent_at=now))  # another model's prediction: not a verdict
    alarms = {"bearing": {"kind": "verdict", "version": 1, "on": True, "judged": 113.0, "rule": "fault_run>=3",
                          "clear": "fault_run<=-3", "value": 3.0, "since": 108.0, "run": 8.0}}
    state = dict(line="line-1", machine="press-1", time=113.0, verdict="inner", verdict_probability=0.913,
                 runner_up="outer", unknown=False, verdict_model="bearing@1", alerting=True, alarms=json.dumps(alarms))
    store.write_batch([], predictions, [], [state])


def test_the_strip_has_a_cell_per_window_coloured_by_class():
    points = [{"time": float(k), "verdict": c, "verdict_probability": 0.8, "unknown": k == 9, "runner_up": None}
              for k, c in enumerate(CLASSES)] + [{"time": 1.0, "risk": 0.2}]
    strip = verdict_strip(points)
    assert [c["time"] for c in strip["cells"]] == [float(k) for k in range(len(CLASSES))]
    colours = [c["colour"] for c in strip["cells"]]
    assert colours[:6] == [NORMAL] * 6 and colours[9] == UNKNOWN
    assert colours[6] == colours[13] not in (NORMAL, UNKNOWN) and colours[6] != colours[9]
    assert {name for name, _ in strip["legend"]} == {"normal", "inner", "unknown"}  # 'outer' came only as unknown
    assert len(verdict_strip(points, limit=5)["cells"]) == 5 and verdict_strip([{"time": 1.0, "risk": 0.2}]) is None
    assert when(1_795_000_000.25) == "2026-11-18 11:06:40.250 UTC" and when(12.0) == "time 12"


def test_fleet_and_machine_pages_show_the_latest_verdict_and_the_strip(tmp_path):
    from fastapi.testclient import TestClient

    from shopfloor.serve.app import create_app

    root = tmp_path / "models"
    Registry(root, create=True)
    token = create_token(root, "anna", "read")
    store = Store(default_url(root))
    _fill(store)
    with TestClient(create_app(root), base_url="http://testserver", follow_redirects=False) as client:
        client.cookies.set(COOKIE, token)
        fleet = client.get("/fragments/fleet").text
        assert re.search(r'<td class="verdict">inner <small>0\.91</small></td>', fleet)
        page = client.get("/machines/line-1/press-1").text
    store.close()
    assert re.search(r"<dt>fault verdict</dt><dd class=\"verdict\">inner,\s+probability 0\.91 \(runner-up outer\), "
                     r"model bearing@1", page)
    cells = re.findall(r'<span class="cell" style="background: (#[0-9a-f]+)" title="([^"]+)"', page.split('class="legend"')[0])
    assert len(cells) == len(CLASSES)
    assert cells[0] == (NORMAL, "time 100: normal, probability 0.90, runner-up inner")
    assert cells[9][0] == UNKNOWN and cells[9][1].startswith("time 109: unknown (nearest outer)")
    assert "fault run (windows in a row with a fault verdict) 3 met fault_run&gt;=3 at time 108" in page


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_strip_draws_in_a_browser(tmp_path):
    """Chromium lays the strip out as a row of cells as wide as the page allows, each with its window's verdict."""
    from rest_service import signed_in_page

    root = tmp_path / "models"
    Registry(root, create=True)
    token = create_token(root, "browser", "read")
    store = Store(default_url(root))
    _fill(store)
    with signed_in_page(root, token) as page:
        page.wait_for_selector("table.fleet")
        page.click("text=press-1")
        page.wait_for_selector(".verdict-strip .cell")
        boxes = page.eval_on_selector_all(".verdict-strip .cell", "cells => cells.map(c => c.getBoundingClientRect().x)")
        titles = page.eval_on_selector_all(".verdict-strip .cell", "cells => cells.map(c => c.title)")
    store.close()
    assert len(boxes) == len(CLASSES) and boxes == sorted(boxes) and boxes[-1] > boxes[0]  # a row, oldest left
    assert titles[-1] == "time 113: inner, probability 0.91, runner-up outer"
