"""Confidence-based performance estimation (the idea of NannyML's CBPE, written afresh): how well a calibrated
yes/no classifier is doing on new rows whose outcome is not known yet.

A calibrated probability p says: of the rows given p, a share p fail. So a row the model calls a failure
(p >= threshold) is a true positive with probability p and a false alarm with probability 1 - p; a row it calls
good is a missed failure with probability p. Summing these expected cells over the rows gives the expected
confusion matrix, and from it the expected accuracy and F1. It holds while the calibration holds: under
covariate shift (the inputs move, failures still follow them as in training), not when the relation between
inputs and failures itself changes (concept drift), which only labels can show.
"""

from __future__ import annotations

import numpy as np


def expected_confusion(probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    p = np.asarray(probabilities, dtype=np.float64)
    p = p[np.isfinite(p)]
    called = p >= threshold
    return {"tp": float(p[called].sum()), "fp": float((1 - p[called]).sum()),
            "fn": float(p[~called].sum()), "tn": float((1 - p[~called]).sum())}


def confusion_metrics(cells: dict[str, float]) -> dict[str, float]:
    tp, fp, fn, tn = cells["tp"], cells["fp"], cells["fn"], cells["tn"]
    n = tp + fp + fn + tn
    return {"accuracy": (tp + tn) / n if n else float("nan"),
            "f1": 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else float("nan"),
            "precision": tp / (tp + fp) if (tp + fp) else float("nan"),
            "recall": tp / (tp + fn) if (tp + fn) else float("nan"),
            "failure_rate": (tp + fn) / n if n else float("nan")}


def estimated_performance(probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    """Expected accuracy, F1, precision, recall and failure rate, from calibrated probabilities alone."""
    return confusion_metrics(expected_confusion(probabilities, threshold))


def measured_performance(probabilities: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """The same metrics counted against known outcomes (where labels arrive later), to set beside the estimate."""
    p, y = np.asarray(probabilities, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    keep = np.isfinite(p) & np.isfinite(y)
    called, failed = p[keep] >= threshold, y[keep] > 0.5
    return confusion_metrics({"tp": float(np.sum(called & failed)), "fp": float(np.sum(called & ~failed)),
                              "fn": float(np.sum(~called & failed)), "tn": float(np.sum(~called & ~failed))})
