"""A reading from the future is quarantined and cannot silence its machine, also across worker restarts."""

from __future__ import annotations

import json
import time

import pytest
from services import OfflineMessage, offline_worker

from shopfloor.registry import Registry
from shopfloor.store import Store
from shopfloor.stream.stamps import Stamps

NOW = 1_795_357_000.0  # epoch seconds
TOPIC = "plant/line-1/press-1/telemetry"


def test_a_time_beyond_the_clock_is_refused_whatever_the_clock():
    stamps = Stamps()
    assert stamps.check("l", "epoch", NOW - 10, NOW) is None
    assert "ahead of the clock" in stamps.check("l", "epoch", 1e308, NOW)
    assert "milliseconds" in stamps.check("l", "epoch", NOW * 1000, NOW)  # one epoch-ms stamp in an epoch-s stream
    assert stamps.check("l", "epoch", NOW + 60, NOW) is None  # a gateway's clock a minute fast
    assert stamps.check("l", "cycles", 1e308, NOW) is not None  # no cycle counter is that far ahead either


def test_a_jump_far_past_a_cycle_machines_pace_is_refused_unless_the_machine_goes_on_from_there():
    stamps = Stamps(jump_steps=1000, confirm=3)
    for cycle in range(1, 151):
        assert stamps.check("l", "engine", float(cycle), NOW) is None
    assert "jumps" in stamps.check("l", "engine", 1e6, NOW)  # a glitch between ordinary cycles ...
    assert stamps.check("l", "engine", 151.0, NOW) is None  # ... which the next cycle does not follow
    assert stamps.check("l", "engine", 150.0, NOW) is None  # a late reading is no jump
    for cycle in (5e6, 5e6 + 1):  # a counter set forward: the first readings past the jump wait ...
        assert stamps.check("l", "engine", cycle, NOW) is not None
    assert stamps.check("l", "engine", 5e6 + 2, NOW) is None  # ... until the third in a row confirms it
    assert stamps.check("l", "engine", 5e6 + 3, NOW) is None


def test_epoch_seconds_may_jump_over_a_long_stop():
    stamps = Stamps()
    for k in range(10):
        assert stamps.check("l", "press", NOW - 30 * 86_400 + k, NOW) is None  # a reading a second, a month ago
    assert stamps.check("l", "press", NOW, NOW) is None  # back after a month: 2.6 million steps, and plausible


def _reading(t: float, torque: float = 40.0) -> bytes:
    return json.dumps({"time": t, "Torque [Nm]": torque}).encode()


def test_one_reading_from_the_future_does_not_freeze_its_machine(tmp_path):
    root = tmp_path / "models"
    Registry(root, create=True)
    store = Store(tmp_path / "plant.db")
    worker = offline_worker(root, store)
    now = time.time()
    stamps = [now - 3, now - 2, 1e308, now - 1, now]
    for mid, t in enumerate(stamps):
        worker.process([(worker.session, OfflineMessage(TOPIC, _reading(t), mid))])
    assert store.fleet()[0]["time"] == pytest.approx(now, abs=1e-3)  # it stayed at 1e308
    assert store.counts()["readings"] == 4
    letters = store.dead_letters()
    assert len(letters) == 1 and "ahead of the clock" in letters[0]["reason"]
    assert json.loads(letters[0]["payload"]) == {"time": 1e308, "Torque [Nm]": 40.0}
    assert worker.client.acked == list(range(5))


def test_a_state_frozen_before_this_check_thaws_at_the_next_start(tmp_path):
    """The machines table of a worker without the check holds time 1e308: a restarted worker must not take it."""
    root = tmp_path / "models"
    Registry(root, create=True)
    store = Store(tmp_path / "plant.db")
    frozen = {"line": "line-1", "machine": "press-1", "time": 1e308, "risk": 0.1, "risk_threshold": 0.24,
              "risk_model": "failure@1"}
    store.write_batch([], machines_=[frozen])
    for restart in range(2):
        worker = offline_worker(root, store)
        t = time.time()
        worker.process([(worker.session, OfflineMessage(TOPIC, _reading(t), restart))])
        assert store.fleet()[0]["time"] == pytest.approx(t, abs=1e-3)


def test_failing_readings_after_a_future_stamp_raise_the_alert(binary_model, tmp_path):
    """The field test: risk 0.73 against a threshold of 0.24 stored after a 1e308 stamp, and no alert."""
    root = tmp_path / "models"
    Registry(root, create=True).add("failure", binary_model.folder)
    store = Store(tmp_path / "plant.db")
    table = binary_model.new.drop(columns=["failure"])
    risk = binary_model.model.predict_proba(table)[:, 0]  # as the stream scores it
    threshold = float(binary_model.model.thresholds_[0])
    calm, failing = table[risk < threshold].head(3), table[risk >= threshold].head(1)
    assert len(calm) == 3 and len(failing) == 1
    now = time.time()
    rows = [(now - 4 + k, row) for k, (_, row) in enumerate(calm.iterrows())]
    messages = [json.dumps({"time": t, **row.to_dict()}).encode() for t, row in rows]
    messages.insert(1, json.dumps({"time": 1e308, **calm.iloc[0].to_dict()}).encode())
    messages.append(json.dumps({"time": now, **failing.iloc[0].to_dict()}).encode())
    for _restart in range(2):  # the first worker, then a restarted one with the same readings again
        worker = offline_worker(root, store)
        for mid, payload in enumerate(messages):
            worker.process([(worker.session, OfflineMessage(TOPIC, payload, mid))])
    alerts = store.alerts()
    assert len(alerts) == 1 and alerts[0]["kind"] == "risk" and alerts[0]["time"] == pytest.approx(now, abs=1e-3)
    assert store.fleet()[0]["alerting"]


def test_a_rul_window_frozen_by_a_stored_future_reading_thaws_at_the_next_start(rul_model, tmp_path):
    """Before the check, the 1e308 reading was stored, and a restarted worker started the machine's RUL window
    from the stored history: its newest time 1e308 turned every later cycle away from the window."""
    from conftest import RUL_COLUMNS

    root = tmp_path / "models"
    Registry(root, create=True).add("rul", rul_model.folder)
    store = Store(tmp_path / "plant.db")
    history = rul_model.test
    engine = history[RUL_COLUMNS["unit"]].iloc[0]
    rows = history[history[RUL_COLUMNS["unit"]] == engine]
    columns = [c for c in history.columns if c not in (RUL_COLUMNS["unit"], RUL_COLUMNS["time"])]
    stored = [{"line": "line-1", "machine": f"unit-{engine}", "time": float(row[RUL_COLUMNS["time"]]),
               "values": {c: float(row[c]) for c in columns}, "sent_at": None}
              for _, row in rows.iloc[:-1].iterrows()]
    stored.append({**stored[-1], "time": 1e308})
    store.write_batch(stored, machines_=[{"line": "line-1", "machine": f"unit-{engine}", "time": 1e308}])
    last = rows.iloc[-1]
    payload = json.dumps({"time": float(last[RUL_COLUMNS["time"]]), **{c: float(last[c]) for c in columns}}).encode()
    worker = offline_worker(root, store)
    worker.process([(worker.session, OfflineMessage(f"plant/line-1/unit-{engine}/telemetry", payload, 1))])
    state = store.fleet()[0]
    assert state["time"] == float(last[RUL_COLUMNS["time"]]) and state["rul_model"] == "rul@1"
