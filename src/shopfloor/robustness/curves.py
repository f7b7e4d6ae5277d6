"""Every curve that fits a model's task, as plain JSON: `robustness_curves(model, data)`.

A curve is {"name", "strength" (what the x axis means), "points": [[strength, metric], ...]}; strength 0 (or
JPEG quality 95, brightness change 0) is the model on the data as it came. Readings (tables, RUL windows,
signals) get Gaussian noise, signals also a gain change per channel; each input stuck at its median (and,
where the model reads missing values, missing; signals also shuffled among the windows), one at a time, ranks
the inputs the model leans on most (the metric's largest loss, `input_effects`); images get blur, brightness,
JPEG and rotation; all get FGSM and PGD at the same L-infinity budgets.
"""

from __future__ import annotations

import time

from shopfloor.robustness import attacks, perturb
from shopfloor.robustness.probe import Probe

NOISE_SIGMAS = [0.0, 0.1, 0.25, 0.5, 1.0]  # spreads of each input
READING_BUDGETS = [0.0, 0.05, 0.1, 0.25, 0.5]  # L-infinity, spreads of each input
GAIN_CHANGES = [-0.5, -0.2, 0.0, 0.2, 0.5]  # signals: each channel's gain, 1 + change (alternately 1 - change)
IMAGE_BUDGETS = [0.0, 2 / 255, 4 / 255, 8 / 255]  # L-infinity, as a fraction of the grey-level range
LEANS_ON = 5  # inputs named as the ones the model leans on most


def robustness_curves(model, data, truth=None) -> dict:
    """The report's content for `model` on `data` (labels in the data, or in `truth` for RUL)."""
    started = time.perf_counter()
    probe = model.robustness_probe(data, truth)
    clean = probe.score(probe.raw)

    def at(strength: float, unchanged: float, perturbed) -> tuple[float, float]:
        """(strength, metric): the clean metric where the strength changes nothing, scored once for all curves."""
        return strength, clean if strength == unchanged else probe.score(perturbed(strength))

    curves = []
    if probe.kind == "images":
        for name, (change, strengths, words) in perturb.IMAGE_CURVES.items():
            unchanged = perturb.UNCHANGED.get(name, 0.0)
            curves.append(curve(name, words, [at(s, unchanged, lambda s, c=change: c(probe.raw, s)) for s in strengths]))
    else:
        curves.append(curve("gaussian noise", "noise sigma (spreads of each input)",
                            [at(s, 0.0, lambda s: perturb.noise(probe.raw, probe.spread, s)) for s in NOISE_SIGMAS]))
    if probe.kind == "signals":
        curves.append(curve("channel gain", "gain change (fraction; channels alternately up and down)",
                            [at(g, 0.0, lambda g: perturb.gain(probe.raw, probe.sensor_axis, g)) for g in GAIN_CHANGES]))
    budgets = IMAGE_BUDGETS if probe.kind == "images" else READING_BUDGETS
    words = "L-infinity budget (fraction of 0..255)" if probe.kind == "images" else "L-infinity budget (spreads)"
    curves.append(curve("FGSM", words, [at(e, 0.0, lambda e: attacks.fgsm(probe, e)) for e in budgets]))
    curves.append(curve(f"PGD ({attacks.PGD_STEPS} steps)", words,
                        [at(e, 0.0, lambda e: attacks.pgd(probe, e)) for e in budgets]))
    report = {"task": model.task_name, "metric": probe.metric_name, "higher_is_better": probe.higher_is_better,
              "items": probe.count, "kind": probe.kind, "clean": clean, "curves": curves}
    if probe.sensor_axis is not None and probe.inputs:
        report["inputs"] = input_effects(probe, clean)
        report["leans_on"] = [row["input"] for row in report["inputs"][:LEANS_ON]]
    report["seconds"] = time.perf_counter() - started
    return report


def curve(name: str, strength: str, points: list[tuple[float, float]]) -> dict:
    return {"name": name, "strength": strength, "points": [[float(s), float(m)] for s, m in points]}


def input_effects(probe: Probe, clean: float) -> list[dict]:
    """Per input: the metric with it stuck at its median and with it missing, and the larger loss; the inputs
    the model leans on most first. Signals also get each channel shuffled among the windows, and are ranked by
    that loss alone: a flat channel is unlike any window a network was trained on, so on generated bearings
    a stuck channel the model never read took its accuracy to chance as the one it read did (1.0 to 0.33),
    while shuffled the first kept 0.97 and the second fell to 0.37."""
    rows = []
    for j, name in enumerate(probe.inputs):
        typical = probe.typical.select(probe.sensor_axis, j).reshape(()) if probe.typical is not None else 0.0
        stuck = probe.score(perturb.set_input(probe.raw, probe.sensor_axis, j, typical))
        missing = probe.score(perturb.set_input(probe.raw, probe.sensor_axis, j, float("nan"))) \
            if probe.reads_missing else None
        worst = [m for m in (stuck, missing) if m is not None]
        row = {"input": name, "stuck": stuck, "missing": missing}
        if probe.kind == "signals":
            row["shuffled"] = probe.score(perturb.shuffle_input(probe.raw, probe.sensor_axis, j))
            worst = [row["shuffled"]]  # signals are ranked by shuffling (a flat channel reads as a fault)
        row["loss"] = max((clean - m) if probe.higher_is_better else (m - clean) for m in worst)
        rows.append(row)
    return sorted(rows, key=lambda row: -row["loss"])
