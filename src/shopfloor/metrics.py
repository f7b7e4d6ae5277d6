"""Metrics, decision thresholds and probability calibration.

Rare failures make accuracy meaningless (a model that never predicts a failure is 97 %
'accurate' on AI4I), so classification reports F1, precision, recall, PR-AUC and MCC next to
it, and the decision threshold is chosen on held-out rows rather than left at 0.5.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn import metrics as skm

CLASSIFICATION_KEYS = ("accuracy", "f1", "f1_macro", "precision", "recall", "roc_auc", "pr_auc", "mcc")
REGRESSION_KEYS = ("rmse", "mae", "r2")


def binary_metrics(y: np.ndarray, proba: np.ndarray, decision: np.ndarray) -> dict[str, float]:
    """Metrics of one yes/no target: f1, precision, recall are for the positive class."""
    y, decision = np.asarray(y).astype(int), np.asarray(decision).astype(int)
    both = len(np.unique(y)) == 2
    return {
        "accuracy": float(skm.accuracy_score(y, decision)),
        "f1": float(skm.f1_score(y, decision, zero_division=0)),
        "f1_macro": float(skm.f1_score(y, decision, average="macro", zero_division=0)),
        "precision": float(skm.precision_score(y, decision, zero_division=0)),
        "recall": float(skm.recall_score(y, decision, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(y, proba)) if both else float("nan"),
        "pr_auc": float(skm.average_precision_score(y, proba)) if both else float("nan"),
        "mcc": float(skm.matthews_corrcoef(y, decision)),
    }


def multiclass_metrics(y: np.ndarray, proba: np.ndarray, decision: np.ndarray) -> dict[str, float]:
    """y and decision are class indices; proba is [N, classes]. f1/precision/recall are macro."""
    labels = np.arange(proba.shape[1])
    present = np.unique(y)
    try:
        if len(present) == 2:  # two classes: sklearn's one-vs-rest wants one score column, the second class's
            roc = skm.roc_auc_score(y == present[1], proba[:, present[1]] / proba[:, present].sum(1))
        elif len(present) > 2:
            roc = skm.roc_auc_score(y, proba[:, present] / proba[:, present].sum(1, keepdims=True),
                                    multi_class="ovr", labels=present)
        else:
            roc = float("nan")
    except ValueError:
        roc = float("nan")
    onehot = (y[:, None] == labels[None, :]).astype(int)
    keep = onehot.sum(0) > 0
    f1_macro = float(skm.f1_score(y, decision, labels=present, average="macro", zero_division=0))
    return {
        "accuracy": float(skm.accuracy_score(y, decision)),
        "f1": f1_macro,
        "f1_macro": f1_macro,
        "precision": float(skm.precision_score(y, decision, labels=present, average="macro", zero_division=0)),
        "recall": float(skm.recall_score(y, decision, labels=present, average="macro", zero_division=0)),
        "roc_auc": float(roc),
        "pr_auc": float(skm.average_precision_score(onehot[:, keep], proba[:, keep], average="macro")),
        "mcc": float(skm.matthews_corrcoef(y, decision)),
    }


def regression_metrics(y: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    y, prediction = np.asarray(y, dtype=float), np.asarray(prediction, dtype=float)
    return {
        "rmse": float(np.sqrt(np.mean((y - prediction) ** 2))),
        "mae": float(np.mean(np.abs(y - prediction))),
        "r2": float(skm.r2_score(y, prediction)) if len(y) > 1 else float("nan"),
    }


def best_threshold(y: np.ndarray, proba: np.ndarray, miss_cost: float | None = None,
                   false_alarm_cost: float | None = None) -> float:
    """The probability threshold that maximises F1, or minimises the expected cost.

    With costs, a missed failure costs `miss_cost` and a false alarm `false_alarm_cost`.
    The threshold is placed halfway between neighbouring scores so that it does not
    sit exactly on a training row's probability.
    """
    y = np.asarray(y).astype(int)
    order = np.argsort(-proba, kind="stable")
    p, t = proba[order], y[order]
    tp = np.cumsum(t)
    fp = np.cumsum(1 - t)
    positives = t.sum()
    # candidate k: flag the k+1 highest scores; only where the next score differs
    distinct = np.r_[p[1:] < p[:-1], True]
    if miss_cost is not None or false_alarm_cost is not None:
        cost = (positives - tp) * (miss_cost or 1.0) + fp * (false_alarm_cost or 1.0)
        score = -cost
        no_alarm = -positives * (miss_cost or 1.0)
    else:
        score = 2 * tp / (tp + fp + positives + 1e-12)
        no_alarm = 0.0
    score = np.where(distinct, score, -np.inf)
    k = int(np.argmax(score))
    if score[k] <= no_alarm:
        # never raising an alarm is best: above every score, even a saturated 1.0 (so may exceed 1)
        return float(p[0] + 1e-6)
    below = p[k + 1] if k + 1 < len(p) else 0.0
    return float((p[k] + below) / 2)


def fit_platt(logits: np.ndarray, y: np.ndarray, steps: int = 200) -> tuple[float, float]:
    """Platt scaling: p = sigmoid(a * logit + b), fitted by log-loss on held-out rows."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    target = torch.as_tensor(y, dtype=torch.float64)
    a = torch.ones((), dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([a, b], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a * z + b, target)
        loss.backward()
        return loss

    optimizer.step(closure)
    a_value, b_value = float(a.detach()), float(b.detach())
    if not np.isfinite(a_value) or a_value <= 0:  # degenerate held-out set: keep the raw model
        return 1.0, 0.0
    return a_value, b_value


def fit_temperature(logits: np.ndarray, y: np.ndarray, steps: int = 200) -> float:
    """Temperature scaling for multiclass: softmax(logits / T), T fitted on held-out rows."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    target = torch.as_tensor(y, dtype=torch.long)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), target)
        loss.backward()
        return loss

    optimizer.step(closure)
    t = float(log_t.detach().exp())
    return t if np.isfinite(t) and t > 0 else 1.0


def calibration_curve(y: np.ndarray, proba: np.ndarray, bins: int = 10, strategy: str = "quantile") -> dict[str, list[float]]:
    """Mean predicted probability vs observed frequency per bin.

    strategy 'quantile': equal-count bins (every point equally reliable); 'uniform': equal-width
    bins over [0, 1], empty bins left out (the reliability diagram, readable when failures are rare
    and most probabilities sit near 0).
    """
    y, proba = np.asarray(y, dtype=float), np.asarray(proba, dtype=float)
    if strategy == "uniform":
        index = np.minimum((proba * bins).astype(int), bins - 1)
        groups = [np.flatnonzero(index == b) for b in range(bins)]
    else:
        groups = np.array_split(np.argsort(proba), bins)
    groups = [g for g in groups if len(g)]
    return {
        "predicted": [float(proba[g].mean()) for g in groups],
        "observed": [float(y[g].mean()) for g in groups],
        "count": [len(g) for g in groups],
    }


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, bins: int = 10) -> float:
    curve = calibration_curve(y, proba, bins)
    n = sum(curve["count"])
    return float(sum(c * abs(p - o) for p, o, c in zip(curve["predicted"], curve["observed"], curve["count"], strict=True)) / n)


def nasa_score(rul_true: np.ndarray, rul_pred: np.ndarray) -> float:
    """PHM08 scoring function: late predictions (d > 0) cost more than early ones (Saxena et al. 2008)."""
    d = np.asarray(rul_pred, dtype=np.float64) - np.asarray(rul_true, dtype=np.float64)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1, np.exp(d / 10.0) - 1)))


def rul_metrics(rul_true: np.ndarray, rul_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and NASA score (summed over units) of remaining-useful-life estimates in cycles."""
    rul_true, rul_pred = np.asarray(rul_true, dtype=np.float64), np.asarray(rul_pred, dtype=np.float64)
    error = rul_pred - rul_true
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error))),
            "nasa_score": nasa_score(rul_true, rul_pred), "units": float(len(rul_true))}


