"""The robustness report on every task's demo model: its runtime (target <= 2 min each) and its curves' key points.

Protocol (fixed before any tuning, also written into the JSON):
- models: those `shopfloor demo --no-line --out DIR` writes (AI4I table model, C-MAPSS FD001 RUL model, defect
  classifier and anomaly detector on the generated surfaces, the flow-reactor optimiser, the pumps monitor); the
  demo has no diagnosis model, so a CWRU one is trained as benchmarks/int8.py trains it (DiagnoseModel defaults,
  seed 0, the first 70 % of every recording) and saved;
- data, as the demo evaluates each: the AI4I held-out rows (ai4i-holdout.csv), FD001's test units with
  RUL_FD001, surfaces/classes-test, surfaces/inspection (its test part), pumps-today.csv (the command has no
  label option, so the monitor is measured by its flags' agreement with its own unperturbed flags), CWRU's last
  30 % of every recording written as class folders of CSV; a model whose task has no robustness report (the
  optimiser) is recorded with the refusal;
- the pumps monitor also with the day's `fault` column as its label (AUROC), through the Python API in this
  process (`robustness_curves(model, data, "fault")`, loading included in the time);
- each run is `shopfloor robustness --model M --data D --json ... --report ...` in a fresh process (loading,
  the curves and the page included), timed by wall clock and by the CPU seconds the process used (the
  steadier figure when other jobs share the cores); one run per model;
- key points: the unperturbed metric, and per curve its metric at the strongest perturbation; the inputs the
  model leans on most.

    .venv/bin/python benchmarks/robustness.py --demo demo-output
    .venv/bin/python benchmarks/robustness.py --demo demo-output --models pumps,cwru   # the monitor and diagnosis
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO_ROOT, check, data_file, machine, print_table, print_targets, write_json

LIMIT_SECONDS = 120


def cases(demo: Path) -> dict[str, tuple[Path, Path, Path | None]]:
    """model name -> (model folder, data, true RUL or None)."""
    return {"ai4i (tabular)": (demo / "ai4i-model", demo / "ai4i-holdout.csv", None),
            "cmapss (rul)": (demo / "cmapss-model", data_file("cmapss/test_FD001.txt"), data_file("cmapss/RUL_FD001.txt")),
            "defects": (demo / "defects-model", demo / "surfaces" / "classes-test", None),
            "anomaly": (demo / "anomaly-model", demo / "surfaces" / "inspection", None),
            "reactor (optimize)": (demo / "reactor-model", demo / "reactor-records.csv", None),
            "pumps (monitor)": (demo / "pumps-model", demo / "pumps-today.csv", None)}


def cwru_case(folder: Path) -> tuple[Path, Path, None]:
    """A CWRU diagnosis model saved in `folder` (trained on the first 70 % of every recording) and the last 30 %
    as class folders of CSV (one column, the drive end's samples at 12 kHz)."""
    import numpy as np
    import pandas as pd
    from int8 import cwru_model

    model, test, _ = cwru_model()
    model.save(folder / "cwru-model")
    for recording in test:
        (folder / "cwru-test" / recording.label).mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame(np.asarray(recording.values, dtype=np.float32).T, columns=recording.channels)
        frame.to_csv(folder / "cwru-test" / recording.label / "last-30-percent.csv", index=False)
    return folder / "cwru-model", folder / "cwru-test", None


def labelled_pumps(demo: Path) -> dict:
    """The pumps monitor's report with the day's `fault` column as its label, in this process."""
    import warnings

    import shopfloor
    from shopfloor.robustness.curves import robustness_curves

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = robustness_curves(shopfloor.load(demo / "pumps-model"), demo / "pumps-today.csv", "fault")
    return {"seconds": time.perf_counter() - started, "curves_seconds": report["seconds"], "metric": report["metric"],
            "items": report["items"], "clean": report["clean"],
            "strongest": {c["name"]: c["points"][-1] for c in report["curves"]}, "curves": report["curves"],
            "leans_on": report.get("leans_on"), "inputs": report.get("inputs")}


def run_one(model: Path, data: Path, truth: Path | None, folder: Path) -> dict:
    command = [sys.executable, "-m", "shopfloor", "robustness", "--model", str(model), "--data", str(data),
               "--json", str(folder / "r.json"), "--report", str(folder / "r.html")]
    if truth is not None:
        command += ["--rul", str(truth)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=env)
    seconds = time.perf_counter() - started
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
    if done.returncode != 0:
        return {"seconds": seconds, "cpu_seconds": cpu_seconds,
                "refused": (done.stderr or done.stdout).strip().splitlines()[-1]}
    report = json.loads((folder / "r.json").read_text())
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "curves_seconds": report["seconds"], "metric": report["metric"],
            "items": report["items"], "clean": report["clean"],
            "strongest": {c["name"]: c["points"][-1] for c in report["curves"]},
            "curves": report["curves"], "leans_on": report.get("leans_on"), "inputs": report.get("inputs")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=REPO_ROOT / "demo-output")
    parser.add_argument("--models", default=None, help="comma-separated names (default: all)")
    args = parser.parse_args()
    path = REPO_ROOT / "benchmarks" / "results" / "robustness.json"
    results = json.loads(path.read_text()).get("results", {}) if path.exists() else {}
    chosen = cases(args.demo.resolve())
    wanted = args.models.split(",") if args.models else None
    with tempfile.TemporaryDirectory() as cwru_folder:
        if wanted is None or "cwru" in wanted:
            chosen["cwru (diagnose)"] = cwru_case(Path(cwru_folder))
        for name, (model, data, truth) in chosen.items():
            if wanted and name.split(" ")[0] not in wanted:
                continue
            with tempfile.TemporaryDirectory() as folder:
                results[name] = run_one(model, data, truth, Path(folder))
            print(name, json.dumps({k: v for k, v in results[name].items() if k != "curves"}), flush=True)
    if wanted is None or "pumps" in wanted:
        results["pumps (monitor, labelled by 'fault', in process)"] = labelled_pumps(args.demo.resolve())
    rows = [[name, f"{r['seconds']:.0f}", r.get("metric", "-"), f"{r['clean']:.3f}" if "clean" in r else "-",
             "; ".join(f"{k} {v[0]:g}: {v[1]:.3f}" for k, v in r.get("strongest", {}).items()) or r.get("refused", "")]
            for name, r in results.items()]
    print_table("robustness report on the demo's models", ["model", "seconds", "metric", "clean", "at the strongest"],
                rows)
    targets = [check(f"{name}: seconds for the report", r["seconds"], f"<= {LIMIT_SECONDS}",
                     r["seconds"] <= LIMIT_SECONDS) for name, r in results.items() if "refused" not in r]
    print_targets(targets)
    write_json("robustness", {"protocol": __doc__.split("Protocol")[1].split("    .venv")[0].strip(), "machine": machine(),
                              "note": "timings taken while other jobs shared the 2 CPU cores (load average above 10)",
                              "results": results, "targets": targets})


if __name__ == "__main__":
    main()
