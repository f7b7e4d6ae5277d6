"""C-MAPSS speed and memory on a quiet machine: one RULModel per subset (seed 0, defaults).

`cmapss.py` trains 20 models and a baseline, usually two subsets at a time so that the whole run
fits in the working day; its timings carry that load. This script is the clean measurement:
run it alone, one subset after another, each in its own process so that peak RSS is its own.

- training minutes: wall clock from the raw file to a model that predicts (default settings);
- inference units/s: RULModel.predict on the test units copied to at least 10,000 units, raw rows
  in, estimate and interval out, median of 3 after a warm-up (as in cmapss.py), 2 torch threads;
- peak RSS: ru_maxrss of the process, which reads, trains, predicts and nothing else.

    .venv/bin/python benchmarks/cmapss_speed.py              # FD001-FD004, one process each
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from _common import RESULTS, check, data_file, limit_threads, machine, peak_rss_bytes, print_targets, stopwatch, write_json

SUBSETS = ("FD001", "FD002", "FD003", "FD004")


def measure(subset: str) -> dict:
    from cmapss import units_per_second

    from shopfloor.data.runs import read_runs
    from shopfloor.tasks.rul.model import RULModel

    limit_threads()
    with stopwatch() as elapsed:
        model = RULModel(seed=0, progress=False).fit(read_runs(data_file(f"cmapss/train_{subset}.txt")))
    minutes = elapsed() / 60
    speed = units_per_second(model, read_runs(data_file(f"cmapss/test_{subset}.txt")))
    return {"train_minutes": minutes, "epochs": model.training_log_[-1]["epochs"], "units_per_s": speed,
            "peak_rss_gib": peak_rss_bytes() / 2**30}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subsets", default=",".join(SUBSETS))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: measure one subset, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    results = {}
    for subset in args.subsets.split(","):
        done = subprocess.run([sys.executable, __file__, "--one", subset], capture_output=True, text=True, check=True)
        results[subset] = json.loads(done.stdout.strip().splitlines()[-1])
        print(subset, results[subset], flush=True)
    targets = []
    for subset, r in results.items():
        targets.append(check(f"{subset} training minutes (seed 0)", r["train_minutes"], "<= 5", r["train_minutes"] <= 5))
        targets.append(check(f"{subset} inference units/s", r["units_per_s"], ">= 5000", r["units_per_s"] >= 5000))
        targets.append(check(f"{subset} peak RSS GiB", r["peak_rss_gib"], "<= 3", r["peak_rss_gib"] <= 3))
    print_targets(targets)
    write_json("cmapss_speed", {"protocol": __doc__.split("\n\n")[1], "machine": machine(), "subsets": results,
                                "targets": targets}, out=RESULTS / "cmapss_speed.json")


if __name__ == "__main__":
    main()
