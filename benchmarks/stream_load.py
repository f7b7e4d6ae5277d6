"""Stream load: readings/s through Mosquitto, p99 reading -> stored prediction, readings lost across a broker
restart, and the worker's peak RSS with 10,000 machines' windows.

    .venv/bin/python benchmarks/stream_load.py [--rate 20000] [--seconds 30] [--machines 10000] [--shared]

Mosquitto (embedded config: persistence on, no queue caps) on a free port; the worker in its own process
(one torch thread, SQLite); a publisher process replaying C-MAPSS FD001 test engines as `--machines`
machines, 10 readings per message, at `--rate` readings/s. Half-way the broker is restarted (SIGTERM,
state saved, start again). Lost = published readings - distinct (line, machine, time) stored.
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

ROOT = Path(__file__).resolve().parents[1]
FD001 = ROOT / "src/shopfloor/data/files/test_FD001.txt.gz"


def worker_process(url: str, models: str, database: str, stats: str, group: str | None) -> None:
    import torch

    torch.set_num_threads(1)
    from shopfloor.stream.worker import run_worker

    run_worker(url, "plant/+/+/telemetry", Path(models), database, group=group, progress=5.0, stats_file=Path(stats))


def publisher_process(url: str, rate: float, readings: int, machines: int, out: str) -> None:
    from shopfloor.stream.replay import replay

    result = replay(FD001, url, rate=rate, machines=machines, readings_per_message=10, loop=True, limit=readings,
                    progress=5.0)
    Path(out).write_text(json.dumps(result))


def models_folder(work: Path) -> Path:
    from shopfloor.registry import Registry

    registry = Registry(work / "models", create=True)
    demo = ROOT / "demo-output" / "cmapss-model"
    if demo.is_dir():
        registry.add("rul", demo)
    else:  # CI has no demo output: a small model trained here (about a minute)
        from shopfloor.tasks.rul import RULModel

        model = RULModel(members=2, max_epochs=5, progress=False).fit(ROOT / "src/shopfloor/data/files/train_FD001.txt.gz")
        registry.add("rul", model.save(work / "rul-model"))
    return registry.root


def peak_rss_gib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=20_000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--machines", type=int, default=10_000)
    parser.add_argument("--shared", action="store_true", help="subscribe with $share/ (Mosquitto 2.0.11 loses messages)")
    args = parser.parse_args()
    from shopfloor.stream.broker import start_broker

    work = Path(tempfile.mkdtemp(prefix="stream-load-"))
    models = models_folder(work)
    database = work / "plant.db"
    broker = start_broker(kind="mosquitto")
    ctx = mp.get_context("spawn")
    readings = int(args.rate * args.seconds)
    worker = ctx.Process(target=worker_process, args=(broker.url, str(models), f"sqlite:///{database}",
                                                      str(work / "worker.json"), "shopfloor" if args.shared else None))
    worker.start()
    time.sleep(8)  # model load and subscription
    publisher = ctx.Process(target=publisher_process, args=(broker.url, args.rate, readings, args.machines,
                                                            str(work / "publisher.json")))
    started = time.time()
    publisher.start()
    time.sleep(args.seconds / 2)
    broker.restart(pause=0.5)
    restarted_at = time.time() - started
    publisher.join(args.seconds * 4 + 120)
    published = json.loads((work / "publisher.json").read_text())
    deadline, stored = time.time() + 120, 0
    while time.time() < deadline:
        with sqlite3.connect(database) as db:
            stored = db.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
        if stored >= published["readings"]:
            break
        time.sleep(1)
    rss = peak_rss_gib(worker.pid)
    os.kill(worker.pid, signal.SIGTERM)
    worker.join(60)
    broker.close()
    stats = json.loads((work / "worker.json").read_text())
    with sqlite3.connect(database) as db:
        first, last, distinct = db.execute("SELECT MIN(received_at), MAX(received_at), COUNT(*) FROM readings").fetchone()
    result = {
        "benchmark": "stream_load", "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "target_rate": args.rate, "machines": args.machines, "shared_subscription": args.shared,
        "published_readings": published["readings"], "publisher_readings_per_s": published["readings_per_s"],
        "stored_readings": distinct, "lost_readings": published["readings"] - distinct,
        "sustained_readings_per_s": distinct / max(last - first, 1e-9),
        "latency_ms": stats["latency"], "worker_peak_rss_gib": rss, "broker_restart_at_s": restarted_at,
        "worker": {k: stats[k] for k in ("messages", "readings", "predictions", "batches", "dead_letters")},
        "load_average": os.getloadavg(), "cpu_count": os.cpu_count(),
    }
    rows = [("readings/s sustained", f"{result['sustained_readings_per_s']:,.0f}", ">= 20,000"),
            ("p99 sent -> stored (ms)", f"{stats['latency'].get('p99_ms', float('nan')):.0f}", "<= 100"),
            ("readings lost across restart", f"{result['lost_readings']:,}", "0"),
            ("worker peak RSS (GiB)", f"{rss:.2f}", "<= 1")]
    print(f"{'measure':32} {'value':>12} {'target':>10}")
    for name, value, target in rows:
        print(f"{name:32} {value:>12} {target:>10}")
    out = ROOT / "benchmarks" / "results" / "stream_load.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
