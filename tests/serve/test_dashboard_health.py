"""The dashboard's model-health view (issue 19, item 3): per live model, each input's drift verdict per comparison
from the store's `drift_verdicts` (newest first, bounded), the newest data-quality findings, and the estimated
accuracy on the line beside the accuracy measured at training, with "No labels yet" while no outcome is joined
(the measured accuracy beside it is in test_outcomes.py)."""

from __future__ import annotations

import html
import re
import shutil

import numpy as np
import pytest

from shopfloor.registry import Registry
from shopfloor.serve.auth import COOKIE, create_token
from shopfloor.serve.health import CHECKS, quality_findings
from shopfloor.store import Store, default_url
from shopfloor.store_schema import drift_verdicts
from shopfloor.watch.performance import classifier_estimate

TORQUE = "Torque [Nm]"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _verdicts(inputs: list[str], checks: int, start: float = 1_795_000_000.0) -> list[dict]:
    """`checks` comparisons 10 s apart: torque ok, then watch, then drift in the newest two; a stuck reading found in
    the newest one only; the other inputs and the risk output ok throughout."""
    rows = []
    for k in range(checks):
        for name, kind in [(i, "input") for i in inputs] + [("risk", "output")]:
            verdict = "ok"
            if name == TORQUE:
                verdict = "drift" if k >= checks - 2 else "watch" if k == checks - 3 else "ok"
            rows.append({"model": "failure", "version": 1, "input": name, "kind": kind, "verdict": verdict,
                         "psi": 0.05 + k / 100, "wasserstein_sd": 0.1, "js": None, "p_value": 0.5, "readings": 500,
                         "findings": "stuck: the last 40 readings are all 12.5" if name == TORQUE and k == checks - 1
                         else None, "at": start + 10 * k})
    return rows


@pytest.fixture
def health(binary_model, tmp_path):
    from fastapi.testclient import TestClient

    from shopfloor.serve.app import create_app

    root = tmp_path / "models"
    Registry(root, create=True).add("failure", binary_model.folder)
    token = create_token(root, "anna", "read")
    store = Store(default_url(root))
    with TestClient(create_app(root), base_url="http://testserver", follow_redirects=False) as client:
        client.cookies.set(COOKIE, token)
        yield client, store, list(binary_model.model.drift_profile_["inputs"])
    store.close()


def _fill(store: Store, inputs: list[str], checks: int, risks: np.ndarray) -> None:
    with store.engine.begin() as db:
        db.execute(drift_verdicts.insert(), _verdicts(inputs, checks))
    store.write_batch([], [dict(line="line-1", machine="mill-1", time=float(k), model="failure", version=1, risk=float(r),
                                sent_at=0.0) for k, r in enumerate(risks)]
                      + [dict(line="line-1", machine="mill-1", time=99.0, model="failure", version=2, risk=0.99,
                              sent_at=0.0)], [], [])  # another version's: its calibration is not this profile's


def test_the_health_page_shows_drift_per_input_newest_first_quality_and_accuracy(health):
    client, store, inputs = health
    assert TORQUE in inputs
    risks = np.random.default_rng(0).uniform(0, 1, 60)
    _fill(store, inputs, CHECKS + 5, risks)
    assert '/models/failure/health">health</a>' in client.get("/models").text
    page = client.get("/models/failure/health").text
    rows = re.findall(r'<tr class="check">(.*?)</tr>', page)
    assert len(rows) == CHECKS  # bounded: the oldest five comparisons are left out
    header = re.search(r"<thead><tr><th>when</th><th>version</th><th>readings</th>(.*?)</tr></thead>", page).group(1)
    names = [html.unescape(n).strip() for n in re.findall(r"<th>([^<]+)", header)]
    assert names == inputs + ["risk"]
    torque = names.index(TORQUE)
    verdicts = [re.findall(r'class="drift-verdict"[^>]*>(\w+)<', row) for row in rows]
    assert [v[torque] for v in verdicts[:4]] == ["drift", "drift", "watch", "ok"]  # newest first
    assert all(v[i] == "ok" for v in verdicts for i in range(len(names)) if i != torque)
    assert f"{TORQUE} drift: PSI 0.39, 0.1 sd moved, p 0.5 (500 readings)" in html.unescape(rows[0])
    assert re.search(r"<li><strong>Torque \[Nm\]</strong>: stuck: the last 40 readings are all 12\.5</li>", page)
    expected = classifier_estimate(binary_model_classifier(client), risks)
    cells = re.findall(r"<td>([^<]*)</td>", re.search(r'<tr class="estimated">(.*?)</tr>', page).group(1))
    assert float(cells[1]) == pytest.approx(expected["accuracy"], abs=1e-3) and cells[-1] == "60"
    assert float(cells[2]) == pytest.approx(expected["f1"], abs=1e-3)
    assert '<tr class="validation"><td>measured at training' in page
    assert "No labels yet: no outcome is joined to a prediction of failure v1" in page


def binary_model_classifier(client) -> dict:
    return client.app.state.registry.live("failure").estimator.drift_profile_["classifier"]


def test_a_model_without_verdicts_says_so_and_the_page_needs_a_token(health):
    client, store, _ = health
    page = client.get("/models/failure/health").text
    assert "No drift verdicts stored for failure yet" in page and "Nothing checked yet." in page
    assert '<tr class="check">' not in page and "no stored predictions yet" in page
    client.cookies.clear()
    assert client.get("/models/failure/health").status_code == 303  # to sign in
    assert quality_findings(None) == []


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_health_page_draws_in_a_browser(binary_model, tmp_path):
    """From Models to a model's health in Chromium: one row per comparison, the drifting input's newest cell red."""
    from rest_service import signed_in_page

    root = tmp_path / "models"
    Registry(root, create=True).add("failure", binary_model.folder)
    token = create_token(root, "browser", "read")
    store = Store(default_url(root))
    inputs = list(binary_model.model.drift_profile_["inputs"])
    _fill(store, inputs, 4, np.array([0.1, 0.9]))
    with signed_in_page(root, token, "/models") as page:
        page.click("text=health")
        page.wait_for_selector("table.health tr.check")
        newest = page.eval_on_selector_all("table.health tr.check:first-child .drift-verdict",
                                           "cells => cells.map(c => [c.textContent, getComputedStyle(c).color, c.title])")
        rows = page.eval_on_selector_all("table.health tr.check", "rows => rows.length")
    store.close()
    assert rows == 4
    torque = newest[inputs.index(TORQUE)]
    assert torque[0] == "drift" and torque[1] == "rgb(201, 42, 42)" and torque[2].startswith(f"{TORQUE} drift: PSI")
    assert all(cell[0] == "ok" and cell[1] == "rgb(46, 139, 87)" for i, cell in enumerate(newest) if i != inputs.index(TORQUE))
