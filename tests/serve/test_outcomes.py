"""Labels that arrive later (issue 19, item 3): POST /api/models/{name}/outcomes joins each to its stored prediction,
and the model-health page sets the accuracy measured against them beside the estimate on the same predictions."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from shopfloor.registry import Registry
from shopfloor.serve.auth import COOKIE, create_token
from shopfloor.serve.health import RISKS
from shopfloor.store import Store, default_url
from shopfloor.watch.performance import classifier_estimate

FIXTURES = Path(__file__).parents[1] / "fixtures" / "models"


@pytest.fixture
def line(binary_model, tmp_path):
    """The service over a registry with the failure model (and a RUL model, which takes no outcomes), its store, and
    the model's decision threshold."""
    from fastapi.testclient import TestClient

    from shopfloor.serve.app import create_app

    root = tmp_path / "models"
    registry = Registry(root, create=True)
    registry.add("failure", binary_model.folder)
    registry.add("rul", FIXTURES / "rul-v2")
    token = create_token(root, "quality", "read")
    store = Store(default_url(root))
    with TestClient(create_app(root), base_url="http://testserver", follow_redirects=False) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        client.cookies.set(COOKIE, token)
        yield client, store, binary_model.model.drift_profile_["classifier"]
    store.close()


def _predict(store: Store, risks: np.ndarray, machine: str = "mill-1", version: int = 1, start: int = 0) -> None:
    """Failure probabilities of `machine` at times start, start + 1, ..., as the stream worker stores them."""
    predictions = [dict(line="line-1", machine=machine, time=float(start + k), model="failure", version=version,
                        risk=float(r), sent_at=0.0) for k, r in enumerate(risks)]
    state = dict(line="line-1", machine=machine, time=float(start + len(risks) - 1), risk=float(risks[-1]),
                 risk_threshold=0.5, risk_model=f"failure@{version}", alerting=False)
    store.write_batch([], predictions, [], [state])


def _send(client, outcomes: list[dict], **params):
    return client.post("/api/models/failure/outcomes", json={"outcomes": outcomes}, params=params)


def _row(page: str, name: str) -> list[str]:
    """The figures of the accuracy table's row of class `name`: accuracy, F1, failure rate, rows."""
    return re.findall(r"<td>([^<]*)</td>", re.search(rf'<tr class="{name}">(.*?)</tr>', page).group(1))[1:]


def test_labels_that_agree_with_every_prediction_measure_accuracy_one_beside_the_estimate(line):
    client, store, classifier = line
    threshold = classifier["threshold"]
    risks = np.random.default_rng(0).uniform(0, 1, 60)
    _predict(store, risks)
    called = (risks >= threshold).astype(int)
    answer = _send(client, [{"machine": "mill-1", "time": float(t), "outcome": int(c)} for t, c in enumerate(called)])
    assert answer.status_code == 200, answer.text
    assert answer.json() | {"unmatched": None} == {"model": "failure", "tolerance": 0.0, "received": 60, "matched": 60,
                                                    "unmatched": None}
    assert answer.json()["unmatched"] == []
    _predict(store, np.full(7, 0.05), start=100)  # later, not yet labelled
    page = client.get("/models/failure/health").text
    measured, same = _row(page, "measured"), _row(page, "estimated-labelled")
    assert (measured[0], measured[1], measured[-1]) == ("1", "1", "60")
    expected = classifier_estimate(classifier, risks)  # as `shopfloor drift` estimates
    assert float(same[0]) == pytest.approx(expected["accuracy"], abs=1e-3) and same[-1] == "60"
    assert float(same[1]) == pytest.approx(expected["f1"], abs=1e-3)
    unlabelled = _row(page, "estimated")
    later = classifier_estimate(classifier, np.full(7, 0.05))["accuracy"]  # 1 - (0.05 read through the curve)
    assert unlabelled[-1] == "7" and float(unlabelled[0]) == pytest.approx(later, abs=1e-3)
    assert "No labels yet" not in page


