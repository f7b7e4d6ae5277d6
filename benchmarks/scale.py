"""Beyond one process: training with 1 and 2 processes (torchrun, DDP), and scoring and fleet training on Spark.

Protocol (fixed before measuring; also written into the JSON):
- part ddp: the `shopfloor` command line itself, in a fresh process per run, OMP_NUM_THREADS=1,
  `--processes 1` (plain) against `--processes 2` (torchrun's agent, DistributedDataParallel, gloo),
  the same seed and defaults; time = wall clock of `shopfloor train` (start-up and data reading included);
  - AI4I 2020: `Machine failure`, the five failure modes and the ids dropped; one stratified 80/20
    split (StratifiedKFold(5, shuffle, random_state=0), first fold); F1 of `shopfloor evaluate` on
    the held-out fifth;
  - C-MAPSS FD004: train_FD004 -> test_FD004 against RUL_FD004 (`shopfloor evaluate --rul`), RMSE on
    the last cycle of every test unit; the seed-to-seed standard deviation of one process is the
    one of the 5 seeds in benchmarks/results/cmapss.json (same RULModel defaults) unless --seeds > 1
    measures it in this run;
  - targets: FD004 RMSE with 2 processes within one seed-standard-deviation of 1 process; AI4I F1
    within 0.01.
- part gpu: see benchmarks/scale_gpu.py (NEU, magnetic tile and FD004 trained by `shopfloor train
  --device cpu` and `--device cuda`, fresh processes, same seed and defaults; training wall clock and the
  metric of `shopfloor evaluate` on the CPU; targets: CPU / GPU training time >= 5 on NEU and FD004, the
  metrics within seed noise); without a CUDA device the CPU side runs and the GPU side is recorded as not
  measured; --cpu-results takes the CPU side from a JSON written on the 2-core machine;
- part spark: see `spark_part` (rows/s of `shopfloor predict` in one process against
  `shopfloor.spark.predict` on local[2]; driver peak RSS at two sizes; 200 per-machine models).
Two cores are shared with other jobs on this machine: every timing is inflated by them (load average
in the JSON).

    .venv/bin/python benchmarks/scale.py --part ddp
    .venv/bin/python benchmarks/scale.py --part spark --rows 5000000
    .venv/bin/python benchmarks/scale.py --part gpu --cpu-only        # the CPU side, here
    .venv/bin/python benchmarks/scale.py --part gpu --cpu-results benchmarks/results/scale_gpu_cpu.json  # GPU box
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from _common import REPO_ROOT, RESULTS, check, data_file, machine, print_table, print_targets, stopwatch, versions, write_json

AI4I_DROP = ["UDI", "Product ID", "TWF", "HDF", "PWF", "OSF", "RNF"]


def shopfloor(*args, processes: int = 1, threads: int | None = 1) -> float:
    """Run `shopfloor ARGS` in a fresh process (with `--processes N` when N > 1); its wall-clock seconds.

    `threads` sets OMP_NUM_THREADS; None leaves it unset, so the command uses the machine's cores as it would
    for a user (the GPU part)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    if threads is None:
        del env["OMP_NUM_THREADS"]
    command = [sys.executable, "-m", "shopfloor", *map(str, args)] + (["--processes", str(processes)] if processes > 1 else [])
    with stopwatch() as elapsed:
        run = subprocess.run(command, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{run.stderr[-3000:]}")
    return elapsed()


def ai4i_split(folder: Path) -> tuple[Path, Path]:
    from sklearn.model_selection import StratifiedKFold

    frame = pd.read_csv(data_file("ai4i2020/ai4i2020.csv"))
    train_rows, test_rows = next(StratifiedKFold(5, shuffle=True, random_state=0).split(frame, frame["Machine failure"]))
    train, test = folder / "ai4i-train.csv", folder / "ai4i-test.csv"
    frame.iloc[train_rows].to_csv(train, index=False)
    frame.iloc[test_rows].to_csv(test, index=False)
    return train, test


def ddp_run(task: str, processes: int, seed: int, folder: Path, files: dict, max_epochs: int | None) -> dict:
    model, metrics = folder / f"{task}-{processes}p-seed{seed}", folder / f"{task}-{processes}p-seed{seed}.json"
    epochs = ["--max-epochs", max_epochs] if max_epochs else []
    if task == "ai4i":
        train, test = files["ai4i"]
        drops = [a for name in AI4I_DROP for a in ("--drop", name)]
        seconds = shopfloor("train", "tabular", "--data", train, "--target", "Machine failure", *drops, "--out", model,
                            "--seed", seed, "--quiet", *epochs, processes=processes)
        shopfloor("evaluate", "--model", model, "--data", test, "--json", metrics)
        key = "f1"
    else:
        seconds = shopfloor("train", "rul", "--data", data_file("cmapss/train_FD004.txt"), "--out", model, "--seed", seed,
                            "--quiet", *epochs, processes=processes)
        shopfloor("evaluate", "--model", model, "--data", data_file("cmapss/test_FD004.txt"),
                  "--rul", data_file("cmapss/RUL_FD004.txt"), "--json", metrics)
        key = "rmse"
    values = json.loads(metrics.read_text())
    manifest = json.loads((model / "manifest.json").read_text())
    return {"task": task, "processes": processes, "seed": seed, "train_seconds": seconds, key: values[key],
            "epochs": [r.get("epochs") for r in manifest["state"].get("training_log", [])]}


def previous_fd004_std() -> tuple[float, list[float]]:
    runs = json.loads((RESULTS / "cmapss.json").read_text())["subsets"]["FD004"]["runs"]
    rmse = [r["shopfloor"]["rmse"] for r in runs]
    return statistics.stdev(rmse), rmse


def ddp_part(args) -> dict:
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        files = {"ai4i": ai4i_split(folder)}
        for task in args.tasks:
            for seed in range(args.seeds):
                for processes in (1, 2):
                    runs.append(ddp_run(task, processes, seed, folder, files, args.max_epochs))
                    print(json.dumps(runs[-1]), flush=True)
    rows = [[r["task"], str(r["processes"]), str(r["seed"]), f"{r['train_seconds']:.1f}",
             f"{r.get('f1', r.get('rmse')):.4f}"] for r in runs]
    print_table("1 vs 2 processes", ["data", "processes", "seed", "train s", "F1 / RMSE"], rows)
    targets = []
    if "fd004" in args.tasks:
        one = [r["rmse"] for r in runs if r["task"] == "fd004" and r["processes"] == 1]
        two = [r["rmse"] for r in runs if r["task"] == "fd004" and r["processes"] == 2]
        std, source = (statistics.stdev(one), "this run") if len(one) > 1 else (previous_fd004_std()[0], "cmapss.json, 5 seeds")
        gap = abs(statistics.mean(two) - statistics.mean(one))
        targets.append(check(f"FD004 |RMSE 2 processes - 1 process| (seed std {std:.3f}, {source})", gap,
                             f"<= {std:.3f}", gap <= std))
    if "ai4i" in args.tasks:
        one = [r["f1"] for r in runs if r["task"] == "ai4i" and r["processes"] == 1]
        two = [r["f1"] for r in runs if r["task"] == "ai4i" and r["processes"] == 2]
        gap = abs(statistics.mean(two) - statistics.mean(one))
        targets.append(check("AI4I |F1 2 processes - 1 process|", gap, "<= 0.01", gap <= 0.01))
    print_targets(targets)
    return {"runs": runs, "targets": targets}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["ddp", "spark", "gpu"], required=True)
    parser.add_argument("--tasks", default=None, help="ddp: ai4i, fd004 or both (default both); "
                        "gpu: any of neu, magnetic, fd004 (default all three)")
    parser.add_argument("--seeds", type=int, default=1, help="ddp, gpu: seeds 0..N-1 for each process count / device")
    parser.add_argument("--max-epochs", type=int, default=None, help="ddp: smoke tests only (the protocol uses defaults)")
    parser.add_argument("--rows", default="1000000,5000000", help="spark: rows to score, two sizes (driver RSS)")
    parser.add_argument("--machines", type=int, default=200, help="spark: per-machine models to train")
    parser.add_argument("--scratch", default=None, help="spark: folder for the generated Parquet (default: the temp dir)")
    parser.add_argument("--quick", action="store_true", help="spark, gpu: 2-epoch models (gpu: on a few images), "
                        "a smoke test only")
    parser.add_argument("--cpu-only", action="store_true", help="gpu: only the CPU side (scale_gpu_cpu.json)")
    parser.add_argument("--cpu-results", type=Path, default=None,
                        help="gpu: the CPU side from this JSON (written by --cpu-only on the machine to compare with)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    tasks = args.tasks or ("neu,magnetic,fd004" if args.part == "gpu" else "ai4i,fd004")
    args.tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    args.name = f"scale_{args.part}" + ("-quick" if args.quick and args.part == "gpu" else "") + \
        ("_cpu" if args.cpu_only else "")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.part == "ddp":
        result = ddp_part(args)
    elif args.part == "gpu":
        from scale_gpu import gpu_part

        result = gpu_part(args)
    else:
        from scale_spark import spark_part

        result = spark_part(args)
    protocol = __doc__.split("\n\n")[1]
    name = args.name
    path = write_json(name, {"protocol": protocol, "params": {k: (str(v) if isinstance(v, Path) else v)
                                                              for k, v in vars(args).items()},
                             "machine": machine(), "versions": versions(("shopfloor", "torch", "pyspark", "pandas")),
                             **result}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
