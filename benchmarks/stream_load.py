"""Stream load: readings/s through Mosquitto, latency from reading to stored prediction, readings lost across a
broker restart, and the worker's peak RSS with 10,000 machines' windows.

    .venv/bin/python benchmarks/stream_load.py [--rate 20000] [--seconds 20] [--machines 10000]
                                               [--readings-per-message 25] [--shared] [--live rul|monitor|both]

Mosquitto (the embedded config: persistence on, no queue caps) on a free port; the stream worker in its own
process (one torch thread, SQLite, the demo's C-MAPSS RUL model live: every message gets a RUL estimate
with its interval); a publisher process replaying the C-MAPSS FD001 test engines as `--machines` machines,
`--readings-per-message` consecutive cycles of one machine per message, at `--rate` readings/s. All three
share the machine's 2 cores.

With `--live monitor` (or `both`), a sensor-monitoring model is live instead of (or beside) the RUL model:
trained here on the C-MAPSS FD001 training engines' columns (the ones the replay sends; a minute or so), it
scores every reading after its machine's latest steps and stores a score with the sensors behind it per reading
(issue 16: `results/stream_load_monitor*.json`).

With `--workers W`, W worker processes each subscribe to their own lines (the machines are dealt to W lines),
as a plant splits its lines among workers.

1. steady: `--warm-up` + `--seconds` of publishing (lines steady-1..W); the figures cover the readings sent after
   the warm-up. Sustained rate = readings stored / the span over which they were received; latency =
   stored_at - sent_at of every prediction (a message's readings share its sent_at, and its prediction is
   committed with them), p50/p99; the workers' peak RSS once all machines are seen.
2. restart: `--seconds` more on lines restart-1..W, the broker stopped (SIGTERM: it saves its state) and started again
   half-way. Lost = readings published (acknowledged by the broker or not) - distinct (line, machine, time)
   stored.
Targets (issue 6): >= 20,000 readings/s on 2 cores, p99 <= 100 ms, 0 lost, <= 1 GiB RSS.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import check, machine, print_table, print_targets, write_json

ROOT = Path(__file__).resolve().parents[1]
FD001 = ROOT / "src/shopfloor/data/files/test_FD001.txt.gz"


def worker_process(url: str, topics: list[str], models: str, database: str, stats: str, group: str | None,
                   batch_ms: float) -> None:
    import torch

    torch.set_num_threads(1)
    from shopfloor.stream.worker import run_worker

    run_worker(url, topics, Path(models), database, group=group, batch_ms=batch_ms, progress=5.0, stats_file=Path(stats))


def publisher_process(url: str, line: list[str], rate: float, readings: int, machines: int, per_message: int, out: str) -> None:
    from shopfloor.stream.replay import replay

    result = replay(FD001, url, rate=rate, line=line, machines=machines, readings_per_message=per_message, loop=True,
                    limit=readings, progress=5.0)
    Path(out).write_text(json.dumps(result))


def monitor_model(work: Path) -> Path:
    """A monitor model of the FD001 training engines' settings and sensors (those the replay sends), a few epochs."""
    from shopfloor.data.runs import read_runs
    from shopfloor.tasks.monitor.model import MonitorModel

    runs = read_runs(ROOT / "src/shopfloor/data/files/train_FD001.txt.gz")
    frame = runs.frame[[runs.unit, runs.time, *runs.settings, *runs.sensors]]
    started = time.perf_counter()
    model = MonitorModel(time=runs.time, machine=runs.unit, max_epochs=6, progress=False).fit(frame)
    print(f"monitor model: {len(model.sensor_columns_)} sensors, reach {model.net_.reach()} steps, trained in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return model.save(work / "monitor-model")


def models_folder(work: Path, live: str = "rul") -> Path:
    from shopfloor.registry import Registry

    registry = Registry(work / "models", create=True)
    if live in ("monitor", "both"):
        registry.add("monitor", monitor_model(work))
    if live == "monitor":
        return registry.root
    demo = ROOT / "demo-output" / "cmapss-model"
    if demo.is_dir():
        registry.add("rul", demo)
    else:  # no demo output: a small model trained here (about a minute)
        from shopfloor.tasks.rul.model import RULModel

        model = RULModel(members=2, max_epochs=5, progress=False).fit(ROOT / "src/shopfloor/data/files/train_FD001.txt.gz")
        registry.add("rul", model.save(work / "rul-model"))
    return registry.root


def peak_rss_gib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def stored(database: Path, phase: str) -> int:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT COUNT(*) FROM readings WHERE line LIKE ?", (f"{phase}-%",)).fetchone()[0]


def wait_stored(database: Path, phase: str, expected: int, timeout: float = 180) -> int:
    deadline, count = time.time() + timeout, 0
    while time.time() < deadline:
        count = stored(database, phase)
        if count >= expected:
            break
        time.sleep(0.5)
    return count


def publish(ctx, url: str, phase: str, args, work: Path, seconds: float) -> tuple:
    lines = [f"{phase}-{k}" for k in range(1, args.workers + 1)]
    process = ctx.Process(target=publisher_process, args=(url, lines, args.rate, int(args.rate * seconds),
                                                          args.machines, args.readings_per_message,
                                                          str(work / f"publisher-{phase}.json")))
    process.start()
    return process, work / f"publisher-{phase}.json"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=20_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--machines", type=int, default=10_000)
    parser.add_argument("--readings-per-message", type=int, default=25)
    parser.add_argument("--batch-ms", type=float, default=20, help="the worker's batching interval")
    parser.add_argument("--warm-up", type=float, default=5, help="seconds of the steady phase left out of the figures")
    parser.add_argument("--workers", type=int, default=1, help="worker processes, each with its own lines")
    parser.add_argument("--out", type=Path, help="write the JSON here instead of results/stream_load*.json")
    parser.add_argument("--shared", action="store_true", help="subscribe with $share/ (Mosquitto 2.0.11 loses messages)")
    parser.add_argument("--live", choices=("rul", "monitor", "both"), default="rul",
                        help="the live models: the demo's RUL model, a monitor model trained here, or both")
    args = parser.parse_args()
    from shopfloor.stream.broker import start_broker

    work = Path(tempfile.mkdtemp(prefix="stream-load-"))
    models = models_folder(work, args.live)
    database = work / "plant.db"
    broker = start_broker(kind="mosquitto")
    ctx = mp.get_context("spawn")
    workers = []
    for k in range(1, args.workers + 1):
        topics = [f"plant/{phase}-{k}/+/telemetry" for phase in ("steady", "restart")]
        workers.append(ctx.Process(target=worker_process, args=(broker.url, topics, str(models), f"sqlite:///{database}",
                                                                str(work / f"worker-{k}.json"),
                                                                "shopfloor" if args.shared else None, args.batch_ms)))
        workers[-1].start()
    time.sleep(8)  # model load and subscription

    # 1. steady
    publisher, out = publish(ctx, broker.url, "steady", args, work, args.warm_up + args.seconds)
    publisher.join(args.seconds * 4 + 120)
    steady = json.loads(out.read_text())
    wait_stored(database, "steady", steady["readings"])
    rss = max(peak_rss_gib(worker.pid) for worker in workers)
    with sqlite3.connect(database) as db:
        # measured after the warm-up: the first seconds hold the model's first passes and the 10,000 machines'
        # first readings (their windows being allocated), which a running line has long behind it
        begin = db.execute("SELECT MIN(sent_at) FROM readings WHERE line LIKE 'steady-%'").fetchone()[0] + args.warm_up
        first, last, count = db.execute("SELECT MIN(received_at), MAX(received_at), COUNT(*) FROM readings "
                                        "WHERE line LIKE 'steady-%' AND sent_at >= ?", (begin,)).fetchone()
        latency = np.array([row[0] for row in db.execute("SELECT (stored_at - sent_at) * 1000 FROM predictions "
                                                         "WHERE line LIKE 'steady-%' AND sent_at >= ?", (begin,))])
    sustained = count / max(last - first, 1e-9)

    # 2. a broker restart half-way
    publisher, out = publish(ctx, broker.url, "restart", args, work, args.seconds)
    time.sleep(args.seconds / 2)
    broker.restart(pause=0.5)
    publisher.join(args.seconds * 4 + 120)
    restart = json.loads(out.read_text())
    kept = wait_stored(database, "restart", restart["readings"])
    for worker in workers:
        os.kill(worker.pid, signal.SIGTERM)
        worker.join(60)
    broker.close()
    stats = [json.loads((work / f"worker-{k}.json").read_text()) for k in range(1, args.workers + 1)]

    p50, p99 = (float(np.percentile(latency, q)) for q in (50, 99))
    result = {
        "rate_asked": args.rate, "machines": args.machines, "readings_per_message": args.readings_per_message,
        "workers": args.workers, "batch_ms": args.batch_ms, "warm_up_s": args.warm_up, "seconds": args.seconds,
        "shared_subscription": args.shared, "live": args.live,
        "steady": {"published": steady["readings"], "publisher_readings_per_s": steady["readings_per_s"],
                   "stored": count, "sustained_readings_per_s": sustained, "latency_p50_ms": p50,
                   "latency_p99_ms": p99, "latency_max_ms": float(latency.max()), "predictions": len(latency)},
        "restart": {"published": restart["readings"], "stored": kept, "lost": restart["readings"] - kept},
        "worker_peak_rss_gib": rss,
        "workers_counts": [{k: one[k] for k in ("messages", "readings", "predictions", "batches", "dead_letters")}
                           for one in stats],
        "machine": machine(),
    }
    print_table(f"stream: {args.machines:,} machines, {args.readings_per_message} readings per message, "
                f"{args.workers} worker(s), {args.live} live, asked {args.rate:,.0f}/s", ["measure", "value"],
                [["readings/s sustained (steady)", f"{sustained:,.0f}"], ["latency p50 / p99 (ms)", f"{p50:.0f} / {p99:.0f}"],
                 ["lost across the broker restart", f"{restart['readings'] - kept:,} of {restart['readings']:,}"],
                 ["worker peak RSS (GiB)", f"{rss:.2f}"]])
    targets = [check("readings/s sustained on 2 cores", sustained, ">= 20,000", sustained >= 0.99 * 20_000),
               check("p99 reading -> stored prediction (ms)", p99, "<= 100", p99 <= 100),
               check("readings lost across a broker restart", restart["readings"] - kept, "0", restart["readings"] == kept),
               check(f"worker peak RSS with {args.machines // args.workers:,} machines (GiB)", rss, "<= 1", rss <= 1)]
    print_targets(targets)
    name = "stream_load" + ("" if args.live == "rul" else f"_{args.live}") \
        + ("" if args.workers == 1 else f"_{args.workers}_workers")
    write_json(name, {**result, "targets": targets}, args.out)


if __name__ == "__main__":
    main()
