"""Fault diagnosis on the line: windows/s through the stream worker when vibration gateways send blocks of samples,
and the model's raw scoring rate, on CWRU.

Protocol (fixed before the run, also written into the JSON):
- model: `DiagnoseModel` with its defaults (front `both`, windows of 2,048 samples at 12 kHz) trained on the first
  70 % of each of CWRU's 10 recordings at load 0 (drive-end channel), seed 0, as benchmarks/cwru.py trains it;
- raw scoring: `score_windows` on 4,096 windows of 2,048 samples, median of 3 (the figure benchmarks/cwru.py
  reports as scoring_windows_per_s);
- the line: `--machines` machines (dealt round-robin to the 10 recordings), each replaying the last 30 % of its
  recording (the part no training window saw) from a different offset, as blocks of `--blocks` samples (1,200:
  0.1 s, not a whole number of windows, so samples wait for the next block; and 12,000: 1 s), one block per message in the
  gateway format of `stream.payload`, encoded before timing; the messages go through `Worker.process` in batches of
  `--batch` messages (what the worker gathers in its 20 ms), which parses them, cuts every machine's windows,
  scores every complete window of the batch in one pass, judges each verdict and stores readings, verdicts,
  alarm states and waiting samples in SQLite in one transaction per batch; no broker (the MQTT hop is measured
  for readings by stream_load.py); one torch thread;
- reported: windows/s (verdicts stored per second of processing), messages/s and samples/s, over `--seconds` of
  processing after a 2 s warm-up, and the share of stored verdicts that name the recording's own class (the
  line's window accuracy, a check that the stream scores what the model learnt);
- `--broker`: also through Mosquitto (the embedded config) with the worker in its own process (`run_worker`, one
  torch thread, SQLite) and a publisher process whose `--machines` gateways each send a block of the first
  `--blocks` size every block's time (real time: 12,000 samples a second per machine) for `--seconds`; reported
  are the windows stored per second against those offered, the latency from a block's `sent_at` to its windows'
  stored verdicts (p50, p99), and the blocks stored of those published.

CWRU states no license: the files are read from ../shared/data/cwru and never copied.

    .venv/bin/python benchmarks/stream_blocks.py [--machines 100] [--blocks 1200,12000] [--batch 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
from _common import check, limit_threads, machine, median_rate, print_table, print_targets, stopwatch, versions, write_json
from cwru import RATE, SHARE, WINDOW, recordings

from shopfloor.tasks.diagnose.model import DiagnoseModel
from shopfloor.tasks.diagnose.windows import time_split

START = 1_795_000_000.0


class Message:
    """An MQTT message as paho hands it to the worker."""

    qos = 1

    def __init__(self, topic: str, payload: bytes, mid: int):
        self.topic, self.payload, self.mid = topic, payload, mid


class NoBroker:
    """The worker's client without a broker: alerts and acknowledgements go nowhere."""

    def publish(self, *_args, **_kwargs) -> None:
        pass

    def ack(self, *_args) -> None:
        pass