def test_labels_that_flip_half_the_predictions_measure_about_one_half_and_blocks_show_it_over_time(line):
    client, store, classifier = line
    threshold = classifier["threshold"]
    rng = np.random.default_rng(1)
    risks = rng.uniform(0, 1, RISKS + 300)
    _predict(store, risks)
    called = (risks >= threshold).astype(int)
    flipped = np.where(np.arange(len(risks)) % 2 == 0, 1 - called, called)  # every other label the opposite
    flipped[:300] = 1 - called[:300]  # the oldest 300 all wrong: an older block measured 0
    answer = _send(client, [{"line": "line-1", "machine": "mill-1", "time": float(t), "outcome": bool(c)}
                            for t, c in enumerate(flipped)])
    assert answer.json()["matched"] == RISKS + 300
    page = client.get("/models/failure/health").text
    measured = _row(page, "measured")
    assert float(measured[0]) == pytest.approx(0.5, abs=0.01) and measured[-1] == str(RISKS)
    blocks = [re.findall(r"<td>([^<]*)</td>", b) for b in re.findall(r'<tr class="block">(.*?)</tr>', page)]
    assert [(b[1], b[2]) for b in blocks] == [(str(RISKS), measured[0]), ("300", "0")]  # newest first
    assert blocks[0][3] == _row(page, "estimated-labelled")[0]


def test_an_unknown_label_is_refused_with_its_name_and_nothing_is_stored(line):
    client, store, _ = line
    _predict(store, np.array([0.2, 0.8]))
    answer = _send(client, [{"machine": "mill-1", "time": 0.0, "outcome": 0},
                            {"machine": "mill-1", "time": 1.0, "outcome": "scrap"}])
    assert answer.status_code == 422
    assert answer.json()["detail"] == ("outcome 2 ('scrap', machine mill-1) is not a class of model 'failure' (0, 1): "
                                       "nothing was stored")
    assert _send(client, [{"machine": "mill-1", "time": 0.0, "outcome": 2}]).status_code == 422
    assert "No labels yet" in client.get("/models/failure/health").text
    refused = client.post("/api/models/rul/outcomes", json=[{"machine": "mill-1", "time": 0.0, "outcome": 1}])
    assert refused.status_code == 422 and "gives no calibrated failure probability" in refused.json()["detail"]
    bad = _send(client, [{"machine": "mill-1", "time": 0.0, "outcome": 1}], tolerance="-1")
    assert bad.status_code == 422 and "is not a tolerance" in bad.json()["detail"]
    del client.headers["Authorization"]
    client.cookies.clear()
    assert _send(client, [{"machine": "mill-1", "time": 0.0, "outcome": 1}]).status_code == 401


def test_unmatched_labels_are_stored_reported_and_matched_when_sent_again(line):
    client, store, _ = line
    _predict(store, np.array([0.9, 0.9]))
    labels = [{"machine": "mill-1", "time": 0.0, "outcome": 1}, {"machine": "mill-1", "time": 5.0, "outcome": 1},
              {"machine": "mill-9", "time": 0.0, "outcome": 0}, {"machine": "mill-1", "time": 1.0, "outcome": 1}]
    first = _send(client, labels).json()
    assert first["matched"] == 2
    assert [(u["index"], u["reason"]) for u in first["unmatched"]] == [
        (1, "no prediction of 'failure' for mill-1 at that time"),
        (2, "machine 'mill-9' is on no line the store knows yet: send its 'line'")]
    from shopfloor.store_schema import outcomes

    with store.engine.connect() as db:
        stored = sorted((r.machine, r.time, r.prediction_id is None) for r in db.execute(outcomes.select()))
    assert stored == [("mill-1", 0.0, False), ("mill-1", 1.0, False), ("mill-1", 5.0, True), ("mill-9", 0.0, True)]
    _predict(store, np.array([0.1]), start=5)  # the stream worker catches up
    again = _send(client, labels).json()  # redelivered: matched now, and stored once
    assert again["matched"] == 3 and [u["index"] for u in again["unmatched"]] == [2]
    with store.engine.connect() as db:
        assert len(db.execute(outcomes.select()).all()) == 4
    assert _row(client.get("/models/failure/health").text, "measured")[-1] == "3"
    corrected = _send(client, [{"machine": "mill-1", "time": 5.0, "outcome": 0}]).json()  # a corrected outcome replaces
    assert corrected["matched"] == 1
    with store.engine.connect() as db:
        assert db.execute(outcomes.select().where(outcomes.c.time == 5.0)).one().outcome == "0"


