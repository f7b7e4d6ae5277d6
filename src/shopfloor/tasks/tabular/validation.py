"""What a table model makes of its out-of-fold outputs (rows no network trained on): the calibration folded
into the network's outputs, the decision thresholds (yes/no) or the conformal intervals (numbers), and the
metrics, which `evaluate` reports on new labelled rows as well.
"""

from __future__ import annotations

import numpy as np

from shopfloor.metrics import (
    best_threshold,
    binary_metrics,
    fit_platt,
    fit_temperature,
    multiclass_metrics,
    regression_metrics,
)


def output_calibration(kind: str, logits: np.ndarray, y: np.ndarray, target_scale=None,
                       target_center=None) -> tuple[np.ndarray, np.ndarray]:
    """Scale and shift of the raw outputs: Platt scaling per yes/no label, one temperature for classes, and
    for numbers the way back from standard units to the target's own."""
    scale, shift = np.ones(logits.shape[1]), np.zeros(logits.shape[1])
    if kind == "binary":
        for j in range(logits.shape[1]):
            scale[j], shift[j] = fit_platt(logits[:, j], y[:, j])
    elif kind == "multiclass":
        scale[:] = 1 / fit_temperature(logits, y)
    else:
        scale, shift = target_scale, target_center
    return scale, shift


def decision_thresholds(y: np.ndarray, outputs: np.ndarray, miss_cost: float | None,
                        false_alarm_cost: float | None) -> list[float]:
    """Per yes/no label: the probability above which a failure is called (best F1, or least cost when priced)."""
    return [best_threshold(y[:, j], outputs[:, j], miss_cost, false_alarm_cost) for j in range(outputs.shape[1])]


def interval_halfwidths(y: np.ndarray, outputs: np.ndarray, coverage: float) -> list[float]:
    """Per numeric target: the split-conformal half-width that `coverage` of out-of-fold residuals fall within."""
    residual = np.abs(outputs - y)
    level = min(1.0, np.ceil((len(y) + 1) * coverage) / len(y))
    return np.quantile(residual, level, axis=0).tolist()


def table_metrics(kind: str, targets: list[str], y: np.ndarray, outputs: np.ndarray, decisions: np.ndarray,
                  interval_halfwidth: list[float]) -> dict[str, float]:
    """Metrics of outputs against labels: see metrics.CLASSIFICATION_KEYS / REGRESSION_KEYS; several targets give
    the mean of each metric and the main ones per target ('<target> f1')."""
    if kind == "binary":
        per_label = [binary_metrics(y[:, j], outputs[:, j], decisions[:, j]) for j in range(y.shape[1])]
        if len(per_label) == 1:
            return per_label[0]
        result = {k: float(np.mean([m[k] for m in per_label])) for k in per_label[0]}
        for name, m in zip(targets, per_label, strict=True):
            result.update({f"{name} {k}": v for k, v in m.items() if k in ("f1", "pr_auc", "recall", "precision")})
        return result
    if kind == "multiclass":
        return multiclass_metrics(np.asarray(y), outputs, outputs.argmax(1))
    per_target = [regression_metrics(y[:, j], outputs[:, j]) for j in range(y.shape[1])]
    if len(per_target) == 1:
        result = per_target[0]
        result["interval_coverage"] = float(np.mean(np.abs(y[:, 0] - outputs[:, 0]) <= interval_halfwidth[0])) \
            if interval_halfwidth else float("nan")
        return result
    result = {k: float(np.mean([m[k] for m in per_target])) for k in per_target[0]}
    for name, m in zip(targets, per_target, strict=True):
        result.update({f"{name} {k}": v for k, v in m.items()})
    return result
