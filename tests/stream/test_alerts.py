"""Alerts: every reading judged in time order through its model's alarm rule, whatever the batching or restarts."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import RUL_COLUMNS, failure_table
from services import OfflineMessage, offline_worker

from shopfloor.alarms import AlarmRule, risk_rule
from shopfloor.registry import Registry
from shopfloor.store import Store
from shopfloor.stream.payload import encode_message, encode_reading


@pytest.fixture(scope="module")
def models(rul_model, binary_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    registry = Registry(root, create=True)
    registry.add("failure", binary_model.folder)
    registry.add("rul", rul_model.folder)
    return root


@pytest.fixture(autouse=True)
def _no_collections(monkeypatch):
    """Each worker here is a restart: skip the full garbage collection a long-running one makes after loading models
    (a second each, most of these tests' time otherwise)."""
    monkeypatch.setattr("shopfloor.stream.scoring.settle_memory", lambda forgotten=False: None)


def _messages(rul_model) -> list[OfflineMessage]:
    """One reading per message, each machine's in time order: failure-model snapshots on line-2 and three engines'
    whole histories on line-1, interleaved as a line sends them."""
    now = time.time()
    table = failure_table(60, seed=11).drop(columns=["failure", "UDI", "Product ID"])
    messages = []
    for i, row in enumerate(table.to_dict(orient="records")):
        reading = encode_reading(float(1 + i // 3), row)
        messages.append(OfflineMessage(f"plant/line-2/mill-{i % 3}/telemetry", encode_message([reading], now), 0))
    history = rul_model.test
    columns = [c for c in history.columns if c not in (RUL_COLUMNS["unit"], RUL_COLUMNS["time"])]
    engines = sorted(history[RUL_COLUMNS["unit"]].unique())[:2]
    for engine in engines:
        rows = history[history[RUL_COLUMNS["unit"]] == engine]
        for _, row in rows.iterrows():
            reading = encode_reading(float(row[RUL_COLUMNS["time"]]), {c: float(row[c]) for c in columns})
            messages.append(OfflineMessage(f"plant/line-1/unit-{engine}/telemetry", encode_message([reading], now), 0))
    rng = np.random.default_rng(0)
    order = np.argsort(rng.random(len(messages)), kind="stable")
    by_topic: dict[str, list] = {}
    for message in messages:
        by_topic.setdefault(message.topic, []).append(message)
    interleaved = [by_topic[messages[i].topic].pop(0) for i in order]  # a random merge that keeps each machine's order
    for mid, message in enumerate(interleaved):
        message.mid = mid
    return interleaved


def _splits(count: int, how: str, seed: int = 0) -> list[slice]:
    if how == "one per batch":
        return [slice(i, i + 1) for i in range(count)]
    if how == "all in one":
        return [slice(0, count)]
    cuts = np.sort(np.random.default_rng(seed).choice(np.arange(1, count), size=count // 7, replace=False))
    edges = [0, *cuts.tolist(), count]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _alerts(store: Store) -> list[tuple]:
    return sorted((a["line"], a["machine"], a["model"], a["kind"], a["time"]) for a in store.alerts(limit=10_000))


class Killed(BaseException):
    """The worker process dies while it writes a batch: nothing of that batch is committed."""


def _deliver(models, store: Store, messages: list, batches: list[slice], restart_at: int | None = None,
             kill_at: int | None = None) -> None:
    """Feed the batches to a worker; a new worker takes over at batch `restart_at` (a clean restart), or after the
    worker dies writing batch `kill_at` (the broker delivers that batch again to the next one)."""
    worker = offline_worker(models, store)
    for k, part in enumerate(batches):
        if k == restart_at:
            worker = offline_worker(models, store)
        batch = [(worker.session, m) for m in messages[part]]
        if k == kill_at:
            real = store.write_batch

            def dies(*_args):
                raise Killed

            store.write_batch = dies
            with pytest.raises(Killed):
                worker.process(batch)
            store.write_batch = real
            worker = offline_worker(models, store)
        worker.process(batch)


def _expected(store: Store, rules: dict) -> list[tuple]:
    """The entries into alarm that the stored per-reading predictions make under each model's rule."""
    entries = []
    for m in store.fleet():
        on: dict[str, bool] = {}
        for p in store.trend(m["line"], m["machine"], limit=10_000):
            rule = rules[p["model"]]
            if rule is None:
                continue
            was = on.get(p["model"], False)
            on[p["model"]] = rule.next(was, p[rule.quantity])
            if on[p["model"]] and not was:
                entries.append((m["line"], m["machine"], p["model"], "rul" if p["risk"] is None else "risk", p["time"]))
    return sorted(entries)


@pytest.mark.parametrize("own_rules", [False, True], ids=["default rules", "rules with hysteresis"])
def test_the_same_readings_give_the_same_alerts_however_batched_and_across_restarts(models, rul_model, binary_model,
                                                                                     own_rules, tmp_path):
    registry = Registry(models)
    threshold = float(binary_model.model.thresholds_[0])
    rules = {"failure": risk_rule(threshold), "rul": None}
    if own_rules:
        rules = {"failure": registry.set_alarm("failure", f"risk>={threshold:.3f}", f"risk<{threshold / 2:.3f}"),
                 "rul": registry.set_alarm("rul", "rul<=45", "rul>=50")}
    try:
        messages = _messages(rul_model)
        runs = {}
        for name, batches, restart, kill in [
                ("one per batch", _splits(len(messages), "one per batch"), None, None),
                ("all in one", _splits(len(messages), "all in one"), None, None),
                ("random splits", _splits(len(messages), "random"), None, None),
                ("other random splits, restart", _splits(len(messages), "random", seed=1), 9, None),
                ("random splits, killed mid-batch", _splits(len(messages), "random", seed=2), None, 7)]:
            store = Store(f"sqlite:///{tmp_path / (name + '.db')}")
            _deliver(models, store, messages, batches, restart, kill)
            _deliver(models, store, messages, _splits(len(messages), "random", seed=3))  # everything once more
            runs[name] = _alerts(store)
            if name == "one per batch":
                expected = _expected(store, rules)
            store.close()
    finally:
        for name in ("failure", "rul"):
            registry.set_alarm(name, None)
    assert len(expected) >= 5, "the data should enter the alarm several times"
    assert not own_rules or any(e[3] == "rul" for e in expected), "the engines should reach the RUL alarm"
    for name, alerts in runs.items():
        assert alerts == expected, name


def test_a_rule_enters_at_one_level_and_leaves_at_another():
    rule = AlarmRule.parse("rul<=20", "rul>=30")
    states, on = [], False
    for value in (40, 25, 20, 25, 29, 30, 25, 19, 35):
        on = rule.next(on, value)
        states.append(on)
    assert states == [False, False, True, True, True, False, False, True, False]
    assert AlarmRule.parse("risk>=0.7").clear.text == "risk<0.7"


def test_the_alert_payload_names_the_rule_and_a_rule_changed_while_running_applies(models, rul_model, tmp_path):
    import json

    registry = Registry(models)
    store = Store(f"sqlite:///{tmp_path / 'plant.db'}")
    messages = [m for m in _messages(rul_model) if "/line-1/" in m.topic]
    worker = offline_worker(models, store)
    try:
        worker.process([(worker.session, m) for m in messages[:20]])
        assert worker.client.published == []  # no rule of its own and no --rul-alert: no RUL alarm
        registry.set_alarm("rul", "rul<=1000", "rul>=2000")  # every estimate is an alarm
        worker.models.refresh(force=True)
        worker.process([(worker.session, m) for m in messages[20:]])
    finally:
        registry.set_alarm("rul", None)
    alerts = [json.loads(payload) for topic, payload in worker.client.published if topic.endswith("/alerts")]
    assert len(alerts) == 2 and {a["machine"] for a in alerts} == {m["machine"] for m in store.fleet()}
    first = alerts[0]
    assert (first["rule"], first["clear"], first["threshold"]) == ("rul<=1000", "rul>=2000", 1000.0)
    assert first["value"] > 0 and "meets the alarm rule rul<=1000" in first["message"]
    states = {m["machine"]: json.loads(m["alarms"])["rul"] for m in store.fleet()}
    assert all(s["on"] and s["rule"] == "rul<=1000" and s["value"] > 0 for s in states.values())
    store.close()


def test_a_batch_the_database_refuses_leaves_the_alarm_states_as_stored(models, tmp_path):
    """Its readings become dead letters, so the alarm states it moved go back: sent again, they alert as the first time."""
    import sqlalchemy as sa

    registry = Registry(models)
    store = Store(f"sqlite:///{tmp_path / 'plant.db'}")
    real = store.write_batch
    refuse = {"once": True}

    def write_batch(readings, *rest):
        if refuse.pop("once", False):
            raise sa.exc.DataError("INSERT ...", {}, Exception("value too long"))
        return real(readings, *rest)

    store.write_batch = write_batch
    message = b'{"time": 1, "Torque [Nm]": 40.0, "Rotational speed [rpm]": 1500, "Type": "L", "Air temperature [K]": 300}'
    registry.set_alarm("failure", "risk>=0")  # every reading is an alarm
    try:
        worker = offline_worker(models, store)
        for mid in (1, 2):
            worker.process([(worker.session, OfflineMessage("plant/line-1/press-1/telemetry", message, mid))])
    finally:
        registry.set_alarm("failure", None)
    assert len(store.dead_letters()) == 1 and [a["machine"] for a in store.alerts()] == ["press-1"]
    store.close()