class Gateways:
    """The machines' gateways: each machine replays a test part from its own offset; `batch(k, size)` encodes the
    next `size` messages in sending order (every machine's k-th block, then the k+1-th), outside the timed part."""

    def __init__(self, test, channels: list[str], machines: int, block: int):
        self.channels, self.block, self.sent = channels, block, 0
        self.names = [f"bearing-{m:04d}" for m in range(machines)]
        self.truth = {name: test[m % len(test)].label for m, name in enumerate(self.names)}
        self.signals = [np.roll(test[m % len(test)].values, -(m // len(test)) * 997, axis=1) for m in range(machines)]

    def batch(self, size: int) -> list[Message]:
        out = []
        for _ in range(size):
            m, k = self.sent % len(self.names), self.sent // len(self.names)
            signal = self.signals[m]
            at = np.arange(k * self.block, (k + 1) * self.block) % signal.shape[1]  # the test part, looped
            part = signal[:, at]
            body = {"time": START + k * self.block / RATE, "rate": RATE, "sent_at": time.time(),
                    "channels": {c: part[j].tolist() for j, c in enumerate(self.channels)}}
            out.append(Message(f"plant/line-1/{self.names[m]}/telemetry", orjson.dumps(body), self.sent))
            self.sent += 1
        return out


def through_worker(model_folder: Path, work: Path, gateways: Gateways, batch: int, seconds: float) -> dict:
    """Feed the gateways' messages to a worker in batches for `seconds` after a 2 s warm-up; windows, messages and
    seconds of processing counted."""
    from shopfloor.registry import Registry
    from shopfloor.store import Store
    from shopfloor.stream.scoring import Models
    from shopfloor.stream.worker import Worker

    registry = Registry(work / "models", create=True)
    registry.add("bearing", model_folder)
    store = Store(f"sqlite:///{work / 'plant.db'}")
    worker = Worker("mqtt://127.0.0.1:1", "plant/+/+/telemetry", store, Models(registry), progress=None)
    worker.client = NoBroker()
    counted = {"messages": 0, "windows": 0, "seconds": 0.0}
    warm_up = 0.0
    while counted["seconds"] < seconds:
        messages = gateways.batch(batch)
        before = worker.stats.predictions
        with stopwatch() as elapsed:
            worker.process([(worker.session, m) for m in messages])
        if warm_up < 2.0:
            warm_up += elapsed()
            continue
        counted["messages"] += len(messages)
        counted["windows"] += worker.stats.predictions - before
        counted["seconds"] += elapsed()
    store.close()
    return {**counted, "dead_letters": worker.stats.dead_letters, "scoring_errors": worker.stats.scoring_errors,
            "database": str(work / "plant.db")}


def worker_process(url: str, models: str, database: str, stats: str) -> None:
    import torch

    torch.set_num_threads(1)
    from shopfloor.stream.worker import run_worker

    run_worker(url, "plant/+/+/telemetry", Path(models), database, progress=5.0, stats_file=Path(stats))


def publisher_process(url: str, test, channels: list[str], machines: int, block: int, seconds: float, out: str) -> None:
    """Every machine's gateway sends a block each `block / RATE` seconds, in real time, for `seconds`."""
    from shopfloor.stream.broker import mqtt_client, parse_url

    client = mqtt_client(f"gateways-{os.getpid()}")
    client.connect(*parse_url(url))
    client.loop_start()
    gateways = Gateways(test, channels, machines, block)
    began, sent, behind = time.time(), 0, 0.0
    for k in range(int(seconds * RATE / block)):
        due = began + k * block / RATE
        behind = max(behind, time.time() - due)
        time.sleep(max(0.0, due - time.time()))
        for message in gateways.batch(machines):
            info = client.publish(message.topic, message.payload, qos=1)
            sent += 1
        info.wait_for_publish(30)  # at most one tick of blocks in flight
    client.loop_stop()
    client.disconnect()
    Path(out).write_text(json.dumps({"messages": sent, "seconds": time.time() - began, "most_behind_s": behind}))


def through_broker(model_folder: Path, work: Path, test, channels: list[str], machines: int, block: int,
                   seconds: float) -> dict:
    """Mosquitto, a worker process and a publisher process of real-time gateways (`--broker`): the windows stored
    per second and the latency from a block's sending to its windows' stored verdicts."""
    import multiprocessing as mp

    from shopfloor.registry import Registry
    from shopfloor.stream.broker import start_broker

    registry = Registry(work / "models", create=True)
    registry.add("bearing", model_folder)
    database = work / "plant.db"
    broker = start_broker(kind="mosquitto")
    ctx = mp.get_context("spawn")
    worker = ctx.Process(target=worker_process, args=(broker.url, str(registry.root), f"sqlite:///{database}",
                                                      str(work / "worker.json")))
    worker.start()
    time.sleep(8)  # model load and subscription
    publisher = ctx.Process(target=publisher_process, args=(broker.url, test, channels, machines, block, seconds,
                                                            str(work / "publisher.json")))
    publisher.start()
    publisher.join(seconds * 4 + 120)
    sent = json.loads((work / "publisher.json").read_text())
    deadline, stored = time.time() + 120, -1
    while time.time() < deadline:  # until every block is stored
        time.sleep(2)
        with sqlite3.connect(database) as db:
            count = db.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
        if count >= sent["messages"] or count == stored:
            break
        stored = count
    os.kill(worker.pid, signal.SIGTERM)
    worker.join(60)
    broker.close()
    with sqlite3.connect(database) as db:
        first, last, windows = db.execute("SELECT MIN(stored_at), MAX(stored_at), COUNT(*) FROM predictions").fetchone()
        latency = np.array([r[0] for r in db.execute("SELECT (stored_at - sent_at) * 1000 FROM predictions")])
        blocks = db.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
    return {"published": sent, "blocks_stored": blocks, "windows_stored": windows,
            "windows_per_s": windows / max(last - first, 1e-9), "offered_windows_per_s": machines * RATE / WINDOW,
            "latency_p50_ms": float(np.percentile(latency, 50)), "latency_p99_ms": float(np.percentile(latency, 99)),
            "latency_max_ms": float(latency.max())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--blocks", default="1200,12000", help="samples per message, one line run each (0.1 s, 1 s)")
    parser.add_argument("--batch", type=int, default=100, help="messages per worker batch")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--broker", action="store_true", help="also through Mosquitto: real-time gateways, a worker process")
    args = parser.parse_args()
    limit_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "cwru").mkdir()
        train, test = time_split(recordings(work / "cwru"), SHARE)
        with stopwatch() as trained:
            model = DiagnoseModel(window=WINDOW, seed=0, progress=False).fit(train)
        print(f"model: {model.front}, {len(model.classes_)} classes, channels {model.channels_}, trained in {trained():.0f} s",
              flush=True)
        windows = np.concatenate([np.stack([r.values[:, s:s + WINDOW] for s in range(0, r.samples - WINDOW, WINDOW)])
                                  for r in test])[:4096]
        raw = median_rate(lambda: model.score_windows(windows), len(windows))
        folder = model.save(work / "bearing-model")
        runs = {}
        for block in map(int, args.blocks.split(",")):
            gateways = Gateways(test, list(model.channels_), args.machines, block)
            (work / str(block)).mkdir()
            line = through_worker(folder, work / str(block), gateways, args.batch, args.seconds)
            with sqlite3.connect(line.pop("database")) as db:
                stored = db.execute("SELECT machine, verdict FROM predictions").fetchall()
            runs[f"blocks_of_{block}"] = {**line, "windows_per_s": line["windows"] / line["seconds"],
                           "messages_per_s": line["messages"] / line["seconds"],
                           "samples_per_s": line["messages"] * block / line["seconds"], "stored_verdicts": len(stored),
                           "stored_verdicts_right": float(np.mean([gateways.truth[m] == v for m, v in stored]))}
        if args.broker:
            block = int(args.blocks.split(",")[0])
            (work / "broker").mkdir()
            broker_run = through_broker(folder, work / "broker", test, list(model.channels_), args.machines, block,
                                        args.seconds)
            runs[f"broker_blocks_of_{block}"] = broker_run
    result = {"protocol": __doc__.split("Protocol")[1].split("CWRU states")[0].strip(),
              "machines": args.machines, "batch_messages": args.batch, "window": WINDOW, "train_seconds": trained(),
              "raw_scoring_windows_per_s": raw, "line": runs, "threads": 1,
              "load_average_at_end": os.getloadavg(), "machine": machine(), "versions": versions(("shopfloor", "torch", "numpy"))}
    rows = [["raw scoring (windows of 2,048 /s)", f"{raw:,.0f}"]]
    for name, r in runs.items():
        block = name.rsplit("_", 1)[1]
        if name.startswith("broker"):
            rows += [[f"through Mosquitto, {block}-sample blocks in real time: windows/s (offered)",
                      f"{r['windows_per_s']:,.0f} ({r['offered_windows_per_s']:,.0f})"],
                     ["latency p50 / p99, block sent -> verdict stored (ms)",
                      f"{r['latency_p50_ms']:,.0f} / {r['latency_p99_ms']:,.0f}"],
                     ["blocks stored of published", f"{r['blocks_stored']:,} of {r['published']['messages']:,}"]]
            continue
        rows += [[f"blocks of {block}: windows/s through the worker", f"{r['windows_per_s']:,.0f}"],
                 [f"blocks of {block}: messages/s, samples/s", f"{r['messages_per_s']:,.0f}, {r['samples_per_s']:,.0f}"],
                 [f"blocks of {block}: verdicts naming the machine's class",
                  f"{r['stored_verdicts_right']:.3f} of {r['stored_verdicts']:,}"]]
    print_table(f"diagnose on the line: {args.machines} machines, batches of {args.batch} messages", ["measure", "value"], rows)
    targets = [check("scoring windows of 2,048 samples per s, one thread", raw, ">= 2,000", raw >= 2_000)]
    print_targets(targets)
    write_json("stream_blocks", {**result, "targets": targets}, args.out)


if __name__ == "__main__":
    main()
