"""AI4I 2020 failure prediction: shopfloor TabularModel against LightGBM, on the same folds.

Protocol (also written into the JSON):
- target "Machine failure"; the failure-mode columns (TWF HDF PWF OSF RNF) leak it and are
  dropped, as are the ids UDI and Product ID;
- K-fold stratified CV (shopfloor.crossval.fold_indices, stratified on the target, seed 0); every
  system sees exactly the same train/test rows;
- every decision threshold is chosen on held-out *training* rows only, never on the test fold:
  shopfloor on its own cross-fitted out-of-fold predictions; LightGBM default on inner 5-fold
  out-of-fold predictions of the training part; LightGBM tuned on the inner 3-fold out-of-fold
  predictions of its chosen candidate (shopfloor.metrics.best_threshold, F1-optimal, for all);
- LightGBM tuned: random search over num_leaves, learning_rate, n_estimators, min_child_samples,
  subsample, colsample_bytree, reg_lambda, scored by inner stratified 3-fold CV on the training part
  (average precision, or F1 at the best OOF threshold with --tune-score f1), with shopfloor's training
  time on that fold as the budget (search + refit; the defaults are the first candidate, a later one
  still training at the deadline is abandoned), best candidate refitted on the whole training part;
- 2 threads for everyone: torch.set_num_threads(2), LightGBM n_jobs=2;
- train seconds: wall clock of everything a system needs before it can predict (LightGBM default
  includes its 5 inner fits for the threshold; tuned includes the search);
- predict rows/s: the test fold replicated to >= 200,000 rows as an in-memory DataFrame, one warm-up
  call on the test fold, median of 3 timed calls, each from the raw table to decisions (shopfloor:
  model.predict, which includes its preprocessing; LightGBM: column encoding + predict_proba + threshold);
- peak RSS: getrusage maxrss of this process after the shopfloor phase (shopfloor runs first, before
  LightGBM is even imported), so it includes the interpreter, pandas and the data.

Also a multi-label run: targets TWF HDF PWF OSF RNF at once (shopfloor with the list of targets) against
LightGBM one-vs-rest (one default classifier per mode, inner 5-fold OOF thresholds), per-mode F1.

    .venv/bin/python benchmarks/ai4i.py             # full run, writes benchmarks/results/ai4i.json
    .venv/bin/python benchmarks/ai4i.py --quick     # smoke test, writes benchmarks/results/ai4i-quick.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import (
    THREADS,
    LightGBMInput,
    check,
    data_file,
    import_lightgbm,
    limit_threads,
    machine,
    mean_std,
    peak_rss_bytes,
    print_table,
    print_targets,
    random_search,
    rows_per_second,
    stop_at,
    stopwatch,
    summarise,
    versions,
    write_json,
)
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold

from shopfloor.crossval import fold_indices
from shopfloor.data.tables import read_table
from shopfloor.metrics import best_threshold, binary_metrics

TARGET = "Machine failure"
MODES = ["TWF", "HDF", "PWF", "OSF", "RNF"]
IDS = ["UDI", "Product ID"]
SYSTEMS = ("shopfloor", "lightgbm", "lightgbm-tuned")
REPORTED = ("f1", "pr_auc", "mcc", "roc_auc", "precision", "recall")
GOALS = {"f1": 0.915, "train_seconds": 60.0, "rows_per_s": 200_000, "rss_bytes": 2 * 1024**3}
QUICK = {"folds": 2, "max_epochs": 2, "bags": 2, "predict_rows": 20_000, "budget": 10.0}  # smoke test only


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, default=None, help="outer CV folds (default 5; 2 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 folds, shopfloor max_epochs=2 and bags=2, 20,000 predict rows timed once, "
                             "tuning budget capped at 10 s")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma-separated subset of {', '.join(SYSTEMS)} (default: all)")
    parser.add_argument("--multilabel", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the five-failure-mode multi-label comparison (default: on)")
    parser.add_argument("--max-epochs", type=int, default=None, help="override shopfloor's max_epochs")
    parser.add_argument("--budget", type=float, default=GOALS["train_seconds"],
                        help="tuning budget in seconds per fold when shopfloor is not run (default 60)")
    parser.add_argument("--tune-score", choices=("ap", "f1"), default="ap",
                        help="inner-CV score of the LightGBM search: average precision or F1 at the best threshold")
    parser.add_argument("--predict-rows", type=int, default=None,
                        help="rows for the throughput measurement (default 200,000; 20,000 with --quick)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds and of every model")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/ai4i.json)")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SYSTEMS]
    if unknown or not chosen:
        parser.error(f"--systems: unknown {unknown}; choose from {', '.join(SYSTEMS)}")
    args.systems = [s for s in SYSTEMS if s in chosen]  # shopfloor first: its times are the tuning budget
    args.folds = args.folds or (QUICK["folds"] if args.quick else 5)
    args.predict_rows = args.predict_rows or (QUICK["predict_rows"] if args.quick else 200_000)
    if args.max_epochs is None and args.quick:
        args.max_epochs = QUICK["max_epochs"]
    return args


# -- the systems ------------------------------------------------------------------------
def shopfloor_params(args, target) -> dict:
    params = {"target": target, "progress": False, "seed": args.seed}
    if target == TARGET:
        params["drop"] = MODES + IDS
    else:
        params["drop"] = [TARGET] + IDS
    if args.max_epochs is not None:
        params["max_epochs"] = args.max_epochs
    if args.quick:
        params["bags"] = QUICK["bags"]
    return params


class LightGBMThresholded:
    """One LightGBM classifier per yes/no target plus a decision threshold chosen on held-out training rows."""

    def __init__(self, targets: list[str], exclude: list[str], params: dict | None = None, seed: int = 0,
                 inner_folds: int = 5):
        self.targets, self.exclude, self.params = targets, exclude, params or {}
        self.seed, self.inner_folds = seed, inner_folds

    def _new(self, params):
        from lightgbm import LGBMClassifier

        return LGBMClassifier(n_jobs=THREADS, verbose=-1, **params)

    def oof_proba(self, x: pd.DataFrame, y: np.ndarray, params: dict, folds: int,
                  deadline: float | None = None) -> np.ndarray:
        oof = np.empty(len(y))
        for train, valid in StratifiedKFold(folds, shuffle=True, random_state=self.seed).split(x, y):
            model = self._new(params).fit(x.iloc[train], y[train], callbacks=stop_at(deadline))
            oof[valid] = model.predict_proba(x.iloc[valid])[:, 1]
        return oof

    def fit(self, frame: pd.DataFrame, thresholds: list[float] | None = None) -> LightGBMThresholded:
        self.encode = LightGBMInput(frame, self.targets + self.exclude)
        x = self.encode(frame)
        self.models, self.thresholds = [], []
        for j, target in enumerate(self.targets):
            y = frame[target].to_numpy(dtype=int)
            if thresholds is None:
                threshold = best_threshold(y, self.oof_proba(x, y, self.params, self.inner_folds))
            else:
                threshold = thresholds[j]
            self.models.append(self._new(self.params).fit(x, y))
            self.thresholds.append(threshold)
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        x = self.encode(frame)
        return np.stack([m.predict_proba(x)[:, 1] for m in self.models], axis=1)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(frame) >= np.asarray(self.thresholds)[None, :]

    def evaluate(self, frame: pd.DataFrame) -> list[dict]:
        proba = self.predict_proba(frame)
        decisions = proba >= np.asarray(self.thresholds)[None, :]
        return [binary_metrics(frame[t].to_numpy(dtype=int), proba[:, j], decisions[:, j])
                for j, t in enumerate(self.targets)]


def tune_lightgbm(train: pd.DataFrame, budget_s: float, args) -> tuple[LightGBMThresholded, dict]:
    """Random search scored by inner stratified 3-fold CV; threshold from the winner's 3-fold OOF."""
    system = LightGBMThresholded([TARGET], MODES + IDS, seed=args.seed, inner_folds=3)
    system.encode = LightGBMInput(train, [TARGET] + MODES + IDS)
    x, y = system.encode(train), train[TARGET].to_numpy(dtype=int)

    def score(params, deadline):
        oof = system.oof_proba(x, y, params, folds=3, deadline=deadline)
        threshold = best_threshold(y, oof)
        if args.tune_score == "ap":
            return average_precision_score(y, oof), threshold
        return binary_metrics(y, oof, oof >= threshold)["f1"], threshold

    search = random_search(score, budget_s, seed=args.seed)
    best = search["best"]
    system.params = best["params"]
    system.fit(train, thresholds=[best["extra"]])
    info = {"budget_seconds": budget_s, "candidates": len(search["trials"]), "search_seconds": search["search_seconds"],
            "inner_score": best["score"], "best_params": best["params"],
            "trials": [{"score": t["score"], "seconds": t["seconds"], "stopped": t.get("stopped", False)}
                       for t in search["trials"]]}
    return system, info


