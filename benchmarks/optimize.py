"""Process optimisation on simulated processes with a known optimum, against Optuna (issue 5).

Protocol, the same for every method and seed:
- start from N historical records drawn from the simulator's operating window, which leaves the
  optimum out (N = 30 for Hartmann-6, 20 otherwise; the same records for every method);
- then K = 10 rounds: the method proposes a batch of B = 5 settings, the simulator runs them;
- score the method's final recommendation on the noise-free simulator: simple regret (distance
  to the optimum value) and constraint violation.

Methods: shopfloor's ProcessOptimizer (defaults: constrained expected improvement, trust radius
0.15, confidence 0.9; its recommendation is the model's best setting, which may not have been
run), Optuna's GPSampler, TPESampler and RandomSampler (defaults; batches are B asked trials
pending together; their recommendation is the best run whose measured outputs met the
constraints). shopfloor's own best run is reported too, for a like-for-like comparison.

Optuna receives the records through `create_trial(..., constraints=...)` and the constraint
values of new runs through `trial.set_constraint` (the Optuna 5 API). Branin's disk is a
constraint on the settings: shopfloor reads it from its formula, Optuna models it as a black box
(GPSampler supports no input constraints).

    python benchmarks/optimize.py [--seeds 10] [--noise 0.05] [--workers 2]

Each worker uses one thread. Writes results/optimize.json (results/optimize-noise<k>.json with noise).
The environment variable TRUST (a number, or "none") overrides shopfloor's trust radius, for the
study of the trust region in benchmarks/README.md.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # before torch and scipy load

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from multiprocessing import Pool  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _common import machine, versions, write_json  # noqa: E402

from shopfloor.tasks.optimize.simulators import SIMULATORS, Simulator  # noqa: E402

HISTORY = {"hartmann6": 30, "branin_disk": 20, "snar": 20}
ROUNDS, BATCH = 10, 5
TRUST = None if os.environ.get("TRUST") == "none" else float(os.environ.get("TRUST", "0.15"))
METHODS = ("shopfloor", "gp", "tpe", "random")


def best_run(sim: Simulator, records: pd.DataFrame) -> pd.Series | None:
    """The best record among those whose measured outputs met the constraints."""
    ok = (sim.constraint_values(records) <= 0).all(axis=1)
    if not ok.any():
        return None
    feasible = records[ok]
    values = feasible[sim.objective]
    return feasible.loc[values.idxmax() if sim.maximize else values.idxmin()]


def judge(sim: Simulator, settings: dict | pd.Series | None) -> dict:
    """True (noise-free) regret and violation of a recommended setting."""
    if settings is None:
        return {"regret": math.inf, "violation": None, "settings": None}
    frame = pd.DataFrame([{n: float(settings[n]) for n in sim.names}])
    truth = sim.run(frame)
    return {"regret": float(sim.regret(truth[sim.objective].iloc[0])), "violation": float(sim.violation(frame)[0]),
            "settings": frame.iloc[0].to_dict()}


def run_shopfloor(sim: Simulator, records: pd.DataFrame, rng: np.random.Generator, noise: float, seed: int) -> dict:
    from shopfloor import ProcessOptimizer

    goal = {"maximize": [sim.objective]} if sim.maximize else {"minimize": [sim.objective]}
    optimizer = ProcessOptimizer(list(sim.settings), constraints=list(sim.constraints), batch=BATCH, seed=seed,
                                 trust_radius=TRUST, **goal)
    rounds = []
    for k in range(ROUNDS):
        started = time.perf_counter()
        optimizer.set_params(seed=seed * 1000 + k).fit(records)
        batch = pd.DataFrame([e["settings"] for e in optimizer.suggest_experiments()])
        rounds.append(time.perf_counter() - started)
        records = pd.concat([records, sim.run(batch, noise, rng)], ignore_index=True)
    started = time.perf_counter()
    optimizer.fit(records)
    recommendation = optimizer.recommend()
    final_seconds = time.perf_counter() - started
    return {"recommendation": judge(sim, recommendation["settings"]), "best_run": judge(sim, best_run(sim, records)),
            "predicted": recommendation["predicted"][sim.objective], "round_seconds": rounds,
            "final_fit_and_recommend_seconds": final_seconds, "records": records}


def run_optuna(sampler_name: str, sim: Simulator, records: pd.DataFrame, rng: np.random.Generator, noise: float,
               seed: int) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    samplers = {"gp": optuna.samplers.GPSampler, "tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
    bounds = sim.bounds
    distributions = {n: optuna.distributions.FloatDistribution(lo, hi) for n, (lo, hi) in zip(sim.names, bounds, strict=True)}
    names = [f"c{j}" for j in range(len(sim.constraints))]
    study = optuna.create_study(direction="maximize" if sim.maximize else "minimize", sampler=samplers[sampler_name](seed=seed))

    def trial_constraints(frame: pd.DataFrame) -> list[dict]:
        return [dict(zip(names, map(float, row), strict=True)) for row in sim.constraint_values(frame)]

    study.add_trials([optuna.trial.create_trial(params={n: float(r[n]) for n in sim.names}, distributions=distributions,
                                                value=float(r[sim.objective]), constraints=c or None)
                      for (_, r), c in zip(records.iterrows(), trial_constraints(records), strict=True)])
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        trials = [study.ask(distributions) for _ in range(BATCH)]
        rounds.append(time.perf_counter() - started)
        ran = sim.run(pd.DataFrame([t.params for t in trials]), noise, rng)
        for trial, (_, row), c in zip(trials, ran.iterrows(), trial_constraints(ran), strict=True):
            for name, value in c.items():
                trial.set_constraint(name, value)
            study.tell(trial, float(row[sim.objective]))
        records = pd.concat([records, ran], ignore_index=True)
    best = judge(sim, best_run(sim, records))
    return {"recommendation": best, "best_run": best, "round_seconds": rounds, "records": records}


def one_run(task: tuple[str, str, int, float]) -> dict:
    import torch

    torch.set_num_threads(1)
    method, name, seed, noise = task
    sim = SIMULATORS[name]
    records = sim.history(HISTORY[name], seed, noise)
    start = judge(sim, best_run(sim, records))["regret"]
    rng = np.random.default_rng(10_000 + seed)  # the noise of new runs: the same draws for every method
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "shopfloor":
            result = run_shopfloor(sim, records, rng, noise, seed)
        else:
            result = run_optuna(method, sim, records, rng, noise, seed)
    ran = result.pop("records").iloc[len(records):]
    result.update(method=method, simulator=name, seed=seed, start_regret=start, seconds=time.perf_counter() - started,
                  runs_violating=int((sim.violation(ran) > 0).sum()))
    print(f"{name:12s} {method:9s} seed {seed}: regret {start:.4g} -> {result['recommendation']['regret']:.4g} "
          f"(best run {result['best_run']['regret']:.4g}) in {result['seconds']:.0f} s", flush=True)
    return result


def summarise(runs: list[dict]) -> list[dict]:
    table = []
    for name in SIMULATORS:
        for method in METHODS:
            mine = [r for r in runs if r["simulator"] == name and r["method"] == method]
            if not mine:
                continue
            regret = np.array([r["recommendation"]["regret"] for r in mine])
            best = np.array([r["best_run"]["regret"] for r in mine])
            table.append({
                "simulator": name, "method": method, "seeds": len(mine),
                "start_regret_median": float(np.median([r["start_regret"] for r in mine])),
                "regret_median": float(np.median(regret)), "regret_q25": float(np.quantile(regret, 0.25)),
                "regret_q75": float(np.quantile(regret, 0.75)),
                "best_run_regret_median": float(np.median(best)),
                "recommendations_violating": sum((r["recommendation"]["violation"] or 0) > 1e-9 for r in mine),
                "seconds_per_round_median": float(np.median([s for r in mine for s in r["round_seconds"]])),
                "seconds_per_run_median": float(np.median([r["seconds"] for r in mine])),
            })
    for row in table:
        gp = next((r for r in table if r["simulator"] == row["simulator"] and r["method"] == "gp"), None)
        row["ratio_to_gp"] = row["regret_median"] / gp["regret_median"] if gp and gp["regret_median"] > 0 else None
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--noise", type=float, default=0.0, help="measurement noise, as a fraction of each output's scale")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--simulators", default=",".join(SIMULATORS))
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    tasks = [(m, s, seed, args.noise) for seed in range(args.seeds) for s in args.simulators.split(",")
             for m in args.methods.split(",")]
    started = time.perf_counter()
    with Pool(args.workers) as pool:
        runs = pool.map(one_run, tasks, chunksize=1)
    table = summarise(runs)
    print(f"\n{'simulator':12s} {'method':9s} {'start':>9s} {'median regret':>13s} {'IQR':>23s} {'best run':>9s} "
          f"{'violating':>9s} {'x GP':>8s} {'s/round':>8s}")
    for r in table:
        ratio = f"{r['ratio_to_gp']:.3g}" if r["ratio_to_gp"] is not None else "-"
        print(f"{r['simulator']:12s} {r['method']:9s} {r['start_regret_median']:9.4g} {r['regret_median']:13.4g} "
              f"[{r['regret_q25']:10.3g}, {r['regret_q75']:10.3g}] {r['best_run_regret_median']:9.3g} "
              f"{r['recommendations_violating']:>5d}/{r['seeds']:<3d} {ratio:>8s} {r['seconds_per_round_median']:8.2f}")
    write_json("optimize" if args.noise == 0 else f"optimize-noise{args.noise:g}", {
        "protocol": {"history": HISTORY, "rounds": ROUNDS, "batch": BATCH, "seeds": args.seeds, "noise": args.noise,
                     "regret": "true (noise-free) objective at the final recommendation vs the known optimum"},
        "machine": machine(), "versions": versions(("shopfloor", "torch", "optuna", "scipy", "numpy")),
        "workers": args.workers, "wall_seconds": time.perf_counter() - started,
        "summary": table, "runs": runs})


if __name__ == "__main__":
    main()
