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

Blocks (`--blocks`; fixed before the run): the fault-diagnosis model of `stream_blocks.py` (defaults: front `both`,
windows of 2,048 samples at 12 kHz, seed 0), trained on the first 70 % of CWRU's 10 recordings at load 0 (drive-end
channel) and live; `--machines-blocks` machines (100) each replay the last 30 % of one recording (dealt round-robin,
each from its own offset) as blocks of 1,200 samples (0.1 s, one block per message in the gateway format), batches
of 100 messages (what `stream_blocks.py` measures), SQLite store. Each round processes `--block-messages` messages
with the watch off, then the next ones with it on; `--rounds` rounds after a warm-up phase; CPU time per window
scored is the measure, as above, and beside it the CPU time spent inside `LineWatch.observe` (the watch's own share,
which other jobs on the machine disturb less than the difference of two phases). The watch's checks run at the
line's settings (500 windows and 5 s apart). Then `--block-messages` more messages with the watch on, every
machine's channel multiplied by 1.5 (an accelerometer's gain): the drift alerts raised, and the windows scored from
the change to the first one; and the drift alerts of the unchanged rounds before it.

    PYTHONPATH=src python benchmarks/drift_stream_cost.py      # writes benchmarks/results/drift_stream_cost.json
    PYTHONPATH=src python benchmarks/drift_stream_cost.py --blocks   # results/drift_stream_cost_blocks.json
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
    parser.add_argument("--blocks", action="store_true", help="a diagnose model on CWRU blocks instead of rows")
    parser.add_argument("--block-messages", type=int, default=10_000, help="messages per phase (--blocks)")
    parser.add_argument("--machines-blocks", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.blocks:
        blocks_cost(args)
        return
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


def blocks_cost(args) -> None:
    """The `--blocks` protocol (module docstring): CPU per window scored with the watch off and on."""
    from stream_blocks import RATE, SHARE, WINDOW, Gateways, recordings

    from shopfloor.registry import Registry
    from shopfloor.store import Store
    from shopfloor.stream.scoring import Models
    from shopfloor.stream.worker import Worker
    from shopfloor.tasks.diagnose.model import DiagnoseModel
    from shopfloor.tasks.diagnose.windows import time_split
    from shopfloor.watch.line import LineWatch

    work = Path(tempfile.mkdtemp(prefix="drift-cost-blocks-"))
    (work / "cwru").mkdir()
    train, test = time_split(recordings(work / "cwru"), SHARE)
    started = time.perf_counter()
    model = DiagnoseModel(window=WINDOW, seed=0, progress=False).fit(train)
    trained = time.perf_counter() - started
    print(f"model: {model.front}, channels {model.channels_}, trained in {trained:.0f} s", flush=True)
    registry = Registry(work / "models", create=True)
    registry.add("bearing", model.save(work / "bearing-model"))
    store = Store(f"sqlite:///{work / 'plant.db'}")
    worker = Worker("mqtt://localhost:1883", "plant/+/+/telemetry", store, Models(registry), progress=None)
    worker.client = StandInClient()
    watch = LineWatch(store)
    gateways = Gateways(test, list(model.channels_), args.machines_blocks, 1_200)
    cpu, inside = {"off": [], "on": []}, [0.0]
    observe = watch.observe

    def timed_observe(*args, **kwargs):  # the watch's own CPU time, beside the phases' difference (noisy when shared)
        started = time.process_time()
        try:
            return observe(*args, **kwargs)
        finally:
            inside[0] += time.process_time() - started

    watch.observe = timed_observe
    watch_cpu = []

    def run_phase(mode: str) -> None:
        worker.watch = watch if mode == "on" else None
        batches = [gateways.batch(100) for _ in range(args.block_messages // 100)]  # encoded before timing
        before, inside[0] = worker.stats.predictions, 0.0
        started = time.process_time()
        for batch in batches:
            worker.process([(worker.session, m) for m in batch])
        windows = max(worker.stats.predictions - before, 1)
        cpu[mode].append((time.process_time() - started) / windows * 1e6)
        if mode == "on":
            watch_cpu.append(inside[0] / windows * 1e6)

    run_phase("on")  # warm-up: the model's first passes, every machine's slot, the watch's first sight of the model
    cpu["on"].clear()
    watch_cpu.clear()
    for _ in range(args.rounds):
        run_phase("off")
        run_phase("on")
    import sqlalchemy as sa

    from shopfloor.store_schema import drift_verdicts

    with store.engine.connect() as db:  # of the unchanged rounds
        verdicts = db.execute(sa.select(drift_verdicts.c.input, drift_verdicts.c.verdict)).all()
    unchanged_alerts = store.alerts(50, kind="drift")
    gain = gain_phase(worker, watch, store, gateways, args.block_messages)
    store.close()
    off, on = float(np.median(cpu["off"])), float(np.median(cpu["on"]))
    ratio = off / on
    print_table("stream worker CPU per window scored (us), blocks of 1,200 samples", ["watch", "per round", "median",
                "windows/s of one core"], [[mode, ", ".join(f"{v:.0f}" for v in cpu[mode]), f"{np.median(cpu[mode]):.0f}",
                                            f"{1e6 / np.median(cpu[mode]):,.0f}"] for mode in ("off", "on")])
    own = float(np.median(watch_cpu))
    print(f"the watch's own CPU per window (inside LineWatch.observe): {', '.join(f'{v:.1f}' for v in watch_cpu)} us; "
          f"median {own:.1f} us, {own / on:.1%} of a window's CPU with the watch on")
    targets = [check("throughput with the drift watch / without (blocks)", ratio, ">= 0.90", ratio >= 0.90),
               check("1 - the watch's own share of the CPU (blocks)", 1 - own / on, ">= 0.90", own / on <= 0.10)]
    print_targets(targets)
    print(f"drift alerts on the unchanged test part: {len(unchanged_alerts)}; after a gain of x1.5: {gain}")
    drifting = sorted({i for i, v in verdicts if v == "drift"})
    print(write_json("drift_stream_cost_blocks", {
        "protocol": __doc__.split("Blocks (`--blocks`; fixed before the run): ")[1].split("\n\n")[0],
        "train_seconds": trained, "cpu_us_per_window": cpu, "median_off": off, "median_on": on,
        "throughput_ratio": ratio, "watch_cpu_us_per_window": watch_cpu, "watch_share": own / on,
        "comparisons": len(verdicts) // max(len({i for i, _ in verdicts}), 1),
        "drifting_on_the_test_part": drifting, "drift_alerts_on_the_test_part": [a["message"] for a in unchanged_alerts],
        "gain": gain, "rate": RATE, "stats": worker.stats.summary(), "machine": machine(),
        "targets": targets}))


def gain_phase(worker, watch, store, gateways, messages: int) -> dict:
    """Every machine's channel gains x1.5 from here on (its blocks continue in time): the drift alerts raised, and
    the windows scored from the change to the first one."""
    worker.watch = watch
    gateways.signals = [signal * 1.5 for signal in gateways.signals]
    before, windows = worker.stats.predictions, None
    for _ in range(messages // 100):
        worker.process([(worker.session, m) for m in gateways.batch(100)])
        if windows is None and store.alerts(1, kind="drift"):
            windows = worker.stats.predictions - before
    alerts = store.alerts(50, kind="drift")
    return {"messages": messages, "windows": worker.stats.predictions - before, "windows_to_the_first_alert": windows,
            "alerts": [a["message"] for a in alerts]}


if __name__ == "__main__":
    main()