# -- the runs ---------------------------------------------------------------------------
def run_single(frame: pd.DataFrame, folds: list, args) -> tuple[dict, dict]:
    results: dict[str, dict] = {}
    rss_after: dict[str, int] = {}
    shopfloor_seconds: list[float] = []
    repeats = 1 if args.quick else 3
    for system in args.systems:
        if system != "shopfloor":
            import_lightgbm()
        per_fold = []
        for i, (train_rows, test_rows) in enumerate(folds):
            train = frame.iloc[train_rows].reset_index(drop=True)
            test = frame.iloc[test_rows].reset_index(drop=True)
            extra: dict = {}
            if system == "shopfloor":
                from shopfloor.tasks.tabular.model import TabularModel

                with stopwatch() as elapsed:
                    model = TabularModel(**shopfloor_params(args, TARGET)).fit(train)
                seconds = elapsed()
                shopfloor_seconds.append(seconds)
                metrics = model.evaluate(test)
                extra = {"threshold": model.thresholds_[0], "model_train_seconds": model.train_seconds_,
                         "epochs": [log["epochs"] for log in model.training_log_]}
            elif system == "lightgbm":
                with stopwatch() as elapsed:
                    model = LightGBMThresholded([TARGET], MODES + IDS, seed=args.seed).fit(train)
                seconds = elapsed()
                metrics = model.evaluate(test)[0]
                extra = {"threshold": model.thresholds[0]}
            else:
                budget = shopfloor_seconds[i] if len(shopfloor_seconds) == len(folds) else args.budget
                if args.quick:
                    budget = min(budget, QUICK["budget"])
                with stopwatch() as elapsed:
                    model, extra = tune_lightgbm(train, budget, args)
                seconds = elapsed()
                metrics = model.evaluate(test)[0]
                extra["threshold"] = model.thresholds[0]
            speed = rows_per_second(model.predict, test, args.predict_rows, repeats)
            row = {"fold": i + 1, **{k: metrics[k] for k in REPORTED}, "accuracy": metrics["accuracy"],
                   "train_seconds": seconds, "predict_rows_per_s": speed["rows_per_s"],
                   "predict_rows": speed["rows"], **extra}
            per_fold.append(row)
            print(f"  {system:15s} fold {i + 1}/{len(folds)}: f1 {row['f1']:.3f}  pr_auc {row['pr_auc']:.3f}  "
                  f"train {seconds:.1f} s  predict {speed['rows_per_s']:,.0f} rows/s", flush=True)
            del model
        rss_after[system] = peak_rss_bytes()
        results[system] = {"per_fold": per_fold, **summarise(per_fold)}
    return results, rss_after


