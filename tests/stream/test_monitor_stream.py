"""Sensor-monitoring models on the line (issue 16): every live reading scored as `predict` scores it in the machine's
whole history, stored with the sensors behind it, and one alert naming the faulty sensor when a machine enters an
anomaly; through a real Mosquitto, and offline for the batchings and restarts a broker would make."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from services import Listener, OfflineMessage, mosquitto, offline_worker, running_worker, wait_for

from shopfloor.alarms import AlarmRule, BadAlarm, score_rule
from shopfloor.registry import Registry
from shopfloor.store import Store
from shopfloor.stream.broker import mqtt_client, parse_url
from shopfloor.stream.payload import encode_message, encode_reading
from shopfloor.stream.scoring import score_readings, scorer_for, sensor_shares
from shopfloor.tasks.monitor.model import MonitorModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks" / "monitor"))
from monitor_processes import pump, with_fault  # noqa: E402

FAULT = 300  # the row where the faulty pump's flow sensor sticks


@pytest.fixture(scope="module")
def monitor(tmp_path_factory) -> SimpleNamespace:
    model = MonitorModel(time="time", max_epochs=8, progress=False).fit(pump(rows=900, seed=0))
    root = tmp_path_factory.mktemp("monitor")
    Registry(root / "models", create=True).add("pump", model.save(root / "pump-monitor"))
    return SimpleNamespace(model=model, registry=root / "models")


@pytest.fixture(autouse=True)
def _no_collections(monkeypatch):
    monkeypatch.setattr("shopfloor.stream.scoring.settle_memory", lambda forgotten=False: None)


def seconds(frame: pd.DataFrame) -> np.ndarray:
    return (frame["time"] - pd.Timestamp(0)).dt.total_seconds().to_numpy()


def readings(frame: pd.DataFrame, sensors: list[str], machine: str) -> list[dict]:
    values = frame[sensors].to_numpy()
    return [{"line": "line-1", "machine": machine, "time": float(t), "sent_at": None,
             "values": {s: None if np.isnan(v) else float(v) for s, v in zip(sensors, row, strict=True)}}
            for t, row in zip(seconds(frame), values, strict=True)]


def messages(frame: pd.DataFrame, sensors: list[str], machine: str, per_message: int = 25) -> list[tuple[str, bytes]]:
    rows = [encode_reading(r["time"], r["values"]) for r in readings(frame, sensors, machine)]
    return [(f"plant/line-1/{machine}/telemetry", encode_message(rows[i:i + per_message], time.time()))
            for i in range(0, len(rows), per_message)]


def gappy(seed: int) -> pd.DataFrame:
    """A drifting pump whose history has what a real line sends: a null, a short gap (filled) and a long one (a
    new start)."""
    frame, _ = with_fault(pump(rows=600, seed=seed, start="2024-03-01"), "drift", start=FAULT)
    frame.loc[50, "flow"] = np.nan
    return frame.drop(index=[*range(100, 103), *range(250, 262)]).reset_index(drop=True)


def test_a_message_of_readings_scores_as_predict_scores_the_whole_history(monitor):
    model, data = monitor.model, gappy(seed=4)
    batch = model.predict(data)
    rows = readings(data, model.sensor_columns_, "pump-1")
    for size in (1, 7, 25, len(rows)):
        scorer = scorer_for("pump", 1, model)
        scored, scores, named = [], [], []
        for start in range(0, len(rows), size):
            got = score_readings(scorer, rows[start:start + size][::-1])  # any order within a batch
            scored += got[0]
            scores.append(got[1])
            named += sensor_shares(model.sensor_columns_, got[2])
        assert [r["time"] for r in scored] == seconds(data).tolist()
        np.testing.assert_allclose(np.concatenate(scores), batch["score"], atol=1e-5)
        first = [text.split(",")[0].split(" ")[0] for text in named]
        agree = np.mean(np.asarray(first) == batch["sensor_1"].to_numpy())
        assert agree > 0.99  # ties of near-equal contributions may order apart in float32
    assert score_readings(scorer, rows[-5:])[0] == []  # a redelivery is not scored again
    assert scorer.windows.nbytes < 10_000 * model.net_.reach() * len(model.sensor_columns_) * 4 / 2  # 2 machines


def test_a_fleet_model_scores_each_machine_at_its_own_level_as_predict_does():
    """Pump B reads three times A's spread, 50 units higher: a fleet model judges each against its own level, and the
    stream must move B's readings as `predict` does before they enter its ring."""
    def fleet(rows: int, seed: int, start: str) -> pd.DataFrame:
        a, b = pump(rows=rows, seed=seed, start=start), pump(rows=rows, seed=seed + 100, start=start)
        b[["flow", "pressure"]] = b[["flow", "pressure"]] * 3.0 + 50.0
        return pd.concat([a.assign(pump="A"), b.assign(pump="B")], ignore_index=True)

    model = MonitorModel(time="time", machine="pump", max_epochs=4, progress=False).fit(fleet(600, 0, "2024-01-01"))
    assert model.machine_levels_ is not None
    data = fleet(300, 5, "2024-02-01")
    batch = model.predict(data)
    scorer = scorer_for("pumps", 1, model)
    for machine in ("A", "B"):
        part = data[data["pump"] == machine]
        rows = readings(part, model.sensor_columns_, machine)
        scores = np.concatenate([score_readings(scorer, rows[i:i + 25])[1] for i in range(0, len(rows), 25)])
        np.testing.assert_allclose(scores, batch.loc[batch["pump"] == machine, "score"], atol=1e-5, err_msg=machine)


