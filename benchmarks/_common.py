"""Shared helpers of the benchmark scripts: data paths, threads, timing, machine facts, tables, JSON.

Kept small on purpose: each benchmark script should read top to bottom on its own.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import resource
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
# both systems get the same cores: torch intra-op threads and LightGBM n_jobs; BENCH_THREADS=1 when two
# benchmarks share the two cores (two threads each would wait on each other)
THREADS = int(os.environ.get("BENCH_THREADS", 2))


def data_file(relative: str) -> Path:
    """A file under ../shared/data (relative to the repo root); exit with a clear message when absent."""
    path = DATA_ROOT / relative
    if not path.is_file():
        sys.exit(f"benchmark data not found: {path}\n"
                 f"The benchmarks read the shared data sets from {DATA_ROOT} "
                 f"(a 'shared/data' folder next to the repository); put {relative} there and run again.")
    return path


def limit_threads(threads: int = THREADS) -> None:
    import torch

    torch.set_num_threads(threads)


@contextmanager
def stopwatch():
    """`with stopwatch() as t: ...` then `t()` is the elapsed seconds (frozen at exit)."""
    started = time.perf_counter()
    stopped: list[float] = []
    try:
        yield lambda: (stopped[0] if stopped else time.perf_counter()) - started
    finally:
        stopped.append(time.perf_counter())


def median_rate(run: Callable[[], object], count: int, repeats: int = 3, warm_up: Callable[[], object] | None = None) -> float:
    """`count` / seconds of `run()`: the median of `repeats` timed calls after one warm-up call
    (`warm_up`, or `run` itself) that pays for lazy initialisation."""
    (warm_up or run)()
    rates = []
    for _ in range(repeats):
        with stopwatch() as elapsed:
            run()
        rates.append(count / elapsed())
    return float(np.median(rates))


def rows_per_second(predict: Callable[[object], object], frame, min_rows: int = 200_000, repeats: int = 3) -> dict:
    """Throughput of `predict` on `frame` replicated to at least `min_rows` rows (an in-memory DataFrame).

    One warm-up call (on `frame` itself: lazy initialisation, first-call overheads), then the median
    of `repeats` timed calls on the replicated table.
    """
    import pandas as pd

    copies = max(1, math.ceil(min_rows / len(frame)))
    big = pd.concat([frame] * copies, ignore_index=True)
    predict(frame)
    seconds = []
    for _ in range(repeats):
        with stopwatch() as elapsed:
            predict(big)
        seconds.append(elapsed())
    median = float(np.median(seconds))
    return {"rows": len(big), "seconds": median, "rows_per_s": len(big) / median}


class LightGBMInput:
    """Raw table -> LightGBM input: the feature columns, text settings as pandas categories (whitespace
    stripped, levels fixed at training time), dates as days since 1970, names LightGBM accepts."""

    def __init__(self, frame, exclude: Iterable[str], dates: Iterable[str] = ()):
        import pandas as pd

        exclude, self.dates = set(exclude), list(dates)
        self.columns = [c for c in frame.columns if c not in exclude]
        self.categories = {c: sorted(frame[c].dropna().astype(str).str.strip().unique())
                           for c in self.columns
                           if c not in self.dates and not pd.api.types.is_numeric_dtype(frame[c])}
        self.names = [re.sub(r"[^0-9A-Za-z_]+", "_", c).strip("_") for c in self.columns]  # no JSON characters

    def __call__(self, frame):
        import pandas as pd

        table = frame[self.columns].copy()
        for name in self.dates:
            stamps = pd.to_datetime(table[name].astype(str).str.strip(), format="mixed")
            table[name] = (stamps - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
        for name, levels in self.categories.items():
            table[name] = pd.Categorical(table[name].astype(str).str.strip(), categories=levels)
        table.columns = self.names
        return table


def sample_lightgbm_params(rng: np.random.Generator) -> dict:
    """One random point of the tuning space (log-uniform where the scale matters)."""

    def log_uniform(low, high):
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))

    return {
        "num_leaves": int(round(log_uniform(4, 128))),
        "learning_rate": log_uniform(0.01, 0.3),
        "n_estimators": int(round(log_uniform(50, 1000))),
        "min_child_samples": int(round(log_uniform(3, 100))),
        "subsample": float(rng.uniform(0.5, 1.0)),
        "subsample_freq": 1,
        "colsample_bytree": float(rng.uniform(0.5, 1.0)),
        "reg_lambda": log_uniform(1e-3, 30.0),
    }


class OverBudget(Exception):
    """A tuning candidate ran past the search deadline."""


def stop_at(deadline: float | None) -> list:
    """LightGBM `callbacks=` that abort training (raise OverBudget) once `deadline` (perf_counter) has passed."""
    if deadline is None:
        return []

    def check(env) -> None:
        if time.perf_counter() > deadline:
            raise OverBudget

    return [check]


def random_search(score: Callable[[dict, float | None], tuple[float, object]], budget_s: float, seed: int = 0,
                  refit_share: float = 0.5) -> dict:
    """Random search under a wall-clock budget; higher `score(params, deadline)` is better.

    The first candidate is LightGBM's defaults ({}) and always completes, so the search never ends up
    worse than them on its own inner CV. Later candidates get a deadline (pass `stop_at(deadline)` as
    LightGBM callbacks): the budget less a reserve for refitting the best candidate (`refit_share` of its
    inner-CV time); a candidate that reaches it is dropped and the search ends. The caller refits the best.
    """
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    trials, best, params, deadline = [], None, {}, None
    while True:
        try:
            with stopwatch() as elapsed:
                value, extra = score(params, deadline)
        except OverBudget:
            trials.append({"params": params, "score": None, "seconds": elapsed(), "stopped": True})
            break
        trials.append({"params": params, "score": float(value), "seconds": elapsed()})
        if best is None or value > best["score"]:
            best = {"params": params, "score": float(value), "seconds": elapsed(), "extra": extra}
        deadline = started + budget_s - refit_share * best["seconds"]
        if time.perf_counter() >= deadline:
            break
        params = sample_lightgbm_params(rng)
    return {"best": best, "trials": trials, "search_seconds": time.perf_counter() - started}


def import_lightgbm():
    """Import LightGBM and fit once on a few random rows, outside the timed sections.

    The import and the first fit (OpenMP start-up, lazy imports) cost seconds on a busy machine; they
    are a one-off cost of the process, not of training on a fold.
    """
    import lightgbm

    if not getattr(import_lightgbm, "warm", False):
        rng = np.random.default_rng(0)
        lightgbm.LGBMRegressor(n_estimators=5, n_jobs=THREADS, verbose=-1).fit(rng.random((200, 4)), rng.random(200))
        import_lightgbm.warm = True
    return lightgbm


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def machine() -> dict:
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "lightgbm_n_jobs": THREADS,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }


def versions(packages: Iterable[str] = ("shopfloor", "torch", "lightgbm", "scikit-learn", "pandas", "numpy")) -> dict:
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def summarise(per_fold: list[dict]) -> dict:
    """Mean and (population) std over folds of every numeric key but the fold number."""
    keys = [k for k, v in per_fold[0].items()
            if k != "fold" and isinstance(v, int | float) and not isinstance(v, bool)]
    return {
        "mean": {k: float(np.nanmean([f[k] for f in per_fold])) for k in keys},
        "std": {k: float(np.nanstd([f[k] for f in per_fold])) for k in keys},
    }


def mean_std(summary: dict, key: str, digits: int = 3) -> str:
    mean, std = summary["mean"].get(key), summary["std"].get(key)
    if mean is None or not np.isfinite(mean):
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A rich table when rich is installed, plain aligned text otherwise."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(str(x)) for x in [c] + [r[i] for r in rows]) for i, c in enumerate(columns)]
        print(f"\n{title}")
        print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True)))
        for row in rows:
            print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
        return
    table = Table(title=title)
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*map(str, row))
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def check(name: str, value: float, goal: str, met: bool) -> dict:
    return {"target": name, "value": value, "goal": goal, "met": bool(met)}


def print_targets(targets: list[dict]) -> None:
    rows = [[t["target"], _short(t["value"]), t["goal"], "met" if t["met"] else "NOT met"] for t in targets]
    print_table("targets", ["target", "value", "goal", "status"], rows)


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def write_json(name: str, result: dict, out: Path | None = None) -> Path:
    """Write `result` to benchmarks/results/<name>.json (or `out`), atomically, with a timestamp."""
    path = Path(out) if out is not None else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "finished": datetime.now(UTC).isoformat(timespec="seconds"), **result}
    if isinstance(result.get("machine"), dict) and hasattr(os, "getloadavg"):
        # other work on the machine skews every timing: keep the evidence next to the numbers
        result["machine"] = {**result["machine"], "load_average_at_end": list(os.getloadavg())}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_plain(result), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _plain(value):
    """numpy scalars/arrays -> Python, NaN/inf -> None, so the JSON is strict."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