def multilabel_folds(frame: pd.DataFrame, k: int, seed: int) -> list:
    """Stratified on the combination of failure modes; combinations rarer than k share one stratum."""
    combo = frame[MODES].astype(int).astype(str).agg("".join, axis=1)
    counts = combo.map(combo.value_counts())
    return fold_indices(frame, k, stratify=combo.where(counts >= k, "rare"), seed=seed)


def run_multilabel(frame: pd.DataFrame, args) -> dict:
    from shopfloor.tasks.tabular.model import TabularModel

    folds = multilabel_folds(frame, args.folds, args.seed)
    systems = {"shopfloor": [], "lightgbm-ovr": []}
    for i, (train_rows, test_rows) in enumerate(folds):
        train = frame.iloc[train_rows].reset_index(drop=True)
        test = frame.iloc[test_rows].reset_index(drop=True)
        with stopwatch() as elapsed:
            model = TabularModel(**shopfloor_params(args, MODES)).fit(train)
        seconds = elapsed()
        metrics = model.evaluate(test)
        row = {"fold": i + 1, "train_seconds": seconds, "mean f1": metrics["f1"], "mean pr_auc": metrics["pr_auc"]}
        row.update({f"{m} {k}": metrics[f"{m} {k}"] for m in MODES for k in ("f1", "pr_auc")})
        systems["shopfloor"].append(row)
        import_lightgbm()
        with stopwatch() as elapsed:
            ovr = LightGBMThresholded(MODES, [TARGET] + IDS, seed=args.seed).fit(train)
        seconds = elapsed()
        per_mode = ovr.evaluate(test)
        row = {"fold": i + 1, "train_seconds": seconds,
               "mean f1": float(np.mean([m["f1"] for m in per_mode])),
               "mean pr_auc": float(np.nanmean([m["pr_auc"] for m in per_mode]))}
        row.update({f"{mode} {k}": m[k] for mode, m in zip(MODES, per_mode, strict=True) for k in ("f1", "pr_auc")})
        systems["lightgbm-ovr"].append(row)
        print(f"  multi-label fold {i + 1}/{len(folds)}: mean f1 shopfloor {systems['shopfloor'][-1]['mean f1']:.3f}"
              f"  lightgbm-ovr {row['mean f1']:.3f}", flush=True)
    return {name: {"per_fold": rows, **summarise(rows)} for name, rows in systems.items()}


