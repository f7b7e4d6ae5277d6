"""Process optimisation on a long history: time and memory of a recommendation, and the choice of surrogate.

For each simulated process (SnAr reactor: 4 settings, 2 outputs, an output constraint; Hartmann-6:
6 settings), 10,000 noisy past records from the operating window (noise 5 % of each output's
scale), and 2,000 fresh records from the same window to judge the models on. Each configuration
runs in a fresh process (peak RSS is that process's own):

- shopfloor's Gaussian process fitted on `max_records` of the records (best quarter per objective
  plus an even spread; 500 / 1,000 / 2,000 / 4,000): fit seconds, `optimize()` seconds
  (recommendation + 5 experiments), held-out RMSE and 90 % interval coverage, the true regret of
  the recommendation, peak RSS;
- the deep ensemble of the tabular engine (TabularModel, regression, its defaults) on all 10,000
  records: fit seconds, held-out RMSE and coverage, peak RSS: the alternative surrogate;
- the whole command line, `shopfloor optimize` on the 10,000-record CSV (default settings), wall
  seconds including start-up.

    python benchmarks/optimize_speed.py      # on a quiet machine; writes results/optimize_speed.json
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _common import REPO_ROOT, THREADS, machine, peak_rss_bytes, versions, write_json

from shopfloor.tasks.optimize.simulators import SIMULATORS

RECORDS, FRESH, NOISE = 10_000, 2_000, 0.05
SUBSETS = (500, 1000, 2000, 4000)


def history(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    sim = SIMULATORS[name]
    return sim.history(RECORDS, seed=0, noise=NOISE), sim.history(FRESH, seed=1, noise=NOISE)


def goal(sim) -> dict:
    return {"maximize": [sim.objective]} if sim.maximize else {"minimize": [sim.objective]}


def run_gaussian_process(name: str, records: pd.DataFrame, fresh: pd.DataFrame, max_records: int) -> dict:
    import torch

    from shopfloor import ProcessOptimizer

    torch.set_num_threads(THREADS)
    sim = SIMULATORS[name]
    optimizer = ProcessOptimizer(list(sim.settings), constraints=list(sim.constraints), max_records=max_records, **goal(sim))
    started = time.perf_counter()
    optimizer.fit(records)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    result = optimizer.optimize()
    optimize_seconds = time.perf_counter() - started
    metrics = optimizer.evaluate(fresh)
    truth = sim.run(pd.DataFrame([result["recommended"]]))
    return {"surrogate": "gaussian_process", "max_records": max_records, "fit_seconds": fit_seconds,
            "optimize_seconds": optimize_seconds, "total_seconds": fit_seconds + optimize_seconds,
            "heldout_rmse": metrics[f"{sim.objective} rmse"], "heldout_coverage": metrics[f"{sim.objective} interval_coverage"],
            "recommendation_regret": float(sim.regret(truth[sim.objective].iloc[0])),
            "recommendation_violation": float(sim.violation(pd.DataFrame([result["recommended"]]))[0]),
            "peak_rss_bytes": peak_rss_bytes()}


def run_ensemble(name: str, records: pd.DataFrame, fresh: pd.DataFrame) -> dict:
    import torch

    from shopfloor import TabularModel

    torch.set_num_threads(THREADS)
    sim = SIMULATORS[name]
    columns = [*sim.names, sim.objective]
    started = time.perf_counter()
    model = TabularModel(target=sim.objective, task="regression", progress=False).fit(records[columns])
    fit_seconds = time.perf_counter() - started
    metrics = model.evaluate(fresh[columns])
    return {"surrogate": "deep_ensemble", "max_records": len(records), "fit_seconds": fit_seconds,
            "heldout_rmse": metrics["rmse"], "heldout_coverage": metrics.get("interval_coverage"),
            "peak_rss_bytes": peak_rss_bytes()}


def in_fresh_process(function, *args) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def command_line(name: str, records: pd.DataFrame) -> dict:
    sim = SIMULATORS[name]
    with tempfile.TemporaryDirectory() as folder:
        data, out = Path(folder) / "records.csv", Path(folder) / "answer.json"
        records.to_csv(data, index=False)
        command = [str(Path(sys.executable).with_name("shopfloor")), "optimize", "--data", str(data), "--json", str(out)]
        command += [a for s in sim.settings for a in ("--setting", s)]
        command += ["--target", sim.objective, "--maximize" if sim.maximize else "--minimize"]
        command += [a for c in sim.constraints for a in ("--constraint", c)]
        started = time.perf_counter()
        finished = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
        seconds = time.perf_counter() - started
        if finished.returncode != 0:
            raise RuntimeError(finished.stderr)
        answer = json.loads(out.read_text())
    return {"wall_seconds": seconds, "recommended": answer["recommended"], "predicted": answer["predicted"]}


def main() -> None:
    import argparse

    global RECORDS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=RECORDS)
    parser.add_argument("--subsets", default=",".join(map(str, SUBSETS)))
    args = parser.parse_args()
    RECORDS = args.records
    results = {}
    for name in ("snar", "hartmann6"):
        records, fresh = history(name)
        rows = [in_fresh_process(run_gaussian_process, name, records, fresh, int(m)) for m in args.subsets.split(",")]
        rows.append(in_fresh_process(run_ensemble, name, records, fresh))
        cli = command_line(name, records)
        results[name] = {"configurations": rows, "command_line": cli}
        print(f"\n{name}: {RECORDS:,} records, noise {NOISE}; command line {cli['wall_seconds']:.1f} s")
        print(f"{'surrogate':18s} {'records':>8s} {'fit s':>7s} {'optimize s':>10s} {'RMSE':>9s} {'coverage':>8s} "
              f"{'regret':>9s} {'RSS MiB':>8s}")
        for r in rows:
            print(f"{r['surrogate']:18s} {r['max_records']:8d} {r['fit_seconds']:7.1f} "
                  f"{r.get('optimize_seconds', float('nan')):10.1f} "
                  f"{r['heldout_rmse']:9.4g} {r.get('heldout_coverage') or float('nan'):8.3f} "
                  f"{r.get('recommendation_regret', float('nan')):9.4g} {r['peak_rss_bytes'] / 2**20:8.0f}")
    if RECORDS != 10_000:
        return  # a smoke run: no results file
    write_json("optimize_speed", {"records": RECORDS, "fresh": FRESH, "noise": NOISE, "threads": THREADS,
                                  "machine": machine(), "versions": versions(("shopfloor", "torch", "numpy")),
                                  "results": results})


if __name__ == "__main__":
    main()
