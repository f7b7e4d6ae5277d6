"""What the drift watch costs the stream worker: CPU seconds per reading of `Worker.process` with the watch on and
off, in one process, alternating, on the same messages (no broker: the messages are handed to `process` as MQTT
would, and acknowledgements and alerts go to a stand-in client).

Protocol: the C-MAPSS FD001 training engines replayed as `--machines` machines, 25 consecutive cycles of one
machine per message, batches of 40 messages (1,000 readings: what the worker gathers in 50 ms at 20,000 readings
a second); the demo's RUL model live (`demo-output/cmapss-model`, else a small one trained here); SQLite store.
Each round processes `--readings` readings with the watch off, then the next ones with it on (new machines'
readings each time), `--rounds` rounds; CPU time (`time.process_time`) is the measure, since other jobs on the
machine stretch wall-clock time but not this process's CPU time. One torch thread.
Target (issue 19): throughput with the watch within 10 % of without, i.e. CPU per reading at most 1/0.9 times.

    PYTHONPATH=src python benchmarks/drift_stream_cost.py      # writes benchmarks/results/drift_stream_cost.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import orjson
from _common import check, machine, print_table, print_targets, write_json

ROOT = Path(__file__).resolve().parents[1]


class StandInClient:
    def ack(self, mid, qos) -> None:
        pass

    def publish(self, topic, payload, qos=0) -> None:
        pass


def messages(frame, columns: list[str], machines: int, start: int, count: int, per_message: int = 25) -> list:
    """`count` messages, machine `start + i` each: 25 cycles of one engine (engines reused, cycles renumbered)."""
    engines = [g[columns].to_numpy() for _, g in frame.groupby("unit")]
    out = []
    for i in range(count):
        rows = engines[i % len(engines)][:per_message]
        machine_id = (start + i) % machines
        readings = [{"time": float((start + i) // machines * per_message + k), **dict(zip(columns, map(float, row), strict=True))}
                    for k, row in enumerate(rows)]
        out.append(SimpleNamespace(topic=f"plant/line-1/m{machine_id}/telemetry", payload=orjson.dumps(readings),
                                   mid=i, qos=1))
    return out


def main() -> None:
    import torch

    from shopfloor.data.runs import read_runs
    from shopfloor.registry import Registry
    from shopfloor.store import Store
    from shopfloor.stream.scoring import Models
    from shopfloor.stream.worker import Worker
    from shopfloor.watch.line import LineWatch

    parser = argparse.ArgumentParser()
    parser.add_argument("--readings", type=int, default=50_000, help="readings per phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--machines", type=int, default=2_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="drift-cost-"))
    registry = Registry(work / "models", create=True)
    demo = ROOT / "demo-output" / "cmapss-model"
    if not demo.is_dir():
        from shopfloor.tasks.rul.model import RULModel

        RULModel(members=2, max_epochs=5, progress=False).fit(ROOT / "src/shopfloor/data/files/train_FD001.txt.gz").save(demo)
    registry.add("rul", demo)
    store = Store(f"sqlite:///{work / 'plant.db'}")
    worker = Worker("mqtt://localhost:1883", "plant/+/+/telemetry", store, Models(registry), progress=None)
    worker.client = StandInClient()
    watch = LineWatch(store)
    runs = read_runs(ROOT / "src/shopfloor/data/files/train_FD001.txt.gz")
    columns = [c for c in runs.frame.columns if c not in ("unit", "cycle")]
    per_phase = args.readings // 25
    sent = 0
    cpu = {"off": [], "on": []}

    def run_phase(mode: str) -> None:
        nonlocal sent
        worker.watch = watch if mode == "on" else None
        batch = messages(runs.frame, columns, args.machines, sent, per_phase)
        sent += per_phase
        started = time.process_time()
        for first in range(0, len(batch), 40):
            worker.process([(worker.session, m) for m in batch[first:first + 40]])
        cpu[mode].append((time.process_time() - started) / (per_phase * 25) * 1e6)

    run_phase("off")  # warm-up: every machine's window allocated, the model's first passes
    cpu["off"].clear()
    for _ in range(args.rounds):
        run_phase("off")
        run_phase("on")
    store.close()
    off, on = float(np.median(cpu["off"])), float(np.median(cpu["on"]))
    ratio = off / on
    print_table("stream worker CPU per reading (us)", ["watch", "per round", "median", "readings/s of one core"],
                [[mode, ", ".join(f"{v:.1f}" for v in cpu[mode]), f"{np.median(cpu[mode]):.1f}",
                  f"{1e6 / np.median(cpu[mode]):,.0f}"] for mode in ("off", "on")])
    targets = [check("throughput with the drift watch / without", ratio, ">= 0.90", ratio >= 0.90)]
    print_targets(targets)
    checks = len([k for k in watch.last_check])
    print(write_json("drift_stream_cost", {"protocol": __doc__.split("Protocol: ")[1].split("\n\n")[0],
                                           "cpu_us_per_reading": cpu, "median_off": off, "median_on": on,
                                           "throughput_ratio": ratio, "models_watched": checks,
                                           "stats": worker.stats.summary(), "machine": machine(), "targets": targets}))


if __name__ == "__main__":
    main()