def test_a_restarted_worker_continues_each_machine_from_the_store(monitor, tmp_path):
    """Each machine's stored latest readings start its window again: the scores after a restart are the batch's. One
    score is stored per message, at its newest reading; every reading is judged, so the alerts are where the batch
    scores enter the alarm."""
    model, store = monitor.model, Store(f"sqlite:///{tmp_path / 'plant.db'}")
    frames = {"pump-1": pump(rows=420, seed=2, start="2024-03-01"), "pump-2": gappy(seed=4).iloc[:420]}
    sent = {m: messages(f, model.sensor_columns_, m, per_message=10) for m, f in frames.items()}
    batches = [[OfflineMessage(*sent[m][i], mid=2 * i + k) for k, m in enumerate(sent)] for i in range(42)]
    worker = offline_worker(monitor.registry, store)
    for k, batch in enumerate(batches):
        if k == 30:  # 300 readings in: past the short and the long gap by more than the window
            worker = offline_worker(monitor.registry, store)
        worker.process([(worker.session, m) for m in batch])
    for machine, frame in frames.items():
        stored = store.trend("line-1", machine, limit=10_000)
        assert len(stored) == 42 and all(p["model"] == "pump" and p["rul"] is None for p in stored)
        newest = model.predict(frame)["score"].iloc[9::10]
        np.testing.assert_allclose([p["score"] for p in stored], newest, atol=1e-5)
        assert [p["time"] for p in stored] == seconds(frame)[9::10].tolist()
        entries, on = [], False
        for t, score in zip(seconds(frame), model.predict(frame)["score"], strict=True):
            entries += [t] if not on and score_rule().next(on, score) else []
            on = score_rule().next(on, score)
        assert [a["time"] for a in store.alerts(line="line-1", machine=machine)][::-1] == entries
        assert len(entries) == (machine == "pump-2")  # the drifting pump, once
    store.close()


