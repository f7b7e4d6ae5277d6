"""Storage on SQLite and on a real PostgreSQL server: idempotent batches, upserts, reads, inspections."""

from __future__ import annotations

import pytest
from services import fresh_database, postgres_cluster

from shopfloor.store import Store, StoreError, database_url, default_url


@pytest.fixture(scope="module")
def postgres_server():
    with postgres_cluster() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        store = Store(f"sqlite:///{tmp_path / 'plant.db'}")
        yield store
        store.close()
        return
    with fresh_database(request.getfixturevalue("postgres_server")) as url:
        store = Store(url)
        yield store
        store.close()


def batch(machine: str, times: range, risk: float = 0.2, alerting: bool = False):
    readings = [{"line": "line-1", "machine": machine, "time": t, "values": {"Torque [Nm]": 40.0 + t, "Type": "L"},
                 "sent_at": 100.0 + t} for t in times]
    predictions = [{"line": "line-1", "machine": machine, "time": t, "model": "failure", "version": 1, "risk": risk,
                    "sent_at": 100.0 + t} for t in times]
    machines = [{"line": "line-1", "machine": machine, "time": times[-1], "risk": risk, "risk_threshold": 0.5,
                 "risk_model": "failure@1", "alerting": alerting}]
    return readings, predictions, machines


def test_a_batch_delivered_twice_is_stored_once(store):
    readings, predictions, machines = batch("press-1", range(5))
    store.write_batch(readings, predictions, (), machines)
    store.write_batch(readings, predictions, (), machines)  # a QoS 1 redelivery
    counts = store.counts()
    assert (counts["readings"], counts["predictions"], counts["machines"]) == (5, 5, 1)
    assert [r["values"] for r in store.readings("line-1", "press-1")][0] == {"Torque [Nm]": 40.0, "Type": "L"}


def test_machines_hold_the_latest_state_and_trend_is_oldest_first(store):
    for start, risk in [(0, 0.1), (5, 0.7)]:
        readings, predictions, machines = batch("press-1", range(start, start + 5), risk, alerting=risk > 0.5)
        store.write_batch(readings, predictions, (), machines)
    readings, _, machines = batch("press-2", range(3))
    store.write_batch(readings, (), (), machines)
    fleet = store.fleet()
    assert [m["machine"] for m in fleet] == ["press-1", "press-2"]
    assert fleet[0]["risk"] == 0.7 and fleet[0]["alerting"] is True and fleet[0]["time"] == 9
    trend = store.trend("line-1", "press-1", limit=4)
    assert [t["time"] for t in trend] == [6, 7, 8, 9]
    assert store.counts()["alerting"] == 1
    assert store.machine("line-1", "press-2")["time"] == 2 and store.machine("line-1", "press-9") is None
    assert store.counts(only=("machines", "alerting")) == {"machines": 2, "alerting": 1}


def test_alerts_dead_letters_and_inspections_round_trip(store):
    alert = {"line": "line-1", "machine": "press-1", "time": 3, "kind": "risk", "model": "failure", "version": 2,
             "value": 0.9, "threshold": 0.5, "message": "press-1: failure risk 90 %"}
    store.write_batch([], [], [alert, {**alert, "time": 4}])
    assert [a["time"] for a in store.alerts(limit=1)] == [4]
    store.write_dead_letter("plant/line-1/press-1/telemetry", b"\xffnot json", "payload is not JSON")
    assert store.dead_letters()[0]["payload"] == b"\xffnot json"
    first = store.record_inspection("scratches", 1, "part-7.png", "defect", 0.93, b"\x89PNG image", b"\x89PNG heat")
    second = store.record_inspection("scratches", 1, "part-8.png", "good", 0.05, b"\x89PNG other", None)
    listed = store.inspections()
    assert [i["id"] for i in listed] == [second, first] and "image" not in listed[0]
    assert store.inspection_image(first, "heatmap") == b"\x89PNG heat"
    assert store.inspection_image(second, "heatmap") is None
    assert store.inspection_image(12345) is None
    with pytest.raises(StoreError):
        store.inspection_image(first, "../etc/passwd")
    counts = store.counts()
    assert (counts["alerts"], counts["dead_letters"], counts["inspections"]) == (2, 1, 2)


