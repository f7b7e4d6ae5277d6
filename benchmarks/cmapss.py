"""NASA C-MAPSS remaining useful life: shopfloor RULModel against LightGBM on window features, same run.

Protocol (also written into the JSON):
- each subset FD001-FD004: train on train_FD00x.txt (every unit, run to failure), test on the
  last cycle of every unit of test_FD00x.txt against RUL_FD00x.txt;
- test labels as given, NOT capped ("rmse"); because most published figures clip the test labels
  at the training cap too, "rmse_capped" (labels clipped at 125) is reported beside it;
- NASA score: sum over test units of exp(-d/13)-1 (early) or exp(d/10)-1 (late), d = predicted - true;
- coverage: share of test units whose true RUL (as given) lies in the nominal 90 % interval;
- interval by band of true RUL (0-25, 25-50, 50-75, 75-125, >= 125 cycles, fixed before measuring):
  coverage and mean width of the model's interval (margins below and above the estimate per band
  of the estimate) and of the one margin on P10-P90 it replaced, from the same model on the same
  cycles: the out-of-fold cycles of the training units it calibrated on, every cycle of the test
  units (true RUL = the given RUL of the last cycle + the cycles after) and their last cycles;
- 5 seeds per subset (seed changes the unit folds, initialisation and batches); mean ± std and a
  95 % t confidence interval of the mean over seeds;
- shopfloor: RULModel defaults (window 40, cap 125, 5 cross-fitted CNN members); training time is
  wall clock from raw file to a model that predicts, one thread per training step;
- LightGBM baseline: per-condition standardised sensors (the same k-means conditions as shopfloor,
  so that the comparison is about the model), last value, 30-cycle mean, 30-cycle slope of every
  moving sensor plus the unit's age, target capped at 125; LGBMRegressor(n_estimators=400,
  learning_rate=0.03, subsample=0.8, colsample_bytree=0.8, n_jobs=2, seed);
- inference: units per second of RULModel.predict on the test units copied to at least 10,000 units
  (raw rows in, one RUL and interval per unit out), median of 3 after a warm-up call.

    .venv/bin/python benchmarks/cmapss.py                                   # all four subsets x 5 seeds
    .venv/bin/python benchmarks/cmapss.py --subsets FD001,FD003 --seeds 5   # part of it (results merge)
    .venv/bin/python benchmarks/cmapss.py --quick                           # smoke test
    .venv/bin/python benchmarks/cmapss.py --subsets FD002,FD003,FD004 --seeds 1 --out benchmarks/results/cmapss-seed0.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _common import (
    RESULTS,
    THREADS,
    check,
    data_file,
    import_lightgbm,
    limit_threads,
    machine,
    peak_rss_bytes,
    print_table,
    print_targets,
    stopwatch,
    versions,
    write_json,
)

from shopfloor.data.runs import RunHistory, read_rul, read_runs
from shopfloor.metrics import interval_metrics, rul_metrics
from shopfloor.tasks.rul.conditions import fit_conditions
from shopfloor.tasks.rul.interval import by_band, finish_arguments, one_margin
from shopfloor.tasks.rul.model import RULModel
from shopfloor.tasks.rul.network import finish

SUBSETS = ("FD001", "FD002", "FD003", "FD004")
TARGET_RMSE = {"FD001": 11.5, "FD002": 12.5, "FD003": 11.5, "FD004": 13.0}
CAP = 125.0
INFERENCE_UNITS = 10_000
REPORTED = ("rmse", "rmse_capped", "mae", "nasa_score", "coverage", "interval_width", "train_minutes")
TRUE_RUL_EDGES = (25.0, 50.0, 75.0, 125.0)
INTERVAL_SETS = ("out_of_fold", "test_every_cycle", "test_last_cycle")


class KeepsOutOfFold(RULModel):
    """RULModel that keeps the out-of-fold outputs it calibrates on, so both intervals score the same cycles."""

    def _calibrate(self, outputs: np.ndarray, rul: np.ndarray) -> None:
        self.out_of_fold_ = (outputs, rul)
        super()._calibrate(outputs, rul)


def score(truth: np.ndarray, rul: np.ndarray, low: np.ndarray | None = None, high: np.ndarray | None = None) -> dict:
    metrics = rul_metrics(truth, rul)
    metrics["rmse_capped"] = rul_metrics(np.minimum(truth, CAP), rul)["rmse"]
    if low is not None:
        metrics.update(interval_metrics(truth, low, high))
    return metrics


def window_features(runs: RunHistory, conditions: dict | None, sensors: list[str], window: int = 30):
    """Per cycle: last value, rolling mean and slope of per-condition standardised sensors, and age."""
    settings = runs.frame[runs.settings].to_numpy(np.float64)
    if conditions is None:
        conditions = fit_conditions(settings, None, seed=0)
        values = runs.frame[sensors].to_numpy(np.float64)
        conditions["mean"] = np.stack([values[conditions["labels"] == c].mean(0) for c in range(conditions["k"])])
        conditions["std"] = np.stack([values[conditions["labels"] == c].std(0) + 1e-9 for c in range(conditions["k"])])
    scaled = settings / conditions["scale"] if settings.shape[1] else settings
    label = ((scaled[:, None, :] - conditions["centroids"][None]) ** 2).sum(-1).argmin(1) if settings.shape[1] else 0
    z = (runs.frame[sensors].to_numpy(np.float64) - conditions["mean"][label]) / conditions["std"][label]
    units = runs.frame[runs.unit].to_numpy()
    t = pd.Series(runs.frame.groupby(runs.unit).cumcount().to_numpy(np.float64))

    def rolling_mean(values):
        rolled = values.groupby(units).rolling(window, min_periods=1).mean()
        return rolled.reset_index(level=0, drop=True).sort_index().to_numpy()

    table = pd.DataFrame(z, columns=sensors)
    mean, t_mean = rolling_mean(table), rolling_mean(t)
    variance = (rolling_mean(t * t) - t_mean**2)[:, None]
    slope = (rolling_mean(table.mul(t, axis=0)) - mean * t_mean[:, None]) / np.where(variance > 0, variance, np.inf)
    features = np.hstack([z, mean, slope, t.to_numpy()[:, None] + 1])
    return features, conditions


def lightgbm_baseline(train: RunHistory, test: RunHistory, sensors: list[str], seed: int) -> tuple[np.ndarray, float]:
    lightgbm = import_lightgbm()
    with stopwatch() as elapsed:
        features, conditions = window_features(train, None, sensors)
        life = train.frame.groupby(train.unit)[train.time].transform("count").to_numpy()
        rul = life - 1 - train.frame.groupby(train.unit).cumcount().to_numpy()
        model = lightgbm.LGBMRegressor(n_estimators=400, learning_rate=0.03, subsample=0.8, subsample_freq=1,
                                       colsample_bytree=0.8, n_jobs=THREADS, random_state=seed, verbose=-1)
        model.fit(features, np.minimum(rul, CAP))
    test_features, _ = window_features(test, conditions, sensors)
    last = np.flatnonzero(np.r_[test.frame[test.unit].to_numpy()[1:] != test.frame[test.unit].to_numpy()[:-1], True])
    return np.clip(model.predict(test_features[last]), 0, None), elapsed()


def intervals(raw: np.ndarray, bands: dict) -> np.ndarray:
    """[rul, low, high] from raw ensemble outputs under the given bands, as the model's graph computes them."""
    *margins, around = finish_arguments(bands)
    with torch.no_grad():
        return finish(torch.as_tensor(raw, dtype=torch.float32), *(torch.tensor(m, dtype=torch.float32)
                                                                   for m in margins), around).numpy().astype(float)