def test_a_score_alarm_is_a_rule_of_monitor_models_only(monitor, tmp_path):
    rule = AlarmRule.parse("score>=0.7", "score<0.5", task="monitor")
    assert (rule.quantity, rule.next(False, 0.7), rule.next(True, 0.6), rule.next(True, 0.4)) == ("score", True, True, False)
    with pytest.raises(BadAlarm, match="sensor-monitoring models"):
        AlarmRule.parse("score>=0.5", task="rul")
    from typer.testing import CliRunner

    from shopfloor.cli import app
    from shopfloor.stream.judging import rule_of
    from shopfloor.stream.scoring import Models

    models, folder = tmp_path / "models", monitor.model.save(tmp_path / "pump-monitor")
    runner = CliRunner()
    added = runner.invoke(app, ["models", "add", "--models", str(models), "pump", str(folder), "--alarm", "score>=0.8",
                                "--clear", "score<0.6"])
    assert added.exit_code == 0, added.output
    refused = runner.invoke(app, ["models", "alarm", "--models", str(models), "pump", "--alarm", "risk>=0.5"])
    assert refused.exit_code == 2 and "use score" in refused.output
    scorer = Models(Registry(models)).scorers["pump"]
    assert (scorer.kind, rule_of(scorer, None).text) == ("score", "score>=0.8 (clears at score<0.6)")
    assert runner.invoke(app, ["models", "alarm", "--models", str(models), "pump", "--default"]).exit_code == 0
    assert rule_of(Models(Registry(models)).scorers["pump"], None).text == "score>=0.5 (clears at score<0.4)"


def test_live_readings_through_mosquitto_are_scored_stored_and_a_fault_alerts_once_naming_its_sensor(monitor, tmp_path):
    model = monitor.model
    sensors = model.sensor_columns_
    healthy = pump(rows=450, seed=2, start="2024-03-01")
    faulty, culprit = with_fault(pump(rows=450, seed=4, start="2024-03-01"), "stuck", start=FAULT)
    sent = [messages(healthy, sensors, "pump-1"), messages(faulty, sensors, "pump-2")]
    interleaved = [m for pair in zip(*sent, strict=True) for m in pair]
    bad = encode_message([encode_reading(1.7e9, {**{s: 1.0 for s in sensors}, "flow": "n/a"})], time.time())
    database = f"sqlite:///{tmp_path / 'plant.db'}"
    store = Store(database)
    with mosquitto() as broker:
        alerts, dead = Listener(broker.url, "plant/+/+/alerts"), Listener(broker.url, "shopfloor/dead-letter")
        with running_worker(broker.url, monitor.registry, database, group=None) as stats:
            client = mqtt_client("monitor-gateway")
            client.connect(*parse_url(broker.url))
            client.loop_start()
            infos = [client.publish(topic, payload, qos=1) for topic, payload in
                     [*interleaved[:6], ("plant/line-1/pump-3/telemetry", bad), *interleaved[6:]]]
            for info in infos:
                info.wait_for_publish(10)
            client.disconnect()
            client.loop_stop()
            assert wait_for(lambda: store.counts()["predictions"] >= 36, 60), store.counts()  # one per message
            assert wait_for(lambda: alerts.messages and dead.messages, 10)
        alerts.close()
        dead.close()
    assert stats["readings"] == 900 and stats["dead_letters"] == 1
    for machine, frame in (("pump-1", healthy), ("pump-2", faulty)):
        stored = store.trend("line-1", machine, limit=10_000)
        np.testing.assert_allclose([p["score"] for p in stored], model.predict(frame)["score"].iloc[24::25], atol=1e-5)
    [alert] = store.alerts()
    assert (alert["machine"], alert["kind"], alert["model"]) == ("pump-2", "score", "pump")
    assert alert["sensors"].startswith(culprit) and f"sensors: {culprit}" in alert["message"]
    assert seconds(faulty)[FAULT] <= alert["time"] <= seconds(faulty)[FAULT + 15]  # found within a few steps
    [(topic, payload)] = alerts.messages
    assert topic == "plant/line-1/pump-2/alerts" and json.loads(payload)["sensors"] == alert["sensors"]
    [letter] = store.dead_letters()
    assert "flow" in letter["reason"] and json.loads(dead.messages[0][1])["topic"].endswith("pump-3/telemetry")
    machine = store.machine("line-1", "pump-2")
    assert machine["score_model"] == "pump@1" and machine["alerting"] and machine["score_sensors"].startswith(culprit)
    store.close()