def test_a_label_joins_the_nearest_prediction_within_the_tolerance_and_only_one_label_per_prediction(line):
    client, store, _ = line
    _predict(store, np.array([0.2, 0.7, 0.4]), start=10)
    near = [{"machine": "mill-1", "time": 11.3, "outcome": 1}]
    assert _send(client, near).json()["unmatched"][0]["reason"] == "no prediction of 'failure' for mill-1 at that time"
    answer = _send(client, near + [{"machine": "mill-1", "time": 10.9, "outcome": 1},  # 11 is taken by 11.3
                                   {"machine": "mill-1", "time": 11.6, "outcome": 0},  # 12
                                   {"machine": "mill-1", "time": 10.5, "outcome": 0}],  # 10 and 11 as near: the earlier
                   tolerance=0.5).json()
    assert answer["tolerance"] == 0.5 and answer["matched"] == 3
    assert [(u["index"], u["reason"]) for u in answer["unmatched"]] == [
        (1, "the prediction at time 11 already has the outcome sent for time 11.3")]
    from shopfloor.outcomes import store_outcomes
    from shopfloor.store_schema import outcomes, predictions

    with store.engine.connect() as db:
        joined = db.execute(outcomes.join(predictions, outcomes.c.prediction_id == predictions.c.id).select()
                            .with_only_columns(outcomes.c.time, predictions.c.time.label("predicted"))).all()
    assert sorted(tuple(r) for r in joined) == [(10.5, 10.0), (11.3, 11.0), (11.6, 12.0)]
    again = store_outcomes(store, "failure", [{"line": None, "machine": "mill-1", "time": 10.0, "outcome": "1"}])
    assert again[0]["reason"] == "the prediction at time 10 already has the outcome sent for time 10.5"
    assert _row(client.get("/models/failure/health").text, "measured")[-1] == "3"


def test_a_machine_name_on_two_lines_needs_the_line(line):
    client, store, _ = line
    _predict(store, np.array([0.3]))
    store.write_batch([], [dict(line="line-2", machine="mill-1", time=0.0, model="failure", version=1, risk=0.6,
                                sent_at=0.0)], [], [dict(line="line-2", machine="mill-1", time=0.0, alerting=False)])
    answer = _send(client, [{"machine": "mill-1", "time": 0.0, "outcome": 1},
                            {"line": "line-2", "machine": "mill-1", "time": 0.0, "outcome": 1}]).json()
    assert answer["matched"] == 1
    assert answer["unmatched"] == [{"index": 0, "line": None, "machine": "mill-1", "time": 0.0,
                                    "reason": "machine 'mill-1' is on lines line-1, line-2: send its 'line'"}]


def test_the_route_is_documented_without_a_dangling_reference(line):
    client, _, _ = line
    documented = client.get("/openapi.json").json()["paths"]["/api/models/{name}/outcomes"]["post"]
    body = documented["requestBody"]["content"]["application/json"]["schema"]
    assert "$ref" not in str(body) and body["properties"]["outcomes"]["items"]["required"] == ["machine", "time", "outcome"]
    assert [p["name"] for p in documented["parameters"]] == ["name", "tolerance"]
