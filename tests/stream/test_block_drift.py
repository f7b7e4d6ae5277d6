"""The line's drift watch for fault-diagnosis models (issue 19, item 3): the windows the worker cuts from a vibration
gateway's blocks feed the model's rolling profile (each channel's RMS, kurtosis and crest factor per window). A
gain of x1.5 on one channel is stored as drift of that channel's RMS and raises one alert, on MQTT and in the
store's alerts; an unchanged stream of the same machines raises none."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import orjson
import pytest
import sqlalchemy as sa
from services import OfflineMessage, offline_worker

from shopfloor.registry import Registry
from shopfloor.store import Store
from shopfloor.store_schema import drift_verdicts
from shopfloor.tasks.diagnose.model import DiagnoseModel
from shopfloor.tasks.diagnose.signals import Recording
from shopfloor.watch.line import DRIFT_TOPIC

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks" / "diagnose"))
from bearings import DEFECTS, RATE, vibration  # noqa: E402

WINDOW = 1024
CLASSES = ("normal", "inner", "outer")
START = 1_795_000_000.0
BLOCK = 3_000  # samples per message: a quarter of a second


def machine_signal(fault: str, seconds: float, seed: int) -> np.ndarray:
    """[2, samples]: drive-end vibration and a fan-end sensor that hears half of it, in its own noise."""
    drive = vibration(DEFECTS.get(fault), seconds, seed=seed)
    fan = 0.5 * drive + 0.05 * np.random.default_rng(seed + 1).normal(size=len(drive)).astype(np.float32)
    return np.stack([drive, fan]).astype(np.float32)


@pytest.fixture(scope="module")
def bearing(tmp_path_factory) -> SimpleNamespace:
    recordings = [Recording(f"{c}-{i}", machine_signal(c, 1.5, 100 * k + 10 * i), RATE, ["DE", "FE"], label=c)
                  for k, c in enumerate(CLASSES) for i in range(2)]
    model = DiagnoseModel(window=WINDOW, front="spectrum", max_epochs=4, progress=False).fit(recordings)
    root = tmp_path_factory.mktemp("block-drift")
    Registry(root / "models", create=True).add("bearing", model.save(root / "bearing-model"))
    return SimpleNamespace(model=model, registry=root / "models")


def stream(worker, seconds: float, seed: int, gain: float = 1.0) -> None:
    """One machine per class sends `seconds` of samples in blocks, the three machines' blocks in one batch; the
    drive-end channel multiplied by `gain`."""
    signals = {c: machine_signal(c, seconds, seed + 10 * k) for k, c in enumerate(CLASSES)}
    for first in range(0, signals["normal"].shape[1], BLOCK):
        messages = []
        for c, signal in signals.items():
            part = signal[:, first:first + BLOCK]
            body = {"time": START + first / RATE, "rate": RATE, "sent_at": 1.0,
                    "channels": {"DE": (gain * part[0]).tolist(), "FE": part[1].tolist()}}
            messages.append(OfflineMessage(f"plant/line-1/{c}-machine/telemetry", orjson.dumps(body), mid=first))
        worker.process([(worker.session, m) for m in messages])


def watched_worker(bearing, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'plant.db'}")
    worker = offline_worker(bearing.registry, store)
    assert worker.watch is not None, "the drift watch is on by default"
    worker.watch.every, worker.watch.seconds = 100, 0.0  # compare every 100 windows (the line: 500 and 5 s)
    return worker, store


def stored(store) -> tuple[list[dict], list[dict]]:
    with store.engine.connect() as db:
        verdicts = [dict(r) for r in db.execute(sa.select(drift_verdicts)).mappings().all()]
    return verdicts, store.alerts(50, kind="drift")


def test_a_gain_of_one_and_a_half_on_one_channel_drifts_its_rms_and_alerts_once(bearing, tmp_path):
    worker, store = watched_worker(bearing, tmp_path)
    stream(worker, 7.0, seed=500, gain=1.5)  # 82 windows a machine: two comparisons
    verdicts, alerts = stored(store)
    assert {r["model"] for r in verdicts} == {"bearing"} and len({r["at"] for r in verdicts}) == 2
    drifting = {r["input"] for r in verdicts if r["verdict"] == "drift" and r["kind"] == "input"}
    assert drifting == {"DE rms"}, _said(verdicts)
    assert {r["input"] for r in verdicts if r["kind"] == "output"} == {"confidence", "novelty"}  # fed, not p_<class>
    published = [payload for topic, payload in worker.client.published if topic == DRIFT_TOPIC]
    assert len(published) == 1 and orjson.loads(published[0])["input"] == "DE rms"
    assert len(alerts) == 1 and "'DE rms'" in alerts[0]["message"] and alerts[0]["model"] == "bearing"
    assert " windows)" in alerts[0]["message"]  # the ring holds windows, not readings
    store.close()


def test_an_unchanged_stream_raises_no_drift(bearing, tmp_path):
    worker, store = watched_worker(bearing, tmp_path)
    stream(worker, 7.0, seed=700)
    verdicts, alerts = stored(store)
    assert len({r["at"] for r in verdicts}) == 2, "the windows were not compared"
    # outputs too: this small network's confidence is 1 - 1e-8 on every held-out window (sd 2e-8); a difference of
    # 1e-7 is no drift (`compare.output_scale`), though it is several such sds
    assert [(r["kind"], r["input"]) for r in verdicts if r["verdict"] == "drift"] == [], _said(verdicts)
    assert alerts == [] and [t for t, _ in worker.client.published if t == DRIFT_TOPIC] == []
    store.close()


def test_an_unwatched_model_keeps_no_windows(bearing, tmp_path, monkeypatch):
    """With the watch off the worker holds no batch's windows beyond scoring them."""
    monkeypatch.setenv("SHOPFLOOR_DRIFT_WATCH", "off")
    store = Store(f"sqlite:///{tmp_path / 'plant.db'}")
    worker = offline_worker(bearing.registry, store)
    assert worker.watch is None
    stream(worker, 0.5, seed=900)
    (scorer,) = worker.models.block_scorers()
    assert scorer.windows.scored is None and not scorer.windows.watched
    store.close()


def _said(verdicts: list[dict]) -> list[tuple]:
    return [(r["kind"], r["input"], r["verdict"], r["psi"], r["wasserstein_sd"], r["readings"]) for r in verdicts]
