"""The Spark part of benchmarks/scale.py: plant-scale scoring and fleet training on local[2] (see scale.py's protocol).

Protocol (fixed before measuring):
- model: `TabularModel` with its defaults on every AI4I row (`Machine failure`; modes and ids dropped);
- data: AI4I rows resampled with replacement (seed 0) to each size of --rows, written as Parquet files of
  500,000 rows; one process: `predict_file` on each file in turn, in this process (one torch thread,
  as `shopfloor predict` runs); two processes: two fresh processes started together, each scoring half
  the files the same way (rows / the later one's scoring seconds: the same 2 cores Spark gets);
  Spark: `shopfloor.spark.predict` on the folder, written to Parquet, `local[2]`; steady rows/s = rows /
  wall clock of the write job; the one-off costs (the session's start-up, and a first job on 1,000 rows in
  two partitions, in which both Python workers start, import torch and load the model) are reported apart; the target is
  about the steady rate, compared with one process (1 core) and with two processes (2 cores, as Spark);
- batch profile: one Arrow batch of each size through what one `mapInPandas` call does, timed apart:
  Arrow -> pandas, the model's predict (its column reading and cleaning, its network), the output's dtypes
  and pandas -> Arrow (us a row, median of 3, one thread);
- agreement: the number of predicted failures and the sum of failure probabilities over every row,
  Spark against one process (every row is compared one by one in tests/scale/test_spark.py);
- driver memory: peak RSS of the Python driver and of Spark's JVM (sampled every 0.1 s by psutil)
  while each size is scored; flat = the larger size's peak within 25 % of the smaller's;
- fleet: --machines machines x 300 AI4I rows each (resampled, seed 0), one `TabularModel(bags=2,
  members=2, max_epochs=8)` per machine added to a registry: a plain loop in one process against
  `shopfloor.spark.train_per_group` on local[2] (session start-up reported apart);
- targets: Spark rows/s >= 80 % of one process; peak driver RSS flat; fleet faster on Spark.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from _common import check, data_file, print_table, print_targets, stopwatch

TARGET = "Machine failure"
DROP = ["UDI", "Product ID", "TWF", "HDF", "PWF", "OSF", "RNF"]
PART_ROWS = 500_000
OUTPUTS = ["Machine failure probability", "Machine failure predicted"]
FLEET_ROWS = 300
FLEET_OPTIONS = {"target": TARGET, "drop": DROP, "bags": 2, "members": 2, "max_epochs": 8}


class PeakMemory:
    """Peak RSS of this process and, separately, of its JVM children (Spark's driver JVM), sampled in a thread."""

    def __init__(self):
        self.python = self.jvm = 0
        self._stop = threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        me = psutil.Process()
        while not self._stop.is_set():
            self.python = max(self.python, me.memory_info().rss)
            jvm = 0
            for child in me.children(recursive=True):
                try:
                    if "java" in child.name():
                        jvm += child.memory_info().rss
                except psutil.Error:
                    continue
            self.jvm = max(self.jvm, jvm)
            time.sleep(0.1)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def resampled_ai4i(rows: int, seed: int) -> pd.DataFrame:
    frame = pd.read_csv(data_file("ai4i2020/ai4i2020.csv"))
    picks = np.random.default_rng(seed).integers(0, len(frame), rows)
    return frame.iloc[picks].reset_index(drop=True)


def write_parts(folder: Path, rows: int) -> list[Path]:
    folder.mkdir(parents=True)
    parts = []
    for i, start in enumerate(range(0, rows, PART_ROWS)):
        part = resampled_ai4i(min(PART_ROWS, rows - start), seed=i)
        parts.append(folder / f"part-{i:04d}.parquet")
        part.to_parquet(parts[-1], index=False)
    return parts


def one_process(model, parts: list[Path], out: Path) -> dict:
    out.mkdir()
    with PeakMemory() as memory, stopwatch() as elapsed:
        rows = sum(model.predict_file(part, out / part.name) for part in parts)
    seconds = elapsed()
    scored = [pd.read_parquet(out / part.name, columns=OUTPUTS) for part in parts]
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "peak_rss_python": memory.python,
            **agreement(pd.concat(scored))}


def scoring_seconds(model_dir: str, parts: list[str], out: str) -> float:
    """In a fresh process: load the model, score `parts` into `out` as `shopfloor predict` would; the seconds
    of scoring alone (the process's start and the model's loading are left out, as in `one_process`)."""
    import torch

    import shopfloor

    torch.set_num_threads(1)
    model = shopfloor.load(model_dir)
    if parts:  # a first call pays for lazy set-up, as the one process's model had paid before it was timed
        model.predict(pd.read_parquet(parts[0]).head(1000))
    with stopwatch() as elapsed:
        for part in parts:
            model.predict_file(part, Path(out) / Path(part).name)
    return elapsed()