# -- reporting --------------------------------------------------------------------------
def print_single(results: dict, folds: int) -> None:
    columns = ["system", *REPORTED, "train s/fold", "predict rows/s"]
    rows = []
    for name, r in results.items():
        rows.append([name, *(mean_std(r, k) for k in REPORTED), mean_std(r, "train_seconds", 1),
                     f"{r['mean']['predict_rows_per_s']:,.0f}"])
    print_table(f"AI4I 2020, '{TARGET}', {folds}-fold stratified CV (mean ± std)", columns, rows)


def print_multilabel(results: dict, folds: int) -> None:
    names = list(results)
    columns = ["mode", *(f"{n} F1" for n in names), *(f"{n} PR-AUC" for n in names)]
    rows = [[mode, *(mean_std(results[n], f"{mode} f1") for n in names),
             *(mean_std(results[n], f"{mode} pr_auc") for n in names)] for mode in MODES + ["mean"]]
    rows.append(["train s/fold", *(mean_std(results[n], "train_seconds", 1) for n in names), *([""] * len(names))])
    print_table(f"AI4I 2020 multi-label ({' '.join(MODES)}), {folds}-fold CV (mean ± std)", columns, rows)


def targets(results: dict, rss: dict) -> list[dict]:
    if "shopfloor" not in results:
        return []
    ours = results["shopfloor"]
    found = [check("F1 (CV mean)", ours["mean"]["f1"], f">= {GOALS['f1']}", ours["mean"]["f1"] >= GOALS["f1"])]
    for other in ("lightgbm", "lightgbm-tuned"):
        if other in results:
            theirs = results[other]["mean"]["f1"]
            found.append(check(f"F1 >= {other} F1 ({theirs:.4f})", ours["mean"]["f1"], f">= {theirs:.4f}",
                               ours["mean"]["f1"] >= theirs))
    slowest = max(r["train_seconds"] for r in ours["per_fold"])
    found.append(check("train seconds (slowest fold)", slowest, f"<= {GOALS['train_seconds']:.0f}",
                       slowest <= GOALS["train_seconds"]))
    speed = ours["mean"]["predict_rows_per_s"]
    found.append(check("predict rows/s (mean over folds)", speed, f">= {GOALS['rows_per_s']:,}",
                       speed >= GOALS["rows_per_s"]))
    found.append(check("peak RSS GiB (after shopfloor phase)", rss["shopfloor"] / 1024**3, "<= 2",
                       rss["shopfloor"] <= GOALS["rss_bytes"]))
    return found


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    limit_threads()
    facts = machine()
    started = time.perf_counter()
    frame = read_table(data_file("ai4i2020/ai4i2020.csv"))
    folds = fold_indices(frame, args.folds, stratify=frame[TARGET], seed=args.seed)
    print(f"AI4I 2020: {len(frame)} rows, {int(frame[TARGET].sum())} failures, {args.folds} folds, "
          f"systems {', '.join(args.systems)}{' (quick)' if args.quick else ''}", flush=True)
    single, rss = run_single(frame, folds, args)
    print_single(single, args.folds)
    multilabel = None
    if args.multilabel:
        multilabel = run_multilabel(frame, args)
        print_multilabel(multilabel, args.folds)
    goals = targets(single, rss)
    if goals:
        if args.quick:
            print("quick run: the targets below are for a full run and mean little here")
        print_targets(goals)
    result = {
        "protocol": {
            "data": "ai4i2020/ai4i2020.csv", "rows": len(frame), "target": TARGET, "dropped": MODES + IDS,
            "folds": args.folds, "cv": "stratified on the target, shopfloor.crossval.fold_indices",
            "seed": args.seed, "quick": args.quick, "systems": args.systems,
            "fold_test_rows": [len(te) for _, te in folds],
            "shopfloor": {k: v for k, v in shopfloor_params(args, TARGET).items() if k != "target"},
            "lightgbm": f"LGBMClassifier(n_jobs={THREADS}, verbose=-1), Type as pandas category",
            "thresholds": "F1-optimal (shopfloor.metrics.best_threshold) on held-out training rows only: "
                          "shopfloor its cross-fitted OOF; lightgbm inner 5-fold OOF; "
                          "lightgbm-tuned its winner's inner 3-fold OOF",
            "tuning": f"random search, first candidate = defaults, candidates past the deadline abandoned, "
                      f"inner stratified 3-fold CV scored by "
                      f"{'average precision' if args.tune_score == 'ap' else 'F1 at the best OOF threshold'}; "
                      "budget = shopfloor's train seconds on the fold (search + refit), else --budget",
            "train_seconds": "wall clock until the system can predict, threshold selection and tuning included",
            "predict": f"test fold replicated to >= {args.predict_rows:,} rows, in-memory DataFrame, "
                       f"1 warm-up call on the test fold, median of {1 if args.quick else 3} timed calls; "
                       "raw table -> decisions",
            "peak_rss": "getrusage maxrss after each system's phase; shopfloor runs first",
            "multilabel": f"targets {MODES}, drop {[TARGET] + IDS}; shopfloor one model with the list of targets vs "
                          "LightGBM one default classifier per mode with inner 5-fold OOF thresholds; folds "
                          "stratified on the mode combination (rare combinations pooled)" if args.multilabel else None,
        },
        "machine": facts,
        "versions": versions(),
        "results": single,
        "multilabel": multilabel,
        "peak_rss_bytes_after": rss,
        "targets": goals,
        "total_seconds": time.perf_counter() - started,
    }
    name = "ai4i-quick" if args.quick else "ai4i"
    path = write_json(name, result, args.out)
    print(f"wrote {path} ({result['total_seconds']:.0f} s in all)")


if __name__ == "__main__":
    main()
