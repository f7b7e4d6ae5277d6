"""What labels that arrive later cost the store: joining outcomes to stored predictions, and the model-health page's
reads of them (issue 19, item 3).

Protocol (fixed before the run): a SQLite store with `--machines` machines x `--readings` readings of one failure
model stored as the stream worker stores them (batches of 20,000 predictions); every other reading gets an outcome,
sent in requests of `--request` labels without a line (the machine's line is looked up) at exact times, through
`shopfloor.outcomes.store_outcomes`, the route's and the MQTT worker's own call (HTTP and JSON parsing not counted).
Then the same labels again (a redelivery: every one replaces itself). Then the health page's two reads, the latest
5,000 labelled and 500 unlabelled failure probabilities of the version, median of 5. Wall-clock time: the machine's
two cores are shared with other people's jobs (the load average is written beside the figures), so it is inflated.

    PYTHONPATH=src python benchmarks/outcomes.py      # writes benchmarks/results/outcomes.json
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine, print_table, write_json


def main() -> None:
    from shopfloor.outcomes import store_outcomes
    from shopfloor.serve.health import labelled_risks, unlabelled_risks
    from shopfloor.store import Store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--readings", type=int, default=2_000, help="per machine")
    parser.add_argument("--request", type=int, default=10_000, help="labels per request")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="shopfloor-outcomes-"))
    store = Store(f"sqlite:///{folder / 'plant.db'}")
    rng = np.random.default_rng(0)
    total = args.machines * args.readings
    for start in range(0, total, 20_000):
        count = min(20_000, total - start)
        predictions = [dict(line="line-1", machine=f"m{k % args.machines}", time=float(k // args.machines),
                            model="failure", version=1, risk=float(r), sent_at=0.0)
                       for k, r in zip(range(start, start + count), rng.uniform(0, 1, count), strict=True)]
        states = [dict(line="line-1", machine=f"m{m}", time=0.0, alerting=False) for m in range(args.machines)]
        store.write_batch([], predictions, [], states)
    labels = [{"line": None, "machine": f"m{k % args.machines}", "time": float(k // args.machines),
               "outcome": str(int(rng.random() < 0.1))} for k in range(0, total, 2)]
    rounds = {}
    for name in ("first delivery", "redelivery"):
        started, unmatched = time.perf_counter(), 0
        for k in range(0, len(labels), args.request):
            unmatched += len(store_outcomes(store, "failure", labels[k:k + args.request]))
        seconds = time.perf_counter() - started
        rounds[name] = {"labels": len(labels), "seconds": seconds, "labels_per_s": len(labels) / seconds,
                        "unmatched": unmatched}
    reads = {}
    for name, read in (("latest 5,000 labelled", lambda: labelled_risks(store, "failure", 1, "1")),
                       ("latest 500 unlabelled", lambda: unlabelled_risks(store, "failure", 1))):
        times = []
        for _ in range(5):
            started = time.perf_counter()
            rows = len(read())
            times.append(time.perf_counter() - started)
        reads[name] = {"rows": rows, "median_ms": 1000 * statistics.median(times)}
    store.close()
    print_table("outcomes joined and stored (SQLite)", ["round", "labels", "seconds", "labels/s", "unmatched"],
                [[k, f"{v['labels']:,}", f"{v['seconds']:.1f}", f"{v['labels_per_s']:,.0f}", str(v["unmatched"])]
                 for k, v in rounds.items()])
    print_table("health page reads", ["read", "rows", "median ms"],
                [[k, f"{v['rows']:,}", f"{v['median_ms']:.1f}"] for k, v in reads.items()])
    path = write_json("outcomes", {"protocol": {"machines": args.machines, "readings_per_machine": args.readings,
                                                "predictions": total, "labels_per_request": args.request,
                                                "database": "sqlite", "tolerance": 0},
                                   "rounds": rounds, "reads": reads, "machine": machine()})
    print(f"written {path}")


if __name__ == "__main__":
    main()