def test_urls_people_type_are_understood(tmp_path):
    assert database_url("postgresql://me@db:5432/plant") == "postgresql+psycopg://me@db:5432/plant"
    assert database_url(tmp_path / "x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    assert default_url(tmp_path) == f"sqlite:///{tmp_path / 'shopfloor.db'}"
    with pytest.raises(StoreError, match="sqlite:///"):
        Store("mysql://me@db/plant")


def test_alerts_are_filtered_sorted_and_acknowledged_once(store):
    alert = {"line": "line-1", "machine": "press-1", "time": 3, "kind": "risk", "model": "failure", "version": 1,
             "value": 0.9, "threshold": 0.5, "rule": "risk>=0.5", "clear": "risk<0.3", "message": "press-1: risk 90 %"}
    store.write_batch([], [], [alert, {**alert, "machine": "press-2", "value": 0.6, "at": 1.0},
                               {**alert, "kind": "rul", "model": "rul", "value": 12.0, "rule": "rul<=20", "at": 2.0}])
    assert [a["value"] for a in store.alerts(order="value")] == [12.0, 0.9, 0.6]
    assert [a["machine"] for a in store.alerts(order="oldest")] == ["press-2", "press-1", "press-1"]
    assert [a["kind"] for a in store.alerts(machine="press-1", kind="rul")] == ["rul"]
    first = store.alerts(kind="rul")[0]
    assert (first["rule"], first["clear"], first["acked_at"]) == ("rul<=20", "risk<0.3", None)
    acked = store.acknowledge(first["id"], "anna")
    assert acked["acked_by"] == "anna" and acked["acked_at"] > 0
    assert store.acknowledge(first["id"], "ben")["acked_by"] == "anna"  # who acknowledged first is kept
    assert store.acknowledge(10_000, "anna") is None
    assert [a["kind"] for a in store.alerts(acknowledged=True)] == ["rul"]
    assert len(store.alerts(acknowledged=False)) == 2
    with pytest.raises(StoreError, match="not a way to sort"):
        store.alerts(order="random")


def test_a_database_from_before_alarm_states_gains_their_columns(store):
    """Tables made by an older version lack the alarm states and acknowledgements: opening the store adds them."""
    import sqlalchemy as sa

    from shopfloor import store_schema as tables
    from shopfloor.stream.machines import Fleet

    new = {"alarms", "rule", "clear", "acked_by", "acked_at"}
    engine = sa.create_engine(store.url)
    old = sa.MetaData()
    for table in (tables.machines, tables.alerts):
        sa.Table(table.name, old, *(c._copy() for c in table.columns if c.name not in new))
    with engine.begin() as db:
        for table in (tables.alerts, tables.machines):
            db.execute(sa.text(f"DROP TABLE {table.name}"))
        old.create_all(db)
        db.execute(old.tables["machines"].insert(), [{"line": "line-1", "machine": "press-1", "time": 4.0, "risk": 0.9,
                                                      "risk_threshold": 0.5, "risk_model": "failure@2",
                                                      "alerting": True, "updated_at": 1.0}])
    engine.dispose()
    reopened = Store(store.url)
    try:
        row = reopened.fleet()[0]
        assert row["alarms"] is None and row["alerting"] is True
        fleet = Fleet()
        fleet.restore([row])
        state = fleet.state("line-1", "press-1")
        assert state.alarms["failure"]["on"] and state.alerting  # a restarted worker does not alert again
        reopened.write_batch([], [], [{"line": "line-1", "machine": "press-1", "time": 5, "kind": "risk", "model": "failure",
                                       "version": 2, "value": 0.9, "threshold": 0.5, "rule": "risk>=0.5",
                                       "message": "again"}], [state.row()])
        assert reopened.alerts()[0]["rule"] == "risk>=0.5" and reopened.fleet()[0]["alarms"]
    finally:
        reopened.close()


def test_a_database_from_before_monitor_models_gains_the_score_columns(store):
    """Predictions, machines and alerts stored before monitor models lack the score and its sensors: opening the store
    adds the columns, the old rows keep null there, and a score is then stored beside them."""

    from shopfloor import store_schema as tables

    reopened = store_from_before(store, {"score", "score_sensors", "score_model", "sensors"},
                                 (tables.predictions, tables.machines, tables.alerts))
    try:
        assert [p["score"] for p in reopened.trend("line-1", "press-1")] == [None] * 3
        scored = [{"line": "line-1", "machine": "pump-1", "time": 3.0, "model": "pump", "version": 1, "score": 0.8,
                   "score_sensors": "flow 0.90, pressure 0.05, current 0.02", "sent_at": 3.0}]
        state = {"line": "line-1", "machine": "pump-1", "time": 3.0, "score": 0.8, "score_model": "pump@1",
                 "score_sensors": "flow 0.90, pressure 0.05, current 0.02", "alerting": True}
        alert = {"line": "line-1", "machine": "pump-1", "time": 3.0, "kind": "score", "model": "pump", "version": 1,
                 "value": 0.8, "threshold": 0.5, "message": "anomaly", "sensors": "flow 0.90, pressure 0.05, current 0.02"}
        reopened.write_batch([], scored, [alert], [state])
        assert reopened.trend("line-1", "pump-1")[0]["score_sensors"].startswith("flow 0.90")
        assert reopened.machine("line-1", "pump-1")["score_model"] == "pump@1"
        assert reopened.alerts(kind="score")[0]["sensors"].startswith("flow")
    finally:
        reopened.close()


def test_a_database_from_before_diagnose_models_gains_the_verdict_columns_and_the_block_tails(store):
    """Predictions and machines stored before diagnose models on the line lack the verdict columns, and the database
    has no block_tails table: opening the store adds both; a verdict and a machine's waiting samples then go in."""
    import numpy as np

    from shopfloor import store_schema as tables

    reopened = store_from_before(store, {"verdict", "verdict_probability", "runner_up", "unknown", "verdict_model"},
                                 (tables.predictions, tables.machines), gone=(tables.block_tails,))
    try:
        assert [p["verdict"] for p in reopened.trend("line-1", "press-1")] == [None] * 3
        verdict = {"line": "line-1", "machine": "fan-1", "time": 3.5, "model": "bearing", "version": 1, "verdict": "inner",
                   "verdict_probability": 0.97, "runner_up": "ball", "unknown": False, "sent_at": 3.0}
        state = {"line": "line-1", "machine": "fan-1", "time": 3.0, "verdict": "inner", "verdict_probability": 0.97,
                 "runner_up": "ball", "unknown": False, "verdict_model": "bearing@1", "alerting": False}
        waiting = np.arange(6, dtype=np.float32).reshape(2, 3)
        tail = {"line": "line-1", "machine": "fan-1", "model": "bearing", "window": 4, "rate": 12000.0,
                "channels": "DE,FE", "seen": 7, "next_time": 3.0 + 7 / 12000, "newest": 3.0, "samples": waiting.tobytes()}
        reopened.write_batch([], [verdict], [], [state], [], [tail])
        reopened.write_batch([], [], [], [], [], [{**tail, "seen": 11}])  # a later batch's tail replaces it
        row = reopened.trend("line-1", "fan-1")[0]
        assert (row["verdict"], row["runner_up"], bool(row["unknown"])) == ("inner", "ball", False)
        assert reopened.machine("line-1", "fan-1")["verdict_model"] == "bearing@1"
        stored = reopened.block_tails([("line-1", "fan-1"), ("line-1", "press-1")], "bearing")
        assert list(stored) == [("line-1", "fan-1")] and stored[("line-1", "fan-1")]["seen"] == 11
        np.testing.assert_array_equal(np.frombuffer(stored[("line-1", "fan-1")]["samples"], np.float32).reshape(2, 3), waiting)
        assert reopened.block_tails([("line-1", "fan-1")], "another model") == {}
    finally:
        reopened.close()


def test_a_database_from_before_outcomes_gains_their_table_and_joins_labels_once(store):
    """A database made before labels that arrive later has no outcomes table: opening the store adds it; a label is
    then joined to its prediction, a redelivered one (twice in one batch, too) is stored once, and a corrected one
    replaces it."""
    from shopfloor import store_schema as tables
    from shopfloor.outcomes import store_outcomes
    from shopfloor.serve.health import labelled_risks, unlabelled_risks

    reopened = store_from_before(store, set(), (tables.predictions,), gone=(tables.outcomes,))
    try:
        label = {"line": "line-1", "machine": "press-1", "time": 1, "outcome": "1"}
        unmatched = store_outcomes(reopened, "failure", [label, label, {**label, "time": 7}])
        assert [u["reason"] for u in unmatched] == ["no prediction of 'failure' for press-1 at that time"]
        store_outcomes(reopened, "failure", [{**label, "outcome": "0"}])
        with reopened.engine.connect() as db:
            rows = db.execute(tables.outcomes.select().order_by(tables.outcomes.c.time)).all()
        assert [(r.time, r.outcome, r.prediction_id is not None) for r in rows] == [(1.0, "0", True), (7.0, "1", False)]
        assert labelled_risks(reopened, "failure", 1, "1") == [(1.0, 0.2, 0)]  # what the health page reads
        assert unlabelled_risks(reopened, "failure", 1) == [0.2, 0.2]
    finally:
        reopened.close()


def store_from_before(store, new: set[str], changed: tuple, gone: tuple = ()) -> Store:
    """The store's database as an older shopfloor left it: the `changed` tables without the `new` columns (three
    predictions of press-1 stored), the `gone` tables absent; reopened, so that the store upgrades it."""
    import sqlalchemy as sa

    engine = sa.create_engine(store.url)
    old = sa.MetaData()
    for table in changed:
        sa.Table(table.name, old, *(c._copy() for c in table.columns if c.name not in new))
    _, predictions, _ = batch("press-1", range(3))
    with engine.begin() as db:
        for table in (*changed, *gone):
            db.execute(sa.text(f"DROP TABLE {table.name}"))
        old.create_all(db)
        db.execute(old.tables["predictions"].insert(), [{**p, "stored_at": 1.0} for p in predictions])
    engine.dispose()
    return Store(store.url)
