"""Confidence-based performance estimation (the idea of NannyML's CBPE, written afresh): how well a calibrated
yes/no classifier is doing on new rows whose outcome is not known yet.

A calibrated probability p says: of the rows given p, a share p fail. So a row the model calls a failure
(p >= threshold) is a true positive with probability p and a false alarm with probability 1 - p; a row it calls
good is a missed failure with probability p. Summing these expected cells over the rows gives the expected
confusion matrix, and from it the expected accuracy and F1. It holds while the calibration holds: under
covariate shift (the inputs move, failures still follow them as in training), not when the relation between
inputs and failures itself changes (concept drift), which only labels can show.

The model's own calibration (Platt scaling: two numbers) is a sigmoid; the table model's out-of-fold outputs do
not follow one in the tails (AI4I: rows given 0.03-0.3 failed at about 0.8 times their probability, rows given
0.7-0.9 at 0.97), and F1 is made of exactly those rows: about 2,900 of 3,000 rows are called good, so a small
excess in each of their probabilities adds up to missed failures that never happened (CBPE's F1 was 0.01-0.06
low). So a classifier's profile also carries its reliability curve: the failure rate observed at each
probability on out-of-fold rows (isotonic regression), through which CBPE reads the probabilities. The decisions
stay the model's own (probability >= threshold); only the expected cells use the curve.
"""

from __future__ import annotations

import numpy as np

RELIABILITY_KNOTS = 200  # at most this many (probability, rate) points: the profile stays small whatever the rows
RELIABILITY_MIN_CLASS = 20  # fewer failures (or good rows) than this out of fold: too few to draw a curve from


def reliability_curve(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, list[float]] | None:
    """The failure rate observed at each probability, {'risk': [...], 'rate': [...]} (both increasing), from
    held-out rows and their labels: isotonic regression, one knot per block it pools, at the block's mean
    probability; None when there are too few failures or good rows to trust it."""
    p, y = np.asarray(probabilities, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    keep = np.isfinite(p) & np.isfinite(y)
    p, y = p[keep], (y[keep] > 0.5).astype(np.float64)
    if min(y.sum(), len(y) - y.sum()) < RELIABILITY_MIN_CLASS:
        return None
    from sklearn.isotonic import IsotonicRegression  # lazy: the stream imports this package

    order = np.argsort(p, kind="stable")
    p, y = p[order], y[order]
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0).fit_transform(p, y)
    block = np.r_[0, np.cumsum(np.diff(fitted) != 0)]  # pooled runs of rows share one fitted rate
    counts = np.bincount(block)
    risk, rate = np.bincount(block, weights=p) / counts, np.bincount(block, weights=fitted) / counts
    if len(risk) > RELIABILITY_KNOTS:
        levels = np.quantile(p, np.linspace(0, 1, RELIABILITY_KNOTS))
        risk, rate = levels, np.interp(levels, risk, rate)
    return {"risk": risk.tolist(), "rate": rate.tolist()}


def expected_confusion(probabilities: np.ndarray, threshold: float,
                       reliability: dict[str, list[float]] | None = None) -> dict[str, float]:
    """Expected cells of the confusion matrix; with a `reliability` curve each probability counts at the failure
    rate the curve gives it (the call itself is still probability >= threshold)."""
    p = np.asarray(probabilities, dtype=np.float64)
    p = p[np.isfinite(p)]
    called = p >= threshold
    if reliability:
        p = np.interp(p, reliability["risk"], reliability["rate"])
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


def estimated_performance(probabilities: np.ndarray, threshold: float,
                          reliability: dict[str, list[float]] | None = None) -> dict[str, float]:
    """Expected accuracy, F1, precision, recall and failure rate, from calibrated probabilities alone (read
    through the classifier's `reliability` curve where its profile has one: `classifier_estimate`)."""
    return confusion_metrics(expected_confusion(probabilities, threshold, reliability))


def classifier_estimate(classifier: dict, probabilities: np.ndarray) -> dict[str, float]:
    """`estimated_performance` as a profile's classifier entry says: its threshold, and its reliability curve
    when it has one (profiles written before the curve have none and read the probabilities as they are)."""
    return estimated_performance(probabilities, classifier["threshold"], classifier.get("reliability"))


def classifier_profile(probabilities: np.ndarray, labels: np.ndarray, threshold: float, output: str = "risk") -> dict:
    """What a yes/no model's profile says for CBPE, from its out-of-fold probabilities and labels: the output
    column, the decision threshold, the reliability curve, and the estimated and measured performance there."""
    classifier = {"output": output, "threshold": float(threshold),
                  "reliability": reliability_curve(probabilities, labels)}
    classifier["reference"] = {"estimated": classifier_estimate(classifier, probabilities),
                               "measured": measured_performance(probabilities, labels, threshold)}
    return classifier


def measured_performance(probabilities: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """The same metrics counted against known outcomes (where labels arrive later), to set beside the estimate."""
    p, y = np.asarray(probabilities, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    keep = np.isfinite(p) & np.isfinite(y)
    called, failed = p[keep] >= threshold, y[keep] > 0.5
    return confusion_metrics({"tp": float(np.sum(called & failed)), "fp": float(np.sum(called & ~failed)),
                              "fn": float(np.sum(~called & failed)), "tn": float(np.sum(~called & ~failed))})