def interval_metrics(truth: np.ndarray, low: np.ndarray, high: np.ndarray) -> dict[str, float]:
    """Share of true values inside [low, high] (coverage) and the mean interval width."""
    truth, low, high = (np.asarray(a, dtype=np.float64) for a in (truth, low, high))
    return {"coverage": float(np.mean((low <= truth) & (truth <= high))), "interval_width": float(np.mean(high - low))}


def anomaly_metrics(is_defect: np.ndarray, scores: np.ndarray, decision: np.ndarray) -> dict[str, float]:
    """Image-level: AUROC of the scores, and F1/precision/recall of the decisions (defect = positive)."""
    is_defect, decision = np.asarray(is_defect).astype(int), np.asarray(decision).astype(int)
    both = len(np.unique(is_defect)) == 2
    return {
        "image_auroc": float(skm.roc_auc_score(is_defect, scores)) if both else float("nan"),
        "f1": float(skm.f1_score(is_defect, decision, zero_division=0)),
        "precision": float(skm.precision_score(is_defect, decision, zero_division=0)),
        "recall": float(skm.recall_score(is_defect, decision, zero_division=0)),
        "false_alarm_rate": float(decision[is_defect == 0].mean()) if (is_defect == 0).any() else float("nan"),
    }


def pixel_auroc(masks: list[np.ndarray], maps: list[np.ndarray]) -> float:
    """AUROC over every pixel of every image: defect pixels against good ones."""
    truth = np.concatenate([m.ravel() for m in masks])
    if truth.all() or not truth.any():
        return float("nan")
    return float(skm.roc_auc_score(truth, np.concatenate([a.ravel() for a in maps])))


def aupro(masks: list[np.ndarray], maps: list[np.ndarray], fpr_limit: float = 0.3, steps: int = 300) -> float:
    """Area under the per-region-overlap curve up to `fpr_limit` false-positive rate, normalised to 0..1.

    Unlike pixel AUROC, every connected defect region counts the same, so a large 'uneven' patch
    cannot hide a missed hairline crack (Bergmann et al., MVTec AD, 2021).
    """
    from scipy import ndimage

    good = np.sort(np.concatenate([a[~m].ravel() for m, a in zip(masks, maps, strict=True)]))
    regions = []
    for m, a in zip(masks, maps, strict=True):
        labelled, count = ndimage.label(m)
        regions += [np.sort(a[labelled == r]) for r in range(1, count + 1)]
    if not regions or not len(good):
        return float("nan")
    # thresholds that sweep the false-positive rate from 0 to the limit
    thresholds = np.quantile(good, 1 - np.linspace(0, fpr_limit, steps))
    fpr = 1 - np.searchsorted(good, thresholds, side="left") / len(good)
    pro = np.mean([1 - np.searchsorted(r, thresholds, side="left") / len(r) for r in regions], axis=0)
    return float(np.trapezoid(pro, fpr) / fpr_limit)
