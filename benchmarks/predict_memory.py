"""Peak memory of `shopfloor predict` on CSV files of growing size: does streaming keep it flat?

Protocol (also written into the JSON):
- model: a small TabularModel on the shipped AI4I data (target "Machine failure", the failure modes
  dropped, max_epochs=5, bags=2; the quality is irrelevant here), or the model folder given with --model
  (it must accept the AI4I columns);
- data: CSV files of about 0.25 and 1.0 GB (decimal, --gigabytes) made by repeating the 10,000 AI4I rows,
  with UDI renumbered so every row has its own id; written in blocks to a temporary folder, never held in
  memory, and each deleted after its run;
- each size: one `python -m shopfloor predict --model M --data BIG.csv --out OUT.csv` subprocess (the CLI
  a user runs, default --chunk-rows unless --chunk-rows is given, torch's default threads);
- peak RSS: the kernel's high-water mark of resident memory (ru_maxrss) of that subprocess, read by a bare
  helper interpreter that starts it and reports getrusage(RUSAGE_CHILDREN) (not by this process: a child
  inherits its parent's high-water mark through fork and exec, and this one holds torch and the model);
  when /usr/bin/time exists the command also runs under `/usr/bin/time -v`, whose "Maximum resident set
  size" is kept as a cross-check;
- wall seconds: the whole subprocess (interpreter start, imports, model load, read, predict, write);
  rows/s = input rows / wall seconds;
- check: the output CSV has exactly as many data rows as the input (newline count less the header;
  neither file has quoted line breaks);
- also a baseline run on the shipped 10,000-row file: the fixed cost of the interpreter, torch and pandas;
- verdict: peak RSS <= 2 GiB for every size, and it does not grow with the file size: the largest file's
  peak over the smallest's <= 1.10 (--max-growth).

    .venv/bin/python benchmarks/predict_memory.py                       # 0.25 and 1.0 GB
    .venv/bin/python benchmarks/predict_memory.py --gigabytes 0.1,0.5   # smaller files, a busy machine
    .venv/bin/python benchmarks/predict_memory.py --model path/to/model # reuse a saved AI4I model
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO_ROOT, check, limit_threads, machine, print_table, print_targets, versions, write_json

from shopfloor.demo.data import AI4I_FAILURE_MODES, AI4I_TARGET, demo_file

GNU_TIME = Path("/usr/bin/time")
MIB = 1024**2
BLOCK_COPIES = 20  # AI4I copies per write: about 10 MB, so the generator's memory stays small
# runs one command and writes the peak RSS of its children (here: only that command) to argv[1]
HELPER = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
          "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
          "sys.exit(code)")
PROTOCOL = __doc__.split("Protocol (also written into the JSON):\n", 1)[1].split("\n\n", 1)[0]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gigabytes", default="0.25,1.0",
                        help="comma-separated CSV sizes in GB (10^9 bytes), smallest first (default 0.25,1.0)")
    parser.add_argument("--model", type=Path, default=None,
                        help="a saved model folder that accepts the AI4I columns (default: train a small one)")
    parser.add_argument("--chunk-rows", type=int, default=None,
                        help="passed to `shopfloor predict --chunk-rows` (default: the CLI's own default)")
    parser.add_argument("--limit-mib", type=float, default=2048.0, help="peak RSS goal in MiB (default 2048)")
    parser.add_argument("--max-growth", type=float, default=1.10,
                        help="largest over smallest peak RSS that still counts as flat (default 1.10)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per predict run")
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where the big files go (default: system temp)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the run on the shipped 10,000-row file")
    parser.add_argument("--note", default=None, help="free text kept in the JSON (why sizes were changed, ...)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default benchmarks/results/predict_memory.json)")
    args = parser.parse_args(argv)
    try:
        args.sizes = sorted(float(s) for s in args.gigabytes.split(",") if s.strip())
    except ValueError:
        parser.error(f"--gigabytes: expected numbers like 0.25,1.0, got '{args.gigabytes}'")
    if not args.sizes or min(args.sizes) <= 0:
        parser.error("--gigabytes: give at least one positive size")
    if args.model is not None and not (args.model / "manifest.json").is_file():
        parser.error(f"--model: {args.model} is not a shopfloor model folder (no manifest.json)")
    return args


# -- the model and the data -------------------------------------------------------------
def train_model(folder: Path) -> dict:
    from shopfloor.tasks.tabular.model import TabularModel

    limit_threads()
    model = TabularModel(AI4I_TARGET, drop=AI4I_FAILURE_MODES, max_epochs=5, bags=2, progress=False)
    model.fit(demo_file("ai4i2020.csv.gz")).save(folder)
    return {"source": "trained here", "params": "max_epochs=5, bags=2, drop failure modes",
            "train_seconds": model.train_seconds_, "ids": model.schema_.ids, "features": model.schema_.features}


def ai4i_rows() -> tuple[bytes, list[bytes], int]:
    """The AI4I header line and each row without its leading UDI ('M14860,M,...\\n'), and the row count."""
    with gzip.open(demo_file("ai4i2020.csv.gz"), "rt", encoding="utf-8-sig", newline="") as handle:
        header, *lines = handle.read().splitlines(keepends=True)
    if not header.startswith("UDI,"):
        raise SystemExit(f"unexpected AI4I header: {header[:60]!r}")
    rests = [line.split(",", 1)[1].rstrip("\r\n").encode() + b"\n" for line in lines if line.strip()]
    return header.rstrip("\r\n").encode() + b"\n", rests, len(rests)


def write_big_csv(path: Path, target_bytes: int, header: bytes, rests: list[bytes]) -> tuple[int, int]:
    """Repeat the AI4I rows (UDI 1, 2, 3, ... throughout) until the file holds `target_bytes`; (rows, bytes)."""
    rows, size = 0, len(header)
    with path.open("wb") as handle:
        handle.write(header)
        while size < target_bytes:
            block = []
            for _ in range(BLOCK_COPIES):
                for rest in rests:
                    rows += 1
                    line = b"%d," % rows + rest
                    block.append(line)
                    size += len(line)
                    if size >= target_bytes:
                        break
                if size >= target_bytes:
                    break
            handle.write(b"".join(block))
    return rows, path.stat().st_size


def count_data_rows(path: Path) -> int:
    """Data rows of a CSV without quoted line breaks: newlines less the header (a last line without one counts)."""
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        while block := handle.read(16 * MIB):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n") - 1


# -- one measured run ---------------------------------------------------------------------
def run_predict(model: Path, data: Path, out: Path, workdir: Path, chunk_rows: int | None, timeout: float) -> dict:
    """`shopfloor predict` as its own process, started by a small helper that reports its peak RSS.

    Why a helper: a process forked from this one starts with this one's high-water mark (Linux carries the
    parent's peak RSS over fork and exec into the child's ru_maxrss), and this process holds torch and a
    trained model. The helper is a bare interpreter, so the predict process it starts is measured on its own.
    """
    command = [sys.executable, "-m", "shopfloor", "predict", "--model", str(model), "--data", str(data),
               "--out", str(out)]
    if chunk_rows is not None:
        command += ["--chunk-rows", str(chunk_rows)]
    time_report = workdir / f"{data.stem}.time.txt"
    if GNU_TIME.exists():
        command = [str(GNU_TIME), "-v", "-o", str(time_report)] + command
    peak_report, log = workdir / f"{data.stem}.maxrss.txt", workdir / f"{data.stem}.log"
    started = time.perf_counter()
    with log.open("wb") as output:
        # own session: on a timeout or an interrupt the whole group (helper, time, python) is killed
        process = subprocess.Popen([sys.executable, "-I", "-c", HELPER, str(peak_report), *command], stdout=output,
                                   stderr=subprocess.STDOUT, cwd=REPO_ROOT, start_new_session=True)
        try:
            returncode = process.wait(timeout=timeout)
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    wall = time.perf_counter() - started
    if returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"shopfloor predict on {data.name} exited with {returncode}:\n{tail}")
    # Linux reports ru_maxrss in KiB, macOS in bytes
    peak = int(peak_report.read_text()) * (1 if sys.platform == "darwin" else 1024)
    result = {"wall_s": wall, "peak_rss_mib": peak / MIB, "peak_rss_mib_time_v": None}
    if time_report.exists():
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_report.read_text())
        result["peak_rss_mib_time_v"] = int(found.group(1)) * 1024 / MIB if found else None
    return result


def measure(label: str, model: Path, data: Path, rows: int, workdir: Path, args) -> dict:
    out = workdir / f"{data.stem}.predictions.csv"
    print(f"{label}: predicting {rows:,} rows ({data.stat().st_size / 1e9:.3f} GB) ...", flush=True)
    run = run_predict(model, data, out, workdir, args.chunk_rows, args.timeout)
    output_rows = count_data_rows(out)
    entry = {"size": label, "input_bytes": data.stat().st_size, "rows": rows, "output_rows": output_rows,
             "rows_match": output_rows == rows, "output_bytes": out.stat().st_size, **run,
             "rows_per_s": rows / run["wall_s"]}
    out.unlink()
    print(f"  peak RSS {entry['peak_rss_mib']:.0f} MiB, {entry['wall_s']:.1f} s, {entry['rows_per_s']:,.0f} rows/s, "
          f"output rows {'match' if entry['rows_match'] else 'DO NOT match'}", flush=True)
    return entry


def cli_chunk_rows() -> int | None:
    """The default of `shopfloor predict --chunk-rows`."""
    import inspect

    from shopfloor.cli import use

    parameter = inspect.signature(use.predict).parameters.get("chunk_rows")
    return None if parameter is None else parameter.default


# -- the benchmark ----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # a plain `kill` should also clean up the big files: turn SIGTERM into SystemExit so `finally` runs
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    info = {"machine": machine(), "versions": versions(("shopfloor", "torch", "pandas", "numpy", "pyarrow"))}
    workdir = Path(tempfile.mkdtemp(prefix="shopfloor-predict-memory-", dir=args.tmp_dir))
    runs, baseline = [], None
    try:
        if args.model is None:
            model = workdir / "model"
            print("training a small AI4I model (max_epochs=5, bags=2) ...", flush=True)
            model_info = train_model(model)
        else:
            model, model_info = args.model, {"source": str(args.model)}
        if args.baseline:
            baseline = measure("baseline", model, demo_file("ai4i2020.csv.gz"), 10_000, workdir, args)
        header, rests, _ = ai4i_rows()
        for gigabytes in args.sizes:
            data = workdir / f"ai4i-{gigabytes:g}GB.csv"
            started = time.perf_counter()
            rows, size = write_big_csv(data, int(gigabytes * 1e9), header, rests)
            print(f"wrote {data.name}: {rows:,} rows, {size / 1e9:.3f} GB in {time.perf_counter() - started:.1f} s",
                  flush=True)
            runs.append({"gigabytes": gigabytes, **measure(f"{gigabytes:g} GB", model, data, rows, workdir, args)})
            data.unlink()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    peaks = [r["peak_rss_mib"] for r in runs]
    growth, rows_match = peaks[-1] / peaks[0], all(r["rows_match"] for r in runs)
    targets = [
        check("peak RSS, largest over all sizes (MiB)", max(peaks), f"<= {args.limit_mib:g}",
              max(peaks) <= args.limit_mib),
        check(f"peak RSS growth, {runs[-1]['size']} / {runs[0]['size']}", growth, f"<= {args.max_growth:g}",
              growth <= args.max_growth),
        check("output rows == input rows", rows_match, "True", rows_match),
    ]
    flat = targets[0]["met"] and targets[1]["met"]
    statement = (f"peak RSS {'stays' if targets[0]['met'] else 'does NOT stay'} <= {args.limit_mib:g} MiB "
                 f"(max {max(peaks):.0f} MiB) and {'does not grow' if targets[1]['met'] else 'GROWS'} with file "
                 f"size ({runs[-1]['size']}: {peaks[-1]:.0f} MiB, {runs[0]['size']}: {peaks[0]:.0f} MiB, "
                 f"ratio {growth:.3f})")

    table = [[r["size"], f"{r['rows']:,}", f"{r['input_bytes'] / 1e9:.3f}", f"{r['peak_rss_mib']:.0f}",
              "-" if r["peak_rss_mib_time_v"] is None else f"{r['peak_rss_mib_time_v']:.0f}",
              f"{r['wall_s']:.1f}", f"{r['rows_per_s']:,.0f}", "yes" if r["rows_match"] else "NO"]
             for r in ([baseline] if baseline else []) + runs]
    print_table("shopfloor predict: one subprocess per file",
                ["file", "rows", "GB", "peak RSS MiB", "time -v MiB", "wall s", "rows/s", "rows match"], table)
    print_targets(targets)
    print(statement)

    path = write_json("predict_memory", {
        "protocol": PROTOCOL,
        "command": " ".join([Path(sys.executable).name, *sys.argv]) if argv is None else argv,
        "note": args.note,
        **info,
        "model": model_info,
        "chunk_rows": args.chunk_rows if args.chunk_rows is not None else cli_chunk_rows(),
        "gigabytes": args.sizes,
        "baseline": baseline,
        "runs": runs,
        "peak_rss_mib": {r["size"]: r["peak_rss_mib"] for r in runs},
        "rows_per_s": {r["size"]: r["rows_per_s"] for r in runs},
        "growth_ratio": growth,
        "targets": targets,
        "memory_flat_and_within_limit": flat,
        "statement": statement,
    }, args.out)
    print(f"wrote {path}")
    return 0 if all(t["met"] for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
