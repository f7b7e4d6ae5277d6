"""Fault-diagnosis models on the line (issue 17): a vibration gateway's blocks of samples cut into the model's windows
as they arrive, every window scored as `predict` scores the machine's samples joined into one recording, whatever the
block size, across batches and across a worker restart; one verdict stored per window, an alert after 3 fault windows
in a row; blocks at another rate refused."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import orjson
import pytest
from services import OfflineMessage, offline_worker

from shopfloor.alarms import AlarmRule, BadAlarm, verdict_rule
from shopfloor.registry import Registry
from shopfloor.store import Store
from shopfloor.stream.blocks import score_blocks
from shopfloor.stream.payload import BadMessage, parse
from shopfloor.stream.scoring import scorer_for
from shopfloor.tasks.diagnose.model import DiagnoseModel
from shopfloor.tasks.diagnose.records import normal_class
from shopfloor.tasks.diagnose.signals import Recording

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks" / "diagnose"))
from bearings import DEFECTS, RATE, vibration  # noqa: E402

WINDOW = 512
START = 1_795_000_000.0  # the gateway's clock, epoch seconds


def machine_signal(classes: tuple[str, ...], seconds: float, seed: int) -> np.ndarray:
    """[2, samples]: drive-end and fan-end vibration of a machine that runs through `classes` in turn."""
    parts = [vibration(DEFECTS.get(c), seconds, seed=seed + k) for k, c in enumerate(classes)]
    drive = np.concatenate(parts)
    fan = 0.5 * drive + 0.05 * np.random.default_rng(seed).normal(size=len(drive)).astype(np.float32)
    return np.stack([drive, fan]).astype(np.float32)


@pytest.fixture(scope="module")
def bearing(tmp_path_factory) -> SimpleNamespace:
    recordings = [Recording(f"{c}-{i}", machine_signal((c,), 1.5, 100 * k + 10 * i), RATE, ["DE", "FE"], label=c)
                  for k, c in enumerate(("normal", "inner", "outer")) for i in range(2)]
    model = DiagnoseModel(window=WINDOW, front="spectrum", max_epochs=6, progress=False).fit(recordings)
    root = tmp_path_factory.mktemp("diagnose")
    Registry(root / "models", create=True).add("bearing", model.save(root / "bearing-model"))
    return SimpleNamespace(model=model, registry=root / "models")


def blocks(signal: np.ndarray, size: int, machine: str = "press-1", start: float = START, rate: float = RATE,
           extra: bool = True) -> list[tuple[str, bytes]]:
    """The gateway's messages: `size` samples each, channels in another order than the model's and one it does not
    read (a block may carry more channels than a model takes)."""
    out = []
    for first in range(0, signal.shape[1], size):
        part = signal[:, first:first + size]
        channels = {"FE": part[1].tolist(), **({"temperature": [20.0] * part.shape[1]} if extra else {}),
                    "DE": part[0].tolist()}
        body = {"time": start + first / rate, "rate": rate, "channels": channels, "sent_at": 1.0}
        out.append((f"plant/line-1/{machine}/telemetry", orjson.dumps(body)))
    return out


def expected(model: DiagnoseModel, signal: np.ndarray):
    """What `predict` says of the machine's samples as one recording, and each window's last-sample time."""
    table = model.predict([Recording("press-1", signal, RATE, ["DE", "FE"])])
    return table, START + table["end"].to_numpy() - 1 / RATE


@pytest.mark.parametrize("size", [WINDOW // 3, WINDOW, 5 * WINDOW])
def test_blocks_of_any_size_score_as_predict_scores_the_joined_recording(bearing, size):
    model, signal = bearing.model, machine_signal(("normal", "inner"), 0.7, seed=7)
    table, ends = expected(model, signal)
    scorer = scorer_for("bearing", 1, model)
    assert scorer.kind == "verdict" and scorer.normal == "normal" == normal_class(model)
    got, places = [], []
    sent = blocks(signal, size)
    for k in range(0, len(sent), 2):  # two messages per batch, the newer first: a batch is cut in time order
        readings = [r for topic, payload in sent[k:k + 2][::-1] for r in parse(topic, payload)]
        where, verdicts = score_blocks(scorer, readings)
        places += where
        got.append(verdicts)
    got = [g for g in got if g]
    assert len(places) == len(table) == signal.shape[1] // WINDOW
    np.testing.assert_allclose([p["time"] for p in places], ends, atol=1e-6)
    assert np.concatenate([g["class"] for g in got]).tolist() == table["class"].tolist()
    assert np.concatenate([g["runner_up"] for g in got]).tolist() == table["runner_up"].tolist()
    np.testing.assert_allclose(np.concatenate([g["probability"] for g in got]), table["probability"], atol=1e-5)
    np.testing.assert_allclose(np.concatenate([g["novelty"] for g in got]), table["novelty"], atol=1e-5)
    assert {"normal", "inner"} <= set(table["class"])  # the machine's fault shows: the comparison is not of one class
    assert scorer.windows.nbytes < 64 * 2 * WINDOW * 4 + 64 * 24 + 1  # at most a window of samples per machine slot


def test_a_redelivered_block_is_not_cut_again_and_a_gap_starts_the_machine_afresh(bearing):
    model = bearing.model
    first, second = machine_signal(("normal",), 0.2, seed=3), machine_signal(("inner",), 0.2, seed=4)
    scorer = scorer_for("bearing", 1, model)
    sent = blocks(first, 700)
    for topic, payload in sent:
        score_blocks(scorer, parse(topic, payload))
    assert score_blocks(scorer, parse(*sent[-1]))[0] == []  # the broker delivered it twice
    later = START + 60.0  # a minute later: the samples between were never sent
    where, verdicts = [], []
    for topic, payload in blocks(second, 700, start=later):
        got = score_blocks(scorer, parse(topic, payload))
        where += got[0]
        verdicts += [got[1]] if got[1] else []
    table = model.predict([Recording("after", second, RATE, ["DE", "FE"])])
    np.testing.assert_allclose(np.concatenate([v["probability"] for v in verdicts]), table["probability"], atol=1e-5)
    np.testing.assert_allclose([p["time"] for p in where], later + table["end"].to_numpy() - 1 / RATE, atol=1e-6)


def test_the_worker_stores_a_verdict_per_window_and_alerts_after_three_fault_windows_across_a_restart(bearing, tmp_path):
    """Half the blocks through one worker, the rest through a new one on the same store: the verdicts are `predict`'s
    for the whole recording (the waiting samples were stored), and the one alert comes at the third fault window in a
    row, as the default rule says."""
    model, store = bearing.model, Store(f"sqlite:///{tmp_path / 'plant.db'}")
    signal = machine_signal(("normal", "inner"), 0.7, seed=11)
    table, ends = expected(model, signal)
    sent = blocks(signal, 300)
    worker = offline_worker(bearing.registry, store)
    half = len(sent) // 2
    for k in range(0, half, 3):
        worker.process([(worker.session, OfflineMessage(*m, mid=k + i)) for i, m in enumerate(sent[k:min(k + 3, half)])])
    worker = offline_worker(bearing.registry, store)  # a restart: the machine's waiting samples come from the store
    for k in range(half, len(sent), 3):
        worker.process([(worker.session, OfflineMessage(*m, mid=k + i)) for i, m in enumerate(sent[k:k + 3])])
    stored = [p for p in store.trend("line-1", "press-1", limit=1000) if p["verdict"] is not None]
    assert len(stored) == len(table)
    np.testing.assert_allclose([p["time"] for p in stored], ends, atol=1e-6)
    assert [p["verdict"] for p in stored] == table["class"].tolist()
    np.testing.assert_allclose([p["verdict_probability"] for p in stored], table["probability"], atol=1e-5)
    assert [bool(p["unknown"]) for p in stored] == (table["unknown"] == 1).tolist()
    faulty = ((table["class"] != "normal") | (table["unknown"] == 1)).to_numpy()
    third = next(i for i in range(2, len(faulty)) if faulty[i - 2:i + 1].all())
    alerts = store.alerts(10, machine="press-1")
    assert [(a["kind"], a["time"], a["rule"], a["clear"]) for a in alerts] == [
        ("verdict", pytest.approx(ends[third]), "fault_run>=3", "fault_run<=-3")]
    assert "inner" in alerts[0]["message"] and "fault run" in alerts[0]["message"]
    machine = store.machine("line-1", "press-1")
    assert machine["verdict"] == table["class"].iloc[-1] and machine["alerting"]
    assert machine["verdict_model"] == "bearing@1"
    reading = store.readings("line-1", "press-1", limit=1)[0]
    assert reading["values"]["rate"] == RATE and reading["values"]["samples"] == signal.shape[1] - 300 * (len(sent) - 1)
    assert worker.stats.dead_letters == 0 and worker.stats.scoring_errors == 0


def test_a_block_at_another_rate_is_refused_with_its_reason(bearing, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'plant.db'}")
    worker = offline_worker(bearing.registry, store)
    signal = machine_signal(("normal",), 0.1, seed=5)
    message = blocks(signal, signal.shape[1], rate=48_000)[0]
    worker.process([(worker.session, OfflineMessage(*message, mid=1))])
    assert worker.stats.reasons["rate"] == 1 and worker.stats.predictions == 0
    letter = store.dead_letters(1)[0]
    assert "48000 Hz" in letter["reason"] and "12000 Hz" in letter["reason"] and "bearing" in letter["reason"]
    assert store.readings("line-1", "press-1") == []


@pytest.mark.parametrize("body, words", [
    ({"time": 1, "rate": 12000, "channels": {"DE": [0.1, 0.2], "FE": [0.1]}}, "as many"),
    ({"time": 1, "rate": 12000, "channels": {"DE": [0.1, "x"]}}, "sample 1 of channel 'DE'"),
    ({"time": 1, "channels": {"DE": [0.1]}}, "sample rate"),
    ({"time": 1, "rate": 12000, "channels": {"DE": []}}, "not a list of samples"),
    ({"time": 1, "rate": 12000, "channels": {"DE": [0.1]}, "load": 3}, "not load"),
    ({"rate": 12000, "channels": {"DE": [0.1]}}, "numeric 'time'"),
    ({"time": 1, "rate": 12000, "channels": {"DE": [1e300]}}, "32-bit"),
])
def test_a_bad_block_is_refused_whole_with_a_reason(body, words):
    with pytest.raises(BadMessage, match=words):
        parse("plant/line-1/press-1/telemetry", orjson.dumps(body))


def test_the_fault_run_rule_is_the_default_and_can_be_set_on_a_diagnose_model():
    rule = verdict_rule()
    assert rule.next(False, 2) is False and rule.next(False, 3) is True
    assert rule.next(True, -2) is True and rule.next(True, -3) is False  # a flickering verdict keeps the alarm
    assert AlarmRule.parse("fault_run>=5", "fault_run<=-2", task="diagnose").enter.level == 5
    with pytest.raises(BadAlarm, match="fault"):
        AlarmRule.parse("score>=0.5", task="diagnose")


def test_a_rule_set_with_models_alarm_moves_the_alert(bearing, tmp_path):
    """`shopfloor models alarm bearing --alarm 'fault_run>=6'`: the alert comes at the sixth fault window in a row."""
    registry = Registry(bearing.registry)
    registry.set_alarm("bearing", "fault_run>=6", "fault_run<=-2")
    try:
        store = Store(f"sqlite:///{tmp_path / 'plant.db'}")
        signal = machine_signal(("normal", "inner"), 0.7, seed=11)
        table, ends = expected(bearing.model, signal)
        worker = offline_worker(bearing.registry, store)
        worker.process([(worker.session, OfflineMessage(*m, mid=k)) for k, m in enumerate(blocks(signal, 2000))])
        faulty = ((table["class"] != "normal") | (table["unknown"] == 1)).to_numpy()
        sixth = next(i for i in range(5, len(faulty)) if faulty[i - 5:i + 1].all())
        assert [(a["time"], a["rule"]) for a in store.alerts(10)] == [(pytest.approx(ends[sixth]), "fault_run>=6")]
    finally:
        registry.set_alarm("bearing", None)


def test_the_fault_run_counts_fault_classes_and_unknown_windows_in_a_row():
    from shopfloor.stream.machines import Fleet

    def run(verdicts, normal="normal"):
        fleet, alerts, runs = Fleet(), [], []
        state = fleet.state("line-1", "fan-1")
        for t, (name, unknown) in enumerate(verdicts):
            verdict = {"class": name, "probability": 0.9, "runner_up": "ball", "unknown": unknown}
            alert = fleet.verdict(state, float(t), verdict, normal, "bearing", 1, verdict_rule())
            alerts += [t] if alert else []
            runs.append(state.alarms["bearing"]["run"])
        return runs, alerts, state

    flicker = [("normal", False), ("inner", False), ("outer", False), ("normal", True), ("normal", False),
               ("normal", False), ("inner", False), ("normal", False), ("normal", False), ("normal", False)]
    runs, alerts, state = run(flicker)
    assert runs == [-1, 1, 2, 3, -1, -2, 1, -1, -2, -3]  # an unknown window counts as a fault, whatever its nearest class
    assert alerts == [3] and not state.alerting  # one alert; three normal windows in a row cleared it
    assert state.verdict == "normal" and state.runner_up == "ball" and state.verdict_model == "bearing@1"
    runs, alerts, _ = run([("inner", False)] * 3 + [("outer", True)], normal=None)  # no class is the healthy one
    assert runs == [-1, -2, -3, 1] and alerts == []
    assert run([("inner", False)] * 2)[0] == [1, 2] and run([("inner", False)] * 2)[1] == []
