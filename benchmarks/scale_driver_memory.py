"""The Spark driver's memory by data size, each size scored in a fresh driver process (issue 20).

`scale.py --part spark` samples the driver's RSS in the process that has also generated the rows, scored them
in one process and read the answers back for the agreement check, so memory freed there but kept by the
allocator reads as the Spark job's. Here the parent trains the model and writes the Parquet parts; every size
is then scored on `local[2]` by a new Python process that does nothing else, whose peak RSS (and its JVM's) is
sampled as in scale_spark.py.

    python benchmarks/scale_driver_memory.py [--rows 5000000,50000000] [--out results/scale_driver_memory.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import scale_spark  # noqa: E402
from _common import machine  # noqa: E402


def driver(model_dir: str, folder: str, out: str) -> None:
    from shopfloor import spark as shopfloor_spark

    session = shopfloor_spark.spark_session("local[2]", app_name="shopfloor-driver-memory")
    print("RESULT", json.dumps(scale_spark.on_spark(session, Path(model_dir), Path(folder), Path(out))), flush=True)
    session.stop()


def main() -> None:
    import pandas as pd
    import torch

    from shopfloor.tasks.tabular.model import TabularModel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="5000000,50000000")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scale_driver_memory.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        frame = pd.read_csv(scale_spark.data_file("ai4i2020/ai4i2020.csv"))
        model_dir = TabularModel(scale_spark.TARGET, drop=scale_spark.DROP, progress=False).fit(frame).save(root / "model")
        for rows in (int(n) for n in args.rows.split(",")):
            folder = root / f"rows-{rows}"
            scale_spark.write_parts(folder, rows)
            run = subprocess.run([sys.executable, __file__, "--driver", str(model_dir), str(folder), str(root / f"out-{rows}")],
                                 capture_output=True, text=True, check=True)
            result = json.loads([line for line in run.stdout.splitlines() if line.startswith("RESULT")][-1][7:])
            results.append(result)
            print(result, flush=True)
    growth = lambda key: results[-1][key] / results[0][key]  # noqa: E731
    summary = {"benchmark": "scale_driver_memory", "sizes": results,
               "python_growth": growth("peak_rss_python"), "jvm_growth": growth("peak_rss_jvm"),
               "machine": machine()}
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"driver Python x{summary['python_growth']:.2f}, JVM x{summary['jvm_growth']:.2f}; wrote {args.out}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--driver":
        driver(*sys.argv[2:5])
    else:
        main()
