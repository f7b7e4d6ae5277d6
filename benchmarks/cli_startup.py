"""How fast `shopfloor --help` answers: the CLI must not import torch or pandas to print its help.

Runs the installed entry point as a fresh process several times and reports the median
wall time. Target (issue 2): under 1 second on 2 cores.

    python benchmarks/cli_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import check, machine, print_table, print_targets, versions, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    executable = shutil.which("shopfloor", path=str(Path(sys.executable).parent)) or "shopfloor"
    command = [executable, "--help"]
    subprocess.run(command, check=True, capture_output=True)  # warm the file cache
    seconds = []
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        seconds.append(time.perf_counter() - started)
    median = statistics.median(seconds)
    print_table("shopfloor --help", ["runs", "median s", "min s", "max s"],
                [[str(args.runs), f"{median:.3f}", f"{min(seconds):.3f}", f"{max(seconds):.3f}"]])
    targets = [check("shopfloor --help", median, "< 1 s", median < 1.0)]
    print_targets(targets)
    write_json("cli_startup", {"protocol": f"{args.runs} fresh processes of '{' '.join(command)}' after one warm-up",
                               "machine": machine(), "versions": versions(), "seconds": seconds,
                               "median_seconds": median, "targets": targets})


if __name__ == "__main__":
    main()
