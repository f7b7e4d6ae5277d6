"""The stream's drift watch: a live model's readings fill its rolling profile, verdicts reach the store's own
table, and an input that drifts raises one alert (not one per check)."""

from types import SimpleNamespace

import sqlalchemy as sa
from tests.watch.test_compare import PROFILE, SENSORS, outputs_of, plant

from shopfloor.store import Store
from shopfloor.store_schema import drift_verdicts
from shopfloor.watch.line import DRIFT_TOPIC, LineWatch


def live_models() -> SimpleNamespace:
    estimator = SimpleNamespace(drift_profile_=PROFILE)
    scorer = SimpleNamespace(name="failure", version=3, columns=frozenset(SENSORS + ["type"]), estimator=estimator)
    return SimpleNamespace(scorers={"failure": scorer})


def batch(frame):
    readings = [{"line": "L1", "machine": f"m{i % 7}", "time": float(i), "values": row}
                for i, row in enumerate(frame[SENSORS + ["type"]].to_dict(orient="records"))]
    predictions = [{"model": "failure", "version": 3, "risk": r} for r in outputs_of(frame)["risk"]]
    return readings, predictions


def test_verdicts_are_stored_per_input_and_a_drifting_input_alerts_once(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'line.db'}")
    published = []
    watch = LineWatch(store, every=250, seconds=0, per_batch=1000)
    models = live_models()
    steady = plant(500, seed=30)
    watch.observe(models, *batch(steady), publish=lambda topic, payload, qos: published.append((topic, payload)))
    assert published == []
    shifted = plant(1000, seed=31)
    shifted["torque"] += 0.5 * PROFILE["inputs"]["torque"]["std"]
    for start in range(0, 1000, 100):
        watch.observe(models, *batch(shifted.iloc[start:start + 100]),
                      publish=lambda topic, payload, qos: published.append((topic, payload)))
    assert [topic for topic, _ in published] == [DRIFT_TOPIC]
    assert '"input": "torque"' in published[0][1]
    with store.engine.connect() as db:
        rows = db.execute(sa.select(drift_verdicts)).mappings().all()
    assert {r["input"] for r in rows} == set(SENSORS) | {"type", "risk"}
    # a check once 250 readings came since the last: after the batch of 500, then after every third batch of 100
    assert len(rows) == 4 * 6
    torque = [r["verdict"] for r in rows if r["input"] == "torque"]
    assert torque[0] == "ok" and torque[-1] == "drift"
    (alert,) = store.alerts(10)  # the plant's alert, beside the MQTT one: on the dashboard's alerts page
    assert (alert["kind"], alert["model"], alert["version"], alert["machine"]) == ("drift", "failure", 3, "failure")
    entered = next(r for r in rows if r["input"] == "torque" and r["verdict"] == "drift")
    assert "input 'torque' drifts" in alert["message"] and alert["value"] == entered["psi"]
    store.close()


def test_models_without_a_profile_are_left_alone():
    models = live_models()
    models.scorers["failure"].estimator = SimpleNamespace(drift_profile_=None)
    watch = LineWatch(None, every=10, seconds=0)
    assert watch.observe(models, *batch(plant(100, seed=1))) == []
    assert watch.rolling == {}


def test_readings_without_the_profiles_inputs_are_not_fed():
    """A diagnose model's profile is of window statistics, which the stream's block summaries do not carry: its
    readings must not fill the ring with missing values (that would read as drift)."""
    models = live_models()
    models.scorers["failure"].columns = frozenset(["type"])  # the scorer takes readings the profile cannot read
    watch = LineWatch(None, every=10, seconds=0)
    readings, predictions = batch(plant(100, seed=2))
    for reading in readings:
        reading["values"] = {"type": reading["values"]["type"]}
    assert watch.observe(models, readings, predictions) == []
    assert all(r.seen == 0 for r in watch.rolling.values())


def test_a_drift_alert_says_what_moved_and_why():
    """The alert row names the model and input with the sizes behind the verdict, and a stuck sensor's finding."""
    from shopfloor.watch.compare import DRIFT_JS, DRIFT_PSI
    from shopfloor.watch.line import drift_alert

    levels = {"input": "type", "kind": "category", "js": 0.31, "readings": 500, "findings": []}
    category = drift_alert("failure", 2, levels, now=10.0)
    assert (category["kind"], category["line"], category["machine"]) == ("drift", "models", "failure")
    assert (category["value"], category["threshold"]) == (0.31, DRIFT_JS)
    assert category["message"] == ("failure v2: input 'type' drifts from its training profile (JS 0.31; over the "
                                   "last 500 readings)")
    findings = [{"finding": "stuck", "severity": "drift", "detail": "the last 60 readings are all 40"},
                {"finding": "out of range", "severity": "watch", "detail": "2 of 500 readings outside"}]
    torque = {"input": "torque", "kind": "numeric", "psi": 0.02, "wasserstein_sd": 0.05, "readings": 500,
              "findings": findings}
    stuck = drift_alert("failure", 2, torque, now=10.0)
    assert (stuck["value"], stuck["threshold"]) == (0.02, DRIFT_PSI)
    assert "(PSI 0.02, 0.05 sd; stuck: the last 60 readings are all 40; over" in stuck["message"]
    assert "out of range" not in stuck["message"]  # a 'watch' finding is not why it drifts