def interval_comparison(model: KeepsOutOfFold, test: RunHistory, truth: np.ndarray, table: pd.DataFrame) -> dict:
    """Coverage and width by band of true RUL, of the banded interval and of the one margin, on the same cycles."""
    inputs, after, unit_index, _ = model._windows(test)
    raw = model._member_outputs(inputs)
    every = truth[unit_index] + after
    last = np.r_[unit_index[1:] != unit_index[:-1], True]
    cycles = {"out_of_fold": model.out_of_fold_, "test_every_cycle": (raw, every), "test_last_cycle": (raw[last], every[last])}
    out = {}
    for method, bands in (("banded", model.interval_bands_), ("one_margin", one_margin(model.interval_margin_))):
        out[method] = {}
        for name, (outputs, rul) in cycles.items():
            _, low, high = intervals(outputs, bands).T
            out[method][name] = {"all": interval_metrics(rul, low, high),
                                 "by_true_rul": by_band(rul, rul, low, high, TRUE_RUL_EDGES)}
        if method == "banded":  # the model's own predictions are the banded interval
            check_last = intervals(raw[last], bands)
            assert np.allclose(check_last, table[["rul", "rul_low", "rul_high"]].to_numpy(), atol=1e-3)
    return out


def summarise_intervals(runs: list[dict]) -> dict:
    """Per method, set of cycles and band of true RUL: coverage and width, mean and std over seeds."""
    out = {}
    for method in ("banded", "one_margin"):
        for name in INTERVAL_SETS:
            for k, band in enumerate(runs[0]["intervals"][method][name]["by_true_rul"]):
                rows = [r["intervals"][method][name]["by_true_rul"][k] for r in runs]
                cell = out.setdefault(method, {}).setdefault(name, {})[band["band"]] = {"count": band["count"]}
                for key in ("coverage", "interval_width"):
                    values = np.array([row[key] for row in rows], dtype=float)
                    cell[key] = float(np.mean(values))
                    cell[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


def copies(runs: RunHistory, at_least: int) -> RunHistory:
    n = math.ceil(at_least / len(runs))
    frames = []
    for k in range(n):
        frame = runs.frame.copy()
        frame[runs.unit] = frame[runs.unit] + k * 100_000
        frames.append(frame)
    return RunHistory(pd.concat(frames, ignore_index=True), runs.unit, runs.time, runs.settings, runs.sensors, runs.source)


def units_per_second(model: RULModel, runs: RunHistory) -> float:
    big = copies(runs, INFERENCE_UNITS)
    model.predict(runs)
    seconds = []
    for _ in range(3):
        with stopwatch() as elapsed:
            model.predict(big)
        seconds.append(elapsed())
    return len(big) / float(np.median(seconds))


def run_subset(subset: str, seeds: int, params: dict) -> dict:
    train = read_runs(data_file(f"cmapss/train_{subset}.txt"))
    test = read_runs(data_file(f"cmapss/test_{subset}.txt"))
    truth = read_rul(data_file(f"cmapss/RUL_{subset}.txt"), test.units)
    runs = []
    for seed in range(seeds):
        with stopwatch() as elapsed:
            model = KeepsOutOfFold(seed=seed, progress=False, **params).fit(train)
        minutes = elapsed() / 60
        table = model.predict(test)
        compared = interval_comparison(model, test, truth, table)
        ours = score(truth, table["rul"].to_numpy(), table["rul_low"].to_numpy(), table["rul_high"].to_numpy())
        baseline_pred, baseline_s = lightgbm_baseline(train, test, model.sensor_columns_, seed)
        theirs = score(truth, baseline_pred)
        run = {"seed": seed, "shopfloor": {**ours, "train_minutes": minutes, "epochs": model.training_log_[-1]["epochs"],
                                           "conditions": model.net_.conditions.n_conditions,
                                           "validation": model.validation_metrics_},
               "lightgbm": {**theirs, "train_minutes": baseline_s / 60}, "intervals": compared}
        if seed == 0:
            run["shopfloor"]["units_per_s"] = units_per_second(model, test)
        runs.append(run)
        print(f"{subset} seed {seed}: shopfloor rmse {ours['rmse']:.2f} (capped labels {ours['rmse_capped']:.2f}), "
              f"coverage {ours['coverage']:.3f}, {minutes:.1f} min; lightgbm rmse {theirs['rmse']:.2f} "
              f"({theirs['rmse_capped']:.2f})", flush=True)
    return {"test_units": len(test), "train_units": len(train), "runs": runs,
            "summary": {system: summarise_seeds([r[system] for r in runs]) for system in ("shopfloor", "lightgbm")},
            "intervals": summarise_intervals(runs),
            "peak_rss_gib": peak_rss_bytes() / 2**30}


def summarise_seeds(runs: list[dict]) -> dict:
    from scipy import stats

    out = {}
    for key in REPORTED:
        values = np.array([r[key] for r in runs if key in r], dtype=float)
        if len(values) == 0:
            continue
        spread = values.std(ddof=1) if len(values) > 1 else float("nan")
        half = float(stats.t.ppf(0.975, len(values) - 1) * spread / np.sqrt(len(values))) if len(values) > 1 else float("nan")
        out[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    "ci95": [float(values.mean() - half), float(values.mean() + half)]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subsets", default=",".join(SUBSETS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs: a smoke test")
    parser.add_argument("--out", type=Path, help="write (and merge into) this file instead of results/cmapss.json, "
                                                 "e.g. for a run of fewer seeds that must not replace the 5-seed figures")
    args = parser.parse_args()
    limit_threads()
    subsets = [s.strip().upper() for s in args.subsets.split(",")]
    params = {"max_epochs": 2} if args.quick else {}
    seeds = 1 if args.quick else args.seeds
    name = "cmapss-quick" if args.quick else "cmapss"
    path = args.out or RESULTS / f"{name}.json"
    results = {s: run_subset(s, seeds, params) for s in subsets}
    # read only now: another process may have written other subsets meanwhile
    previous = json.loads(path.read_text()).get("subsets", {}) if path.is_file() else {}
    merged = {**previous, **results}
    rows, targets = [], []
    for subset in SUBSETS:
        if subset not in merged:
            continue
        for system in ("shopfloor", "lightgbm"):
            summary = merged[subset]["summary"][system]

            def cell(key, digits=2, summary=summary):
                return f"{summary[key]['mean']:.{digits}f} ± {summary[key]['std']:.{digits}f}" if key in summary else "-"

            ci = summary["rmse"]["ci95"]
            ci = f"[{ci[0]:.2f}, {ci[1]:.2f}]" if None not in ci else "-"  # one seed: NaN, read back as null
            rows.append([subset, system, cell("rmse"), ci, cell("rmse_capped"),
                         cell("nasa_score", 0), cell("coverage", 3), cell("train_minutes")])
        ours = merged[subset]["summary"]["shopfloor"]
        targets.append(check(f"{subset} RMSE, labels as given", ours["rmse"]["mean"], f"<= {TARGET_RMSE[subset]}",
                             ours["rmse"]["mean"] <= TARGET_RMSE[subset]))
        targets.append(check(f"{subset} RMSE, labels capped at 125", ours["rmse_capped"]["mean"],
                             f"<= {TARGET_RMSE[subset]}", ours["rmse_capped"]["mean"] <= TARGET_RMSE[subset]))
        coverage = ours["coverage"]["mean"]
        targets.append(check(f"{subset} 90 % interval coverage", coverage, "0.85-0.95", 0.85 <= coverage <= 0.95))
        slowest = max(r["shopfloor"]["train_minutes"] for r in merged[subset]["runs"])
        targets.append(check(f"{subset} slowest training (min)", slowest, "<= 5", slowest <= 5))
        speed = merged[subset]["runs"][0]["shopfloor"].get("units_per_s", float("nan"))
        targets.append(check(f"{subset} inference units/s", speed, ">= 5000", speed >= 5000))
    print(__doc__.split("\n\n")[1])
    print_table("C-MAPSS, last cycle of each test unit, mean ± std over seeds", [
        "subset", "system", "RMSE", "RMSE 95% CI", "RMSE capped labels", "NASA score", "coverage", "train min"], rows)
    interval_rows = []
    for subset in SUBSETS:
        if "intervals" not in merged.get(subset, {}):
            continue
        for cycles in INTERVAL_SETS:  # not `name`: that names the results file
            for method in ("one_margin", "banded"):
                bands = merged[subset]["intervals"][method][cycles]
                interval_rows.append([subset, cycles, method] + [f"{b['coverage']:.3f} / {b['interval_width']:.1f}"
                                                                 for b in bands.values()])
        bands = merged[subset]["intervals"]["banded"]["test_every_cycle"]
        lowest = min(b["coverage"] for b in bands.values())
        targets.append(check(f"{subset} lowest 90 % coverage in a band of true RUL, every test cycle", lowest,
                             ">= 0.85", lowest >= 0.85))
    if interval_rows:
        print_table("90 % interval by band of true RUL: coverage / mean width in cycles, mean over seeds",
                    ["subset", "cycles", "interval", *[f"true RUL {b}" for b in bands]], interval_rows)
    total = sum(r["shopfloor"]["train_minutes"] + r["lightgbm"]["train_minutes"] for s in merged.values() for r in s["runs"])
    targets.append(check("whole benchmark training minutes", total, "<= 90", total <= 90))
    if "FD004" in merged:
        rss = merged["FD004"]["peak_rss_gib"]
        targets.append(check("peak RSS of the process that trained FD004 (GiB)", rss, "<= 3", rss <= 3))
    print_targets(targets)
    write_json(name, {"protocol": __doc__.split("\n\n")[1], "params": params, "machine": machine(),
                      "versions": versions(), "subsets": merged, "targets": targets}, out=path)


if __name__ == "__main__":
    main()
