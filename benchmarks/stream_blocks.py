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
  line's window accuracy, a check that the stream scores what the model learnt).

CWRU states no license: the files are read from ../shared/data/cwru and never copied.

    .venv/bin/python benchmarks/stream_blocks.py [--machines 100] [--blocks 1200,12000] [--batch 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--blocks", default="1200,12000", help="samples per message, one line run each (0.1 s, 1 s)")
    parser.add_argument("--batch", type=int, default=100, help="messages per worker batch")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--out", type=Path)
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
            runs[block] = {**line, "windows_per_s": line["windows"] / line["seconds"],
                           "messages_per_s": line["messages"] / line["seconds"],
                           "samples_per_s": line["messages"] * block / line["seconds"], "stored_verdicts": len(stored),
                           "stored_verdicts_right": float(np.mean([gateways.truth[m] == v for m, v in stored]))}
    result = {"protocol": __doc__.split("Protocol")[1].split("CWRU states")[0].strip(),
              "machines": args.machines, "batch_messages": args.batch, "window": WINDOW, "train_seconds": trained(),
              "raw_scoring_windows_per_s": raw, "line": {f"blocks_of_{b}": r for b, r in runs.items()}, "threads": 1,
              "load_average_at_end": os.getloadavg(), "machine": machine(), "versions": versions(("shopfloor", "torch", "numpy"))}
    rows = [["raw scoring (windows of 2,048 /s)", f"{raw:,.0f}"]]
    for block, r in runs.items():
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