def two_processes(model_dir: Path, parts: list[Path], out: Path) -> dict:
    """Two processes started together, each scoring half the files: the same two cores Spark runs on."""
    import json
    import subprocess
    import sys

    out.mkdir()
    halves = [parts[0::2], parts[1::2]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with stopwatch() as elapsed:
        runs = [subprocess.Popen([sys.executable, __file__, str(model_dir), str(out), *map(str, half)], env=env,
                                 stdout=subprocess.PIPE, text=True) for half in halves]
        seconds = [json.loads(run.communicate()[0].strip().splitlines()[-1])["seconds"] for run in runs]
    rows = sum(pq_rows(p) for p in parts)
    scored = pd.read_parquet(out, columns=OUTPUTS)
    return {"rows": rows, "seconds": max(seconds), "seconds_each": seconds, "wall_seconds_with_start": elapsed(),
            "rows_per_s": rows / max(seconds), **agreement(scored)}


def pq_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def batch_profile(model, sizes=(10_000, 50_000, 100_000, 200_000)) -> list[dict]:
    """Where one `mapInPandas` call's microseconds go, per row, for Arrow batches of each size."""
    import statistics

    import pyarrow as pa

    from shopfloor.spark.scoring import conform

    sample = model.predict(resampled_ai4i(100, seed=7))
    dtypes = sample.dtypes.to_dict()
    profile = []
    for size in sizes:
        batch = pa.Table.from_pandas(resampled_ai4i(size, seed=3), preserve_index=False)
        steps: dict[str, list[float]] = {"arrow_to_pandas": [], "predict": [], "conform_and_pandas_to_arrow": []}
        for _ in range(3):
            with stopwatch() as elapsed:
                frame = batch.to_pandas()
            steps["arrow_to_pandas"].append(elapsed())
            with stopwatch() as elapsed:
                table = model.predict(frame)
            steps["predict"].append(elapsed())
            with stopwatch() as elapsed:
                pa.RecordBatch.from_pandas(conform(table, dtypes), preserve_index=False)
            steps["conform_and_pandas_to_arrow"].append(elapsed())
        row = {"batch_rows": size, **{f"{k}_us_per_row": statistics.median(v) / size * 1e6 for k, v in steps.items()}}
        row["network_share_of_predict"] = network_share(model, frame)
        profile.append(row)
        print(row, flush=True)
    return profile


def network_share(model, frame: pd.DataFrame) -> float:
    """The share of one predict call spent in the network's forward passes (cProfile, cumulative)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    model.predict(frame)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    total = max(cum for (_, _, name), (_, _, _, cum, _) in stats.items() if name == "predict")
    network = max((cum for (path, _, name), (_, _, _, cum, _) in stats.items()
                   if path.endswith("network.py") and name == "forward"), default=0.0)
    return network / total


def on_spark(session, model_dir: Path, folder: Path, out: Path) -> dict:
    from shopfloor import spark as shopfloor_spark

    with PeakMemory() as memory, stopwatch() as elapsed:
        shopfloor_spark.predict(session.read.parquet(str(folder)), model_dir).write.parquet(str(out))
    seconds = elapsed()
    rows = session.read.parquet(str(out)).count()
    scored = pd.read_parquet(out, columns=OUTPUTS)
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "peak_rss_python": memory.python,
            "peak_rss_jvm": memory.jvm, **agreement(scored)}


def agreement(scored: pd.DataFrame) -> dict:
    return {"predicted_failures": int(scored["Machine failure predicted"].astype(int).sum()),
            "probability_sum": float(scored["Machine failure probability"].astype(np.float64).sum())}


def fleet_data(machines: int) -> pd.DataFrame:
    frame = resampled_ai4i(machines * FLEET_ROWS, seed=100)
    frame["machine"] = [f"machine-{i:03d}" for i in np.repeat(np.arange(machines), FLEET_ROWS)]
    return frame


def fleet_loop(frame: pd.DataFrame, registry: Path) -> float:
    from shopfloor.registry import Registry
    from shopfloor.tasks.tabular.model import TabularModel

    store = Registry(registry, create=True)
    with stopwatch() as elapsed, tempfile.TemporaryDirectory() as scratch:
        for name, rows in frame.groupby("machine", sort=True):
            model = TabularModel(**FLEET_OPTIONS, progress=False).fit(rows.drop(columns=["machine"]))
            store.add(name, model.save(Path(scratch) / name))
    return elapsed()


def spark_part(args) -> dict:
    import torch

    from shopfloor import spark as shopfloor_spark
    from shopfloor.tasks.tabular.model import TabularModel

    torch.set_num_threads(1)
    sizes = [int(n) for n in args.rows.split(",")]
    results: dict = {"scoring": [], "fleet": {}}
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        root = Path(scratch)
        with stopwatch() as elapsed:
            quick = {"bags": 2, "max_epochs": 2} if args.quick else {}
            model = TabularModel(TARGET, drop=DROP, progress=False, **quick).fit(pd.read_csv(data_file("ai4i2020/ai4i2020.csv")))
        model_dir = model.save(root / "model")
        results["model_train_seconds"] = elapsed()
        results["batch_profile"] = batch_profile(model)
        with stopwatch() as elapsed:
            session = shopfloor_spark.spark_session("local[2]", app_name="shopfloor-benchmark")
        results["spark_session_start_seconds"] = elapsed()
        warm = root / "warm-up"
        write_parts(warm, 1000)
        with stopwatch() as elapsed:  # both Python workers start, import torch and load the model: once per session
            shopfloor_spark.predict(session.read.parquet(str(warm)).repartition(2), model_dir).write.parquet(
                str(root / "warm-out"))
        results["spark_first_job_seconds_1000_rows"] = elapsed()
        for rows in sizes:
            folder = root / f"rows-{rows}"
            parts = write_parts(folder, rows)
            single = one_process(model, parts, root / f"single-{rows}")
            pair = two_processes(model_dir, parts, root / f"pair-{rows}")
            spark = on_spark(session, model_dir, folder, root / f"spark-{rows}")
            results["scoring"].append({"rows": rows, "one_process": single, "two_processes": pair, "spark_local2": spark})
            print(results["scoring"][-1], flush=True)
            for path in [folder, root / f"single-{rows}", root / f"pair-{rows}", root / f"spark-{rows}"]:
                import shutil

                shutil.rmtree(path)
        if args.machines:
            frame = fleet_data(args.machines)
            loop_seconds = fleet_loop(frame, root / "loop-registry")
            with stopwatch() as elapsed:
                summary = shopfloor_spark.train_per_group(session.createDataFrame(frame), "machine", "tabular",
                                                          FLEET_OPTIONS, root / "spark-registry", min_rows=50)
            results["fleet"] = {"machines": args.machines, "rows_per_machine": FLEET_ROWS, "loop_seconds": loop_seconds,
                                "spark_seconds": elapsed(), "spark_trained": int((summary["status"] == "trained").sum())}
            print(results["fleet"], flush=True)
        session.stop()
    return {"results": results, "targets": spark_targets(results)}


def two_rate(r: dict) -> str:
    """Two processes' rows/s and, at equal cores, Spark's share of it (1 - share = Spark's overhead)."""
    if "two_processes" not in r:
        return "-"
    share = r["spark_local2"]["rows_per_s"] / r["two_processes"]["rows_per_s"]
    return f"{r['two_processes']['rows_per_s']:,.0f} ({share:.2f})"


def spark_targets(results: dict) -> list[dict]:
    rows = [[f"{r['rows']:,}", f"{r['one_process']['rows_per_s']:,.0f}", two_rate(r), f"{r['spark_local2']['rows_per_s']:,.0f}",
             f"{r['one_process']['peak_rss_python'] / 2**20:,.0f}",
             f"{r['spark_local2']['peak_rss_python'] / 2**20:,.0f} + {r['spark_local2']['peak_rss_jvm'] / 2**20:,.0f}"]
            for r in results["scoring"]]
    print_table("scoring AI4I-like rows", ["rows", "one process rows/s", "two processes rows/s (Spark / two)",
                                           "Spark local[2] steady rows/s", "one process RSS MiB",
                                           "Spark driver RSS MiB (Python + JVM)"], rows)
    if len(results["scoring"]) >= 2:  # per-job fixed costs (the driver's sample job, scheduling) cancel out
        small, large = results["scoring"][0], results["scoring"][-1]
        results["spark_marginal_rows_per_s"] = ((large["rows"] - small["rows"])
                                                / (large["spark_local2"]["seconds"] - small["spark_local2"]["seconds"]))
        print(f"Spark marginal rows/s between the two sizes: {results['spark_marginal_rows_per_s']:,.0f}")
    targets = []
    for r in results["scoring"]:
        share = r["spark_local2"]["rows_per_s"] / r["one_process"]["rows_per_s"]
        targets.append(check(f"Spark local[2] steady rows/s / one process rows/s ({r['rows']:,} rows)", share, ">= 0.8",
                             share >= 0.8))
        same = (r["spark_local2"]["predicted_failures"] == r["one_process"]["predicted_failures"]
                and abs(r["spark_local2"]["probability_sum"] - r["one_process"]["probability_sum"])
                <= 1e-6 * r["one_process"]["probability_sum"])
        targets.append(check(f"same failures and probability sum ({r['rows']:,} rows)", float(same), "1", same))
    if len(results["scoring"]) >= 2:
        small, large = results["scoring"][0]["spark_local2"], results["scoring"][-1]["spark_local2"]
        growth = (large["peak_rss_python"] + large["peak_rss_jvm"]) / (small["peak_rss_python"] + small["peak_rss_jvm"])
        targets.append(check("driver peak RSS, largest / smallest size", growth, "<= 1.25", growth <= 1.25))
    if results["fleet"]:
        fleet = results["fleet"]
        targets.append(check(f"fleet of {fleet['machines']}: Spark seconds / loop seconds",
                             fleet["spark_seconds"] / fleet["loop_seconds"], "< 1",
                             fleet["spark_seconds"] < fleet["loop_seconds"]))
    print_targets(targets)
    return targets


if __name__ == "__main__":  # one of `two_processes`' halves: MODEL_DIR OUT PART...
    import json
    import sys

    print(json.dumps({"seconds": scoring_seconds(sys.argv[1], sys.argv[3:], sys.argv[2])}))
