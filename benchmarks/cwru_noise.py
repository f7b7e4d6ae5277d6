"""CWRU bearings with noise added at test time: what separates shopfloor from the baselines when all are at 100 %.

Protocol (also written into the JSON):
- the recordings, split and systems of benchmarks/cwru.py (first 70 % of every recording trains, last 30 % tests,
  windows of 2,048 samples; shopfloor's diagnose model with fronts `both` and `spectrum`, gradient boosting on
  condition indicators, the WDCNN-style CNN), each trained once per seed on the clean training part;
- the test part of every recording gets white Gaussian noise at a signal-to-noise ratio of `--snr` dB (noise
  spread = the test part's RMS x 10^(-SNR/20); one noise draw per seed, the same for every system), as the
  robustness checks of Zhang et al. 2017 (WDCNN) do; nothing is tuned on the noisy windows;
- window accuracy (argmax class, unknown verdicts ignored) per SNR, mean and spread over `--seeds` seeds.

    .venv/bin/python benchmarks/cwru_noise.py --seeds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
from _common import THREADS, limit_threads, machine, print_table, versions, write_json
from cwru import SHARE, WINDOW, recordings, train_boosting, train_cnn, windows_and_labels

from shopfloor.tasks.diagnose.model import DiagnoseModel
from shopfloor.tasks.diagnose.windows import time_split


def noisy(test, snr_db: float, rng: np.random.Generator):
    """The test recordings with white noise at `snr_db` (None: unchanged)."""
    if snr_db is None:
        return test
    out = []
    for r in test:
        spread = np.sqrt((r.values.astype(np.float64) ** 2).mean()) * 10 ** (-snr_db / 20)
        out.append(dataclasses.replace(r, values=(r.values + rng.normal(0, spread, r.values.shape)).astype(r.values.dtype)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--snr", default="clean,4,0,-4", help="SNRs in dB, comma-separated ('clean': no noise)")
    args = parser.parse_args()
    limit_threads(THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        everything = recordings(Path(tmp))
    classes = sorted({r.label for r in everything})
    train, test = time_split(everything, SHARE)
    levels = [None if s == "clean" else float(s) for s in args.snr.split(",")]
    accuracy: dict[str, dict[str, list]] = {}
    for seed in range(args.seeds):
        systems = {f"shopfloor diagnose ({front})": DiagnoseModel(window=WINDOW, front=front, seed=seed,
                                                                  progress=False).fit(train) for front in ("both", "spectrum")}
        deciders = {name: (lambda w, m=m: m.score_windows(w)[0].argmax(1)) for name, m in systems.items()}
        deciders["gradient boosting on indicators"] = train_boosting(train, classes, seed)
        deciders["WDCNN-style CNN"] = train_cnn(train, classes, seed)
        for level in levels:
            windows, truth, _ = windows_and_labels(noisy(test, level, np.random.default_rng(1000 + seed)), classes, WINDOW)
            key = "clean" if level is None else f"{level:g} dB"
            for name, decide in deciders.items():
                accuracy.setdefault(name, {}).setdefault(key, []).append(float((decide(windows) == truth).mean()))
        print(f"seed {seed}: " + "; ".join(f"{n} {[round(v[-1], 4) for v in a.values()]}" for n, a in accuracy.items()),
              flush=True)
    keys = list(next(iter(accuracy.values())))
    rows = [[name, *(f"{np.mean(a[k]):.4f} ± {np.std(a[k]):.4f}" for k in keys)] for name, a in accuracy.items()]
    print_table(f"CWRU, noise added to the test part, {args.seeds} seeds", ["system", *keys], rows)
    result = {"protocol": __doc__.split("Protocol")[1].split("    .venv")[0].strip(), "seeds": args.seeds,
              "threads": THREADS, "machine": machine(), "versions": versions(), "accuracy": accuracy,
              "summary": {n: {k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in a.items()}
                          for n, a in accuracy.items()}}
    print(f"written {write_json('cwru_noise', result)}")


if __name__ == "__main__":
    main()
