"""SKAB, the monitor's decision rules: seed-to-seed spread, threshold margin x persistence, a median of seeds, other
ways to score a row (how the sensors combine, the error scale, a level branch),
and the half-split check of the settings chosen on SKAB (which files chose them, which files report them).

The leaderboard's protocol of benchmarks/skab.py (first 400 rows learnt, the rest scored, counts pooled). Each
file's model is trained once per seed with `persist=1`; its contributions on every row are kept, and every
rule is applied to them as the model applies it (error scale: 95th percentile of the held-out rows 300-399;
threshold: `margin` x their 99th percentile; a flag after `persist` steps above), so that rules differ in the
rule alone. The figures of tasks/monitor/model.py's docstring and the half-split table of benchmarks/README.md
come from this script (one thread; about 3 minutes per seed on a quiet core).

    .venv/bin/python benchmarks/skab_rules.py                      # seeds 0,1,2: results/skab-rules.json
    .venv/bin/python benchmarks/skab_rules.py --seeds 0 --files valve1/0,other/9   # a smoke test
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from _common import THREADS, limit_threads, machine, print_table, versions, write_json
from skab import SKAB, TRAIN_ROWS, experiment_files, file_result, read, score

from shopfloor.tasks.monitor.model import MonitorModel

HELD = slice(300, TRAIN_ROWS)  # the rows the model holds out of its 400 (holdout 0.25) to set its threshold
MARGINS = (1.5, 2.0, 2.5, 3.0)
PERSISTS = (1, 3, 5, 10)
DEFAULT = (2.0, 5)
VARIANTS = {"mean of 2 largest": {"combine": "mean of 2 largest"}, "root mean square": {"combine": "root mean square"},
            "mean": {"combine": "mean"}, "error scale: median": {"quantile": 0.5},
            "error scale: 99th percentile": {"quantile": 0.99}, "level branch x0.25": {"levels": 0.25},
            "level branch x1": {"levels": 1.0}}


def contributions(name: str, seed: int) -> tuple[np.ndarray, object]:
    """Every row's contributions before the error scale [rows, sensors], and the file's labels."""
    frame = read(SKAB / f"{name}.csv")
    model = MonitorModel(time="datetime", progress=False, seed=seed, persist=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(frame.iloc[:TRAIN_ROWS].drop(columns=["anomaly", "changepoint"]))
        table = model.explain(frame.drop(columns=["anomaly", "changepoint"]))
    return table[model.sensor_columns_].to_numpy(np.float64) * model.net_.error_scale.numpy(), frame


def relative_score(c: np.ndarray, margin: float, combine: str = "largest", quantile: float | None = 0.95) -> np.ndarray:
    """Raw score / threshold (1 = at the threshold), as the model computes them from its held-out rows; `combine`
    turns the scaled contributions of a row into its raw score (the model: the largest)."""
    scaled = c  # `quantile` None: scaled already (with_levels)
    if quantile is not None:
        scale = np.quantile(c[HELD], quantile, axis=0)
        scaled = c / np.where(scale > 1e-12, scale, max(float(scale.max()), 1e-12))
    raw = {"largest": lambda x: x.max(1), "mean of 2 largest": lambda x: np.sort(x, 1)[:, -2:].mean(1),
           "root mean square": lambda x: np.sqrt((x ** 2).mean(1)), "mean": lambda x: x.mean(1)}[combine](scaled)
    return raw / (margin * np.quantile(raw[HELD], 0.99))


def with_levels(c: np.ndarray, frame, weight: float) -> np.ndarray:
    """The contributions beside a level branch: every sensor not judged by its movement, its mean over the last 32
    steps against its mean and spread on the learnt rows 0-299, squared, x `weight` after its own held-out scale."""
    from shopfloor.tasks.monitor.network import slow_sensors

    x = frame.drop(columns=["datetime", "anomaly", "changepoint"]).to_numpy(np.float64)
    learnt = x[: HELD.start]
    mean, spread = learnt.mean(0), learnt.std(0)
    spread = np.where(spread > 1e-12, spread, 1.0)
    z = np.cumsum((x - mean) / spread, axis=0)
    window = 32
    before = np.vstack([np.zeros((window, x.shape[1])), z])[: len(z)]
    level = ((z - before) / np.minimum(np.arange(1, len(z) + 1), window)[:, None]) ** 2
    level[:, slow_sensors(np.diff(learnt, axis=0), spread, 1.0)] = 0.0
    level = level[:, level.max(0) > 0]
    scale = np.quantile(level[HELD], 0.95, axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    return np.hstack([c / np.quantile(c[HELD], 0.95, axis=0).clip(1e-12), weight * level / scale])


def persisted(flags: np.ndarray, steps: int) -> np.ndarray:
    run = np.zeros(len(flags), np.int64)
    count = 0
    for i, flag in enumerate(flags):
        count = count + 1 if flag else 0
        run[i] = count
    return run >= steps


def evaluate(cache: dict, files: list[str], seeds: list[int], margin: float, persist: int, levels: float = 0.0,
             **rule) -> dict:
    """Pooled scores of the median of the seeds' relative scores (one seed: that seed's)."""
    results = []
    for name in files:
        c = {s: with_levels(*cache[name, s], levels) if levels else cache[name, s][0] for s in seeds}
        if levels:
            rule = {**rule, "quantile": None}
        relative = np.median([relative_score(c[s], margin, **rule) for s in seeds], axis=0)
        flags = persisted(relative >= 1, persist).astype(np.int64)
        results.append(file_result(cache[name, seeds[0]][1], flags[TRAIN_ROWS:]))
    out = score(results)
    return {k: out[k] for k in ("f1", "far", "mar", "nab_standard")}


def mean_over_seeds(cache, files, seeds, margin, persist) -> dict:
    each = [evaluate(cache, files, [s], margin, persist) for s in seeds]
    return {k: float(np.mean([e[k] for e in each])) for k in each[0]}


def half_split(cache: dict, files: list[str], seeds: list[int]) -> list[dict]:
    """Settings chosen on one half (best mean F1, ties within 0.005 broken by NAB), reported on the other."""
    valve1 = [f for f in files if f.startswith("valve1/")]
    halves = {"valve1": valve1, "valve2 + other": [f for f in files if f not in valve1],
              "even files": files[0::2], "odd files": files[1::2]}
    pairs = [("valve1", "valve2 + other"), ("valve2 + other", "valve1"), ("even files", "odd files"),
             ("odd files", "even files")]
    rows = []
    for chosen_on, reported_on in pairs:
        if not halves[chosen_on] or not halves[reported_on]:
            continue
        grid = {(m, p): mean_over_seeds(cache, halves[chosen_on], seeds, m, p) for m in MARGINS for p in PERSISTS}
        best = max(v["f1"] for v in grid.values())
        chosen = max((k for k, v in grid.items() if v["f1"] >= best - 0.005), key=lambda k: grid[k]["nab_standard"])
        rows.append({"chosen_on": chosen_on, "files": len(halves[chosen_on]), "chosen": chosen,
                     "reported_on": reported_on,
                     "with_chosen": mean_over_seeds(cache, halves[reported_on], seeds, *chosen),
                     "with_defaults": mean_over_seeds(cache, halves[reported_on], seeds, *DEFAULT)})
    return rows


def line(v: dict) -> list[str]:
    return [f"{v['f1']:.3f}", f"{100 * v['far']:.1f}", f"{100 * v['mar']:.1f}", f"{v['nab_standard']:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", help="comma-separated files such as valve1/0,other/9 (default: all 34)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", help="JSON path (default benchmarks/results/skab-rules.json)")
    args = parser.parse_args()
    limit_threads(THREADS)
    files, seeds = experiment_files(args.files), [int(s) for s in args.seeds.split(",")]
    cache = {}
    for seed in seeds:
        for name in files:
            cache[name, seed] = contributions(name, seed)
        print(f"seed {seed}: {len(files)} files trained")
    result = {"files": files, "seeds": seeds, "threads": THREADS, "machine": machine(), "versions": versions(),
              "per_seed": {f"{s}, margin {m:g}, persist {p}": evaluate(cache, files, [s], m, p)
                           for s in seeds for m, p in ((2.0, 1), DEFAULT)},
              "grid_mean_over_seeds": {f"margin {m:g}, persist {p}": mean_over_seeds(cache, files, seeds, m, p)
                                       for m in MARGINS for p in PERSISTS},
              "median_of_seeds": {f"margin {m:g}, persist {p}": evaluate(cache, files, seeds, m, p)
                                  for m, p in ((2.0, 1), DEFAULT)},
              "half_split": half_split(cache, files, seeds),
              "variants_seed_0": {f"{name}, margin {m:g}": evaluate(cache, files, seeds[:1], m, 1, **rule)
                                  for name, rule in VARIANTS.items() for m in MARGINS}}
    columns = ["F1", "FAR %", "MAR %", "NAB"]
    print_table("per seed", ["seed, rule", *columns], [[k, *line(v)] for k, v in result["per_seed"].items()])
    print_table("mean over seeds", ["rule", *columns], [[k, *line(v)] for k, v in result["grid_mean_over_seeds"].items()])
    print_table("other rules (seed 0, persist 1)", ["rule", *columns],
                [[k, *line(v)] for k, v in result["variants_seed_0"].items()])
    print_table("median of the seeds' scores", ["rule", *columns], [[k, *line(v)] for k, v in result["median_of_seeds"].items()])
    print_table("half split: chosen on one half, reported on the other (mean over seeds)",
                ["chosen on", "margin, persist", "reported on", *columns, "defaults there: F1"],
                [[r["chosen_on"], f"{r['chosen'][0]:g}, {r['chosen'][1]}", r["reported_on"], *line(r["with_chosen"]),
                  f"{r['with_defaults']['f1']:.3f}"] for r in result["half_split"]])
    print(f"written {write_json('skab-rules', result, args.out)}")


if __name__ == "__main__":
    main()
