"""The parts of a table model's fit that need no fitted model: the network's shape for the training numbers,
its target-aware bin edges, the losses it learns and stops on, the strata its folds keep, and the digest
that fingerprints the training data. `TabularModel.fit` (model.py) puts them together.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from shopfloor.tasks.tabular.network import TabularNet


def architecture(numbers: np.ndarray, n_outputs: int, interactions: int) -> dict:
    """The shape of the network for these training numbers (saved in the manifest): which columns are read on a
    log scale (never negative, more than two levels), which may be missing, and whether pairs are learned
    (at most `interactions` numeric columns)."""
    with np.errstate(invalid="ignore"):
        minimum = np.nanmin(numbers, axis=0) if len(numbers) else np.zeros(numbers.shape[1])
        levels = [len(np.unique(c[~np.isnan(c)])) for c in numbers.T]
    return {
        "n_outputs": n_outputs,
        "n_numeric": int(numbers.shape[1]),
        "log_index": [j for j in range(numbers.shape[1]) if minimum[j] >= 0 and levels[j] > 2],
        "missing_index": [j for j in range(numbers.shape[1]) if np.isnan(numbers[:, j]).any()],
        "pairs": 1 < numbers.shape[1] <= interactions,
    }


def bin_edges(features: np.ndarray, y: np.ndarray, n_bins: int, kind: str) -> list[list[float]]:
    """Target-aware bin edges per feature: the split points of a shallow decision tree.

    Edges are fitted on all training rows, the cross-fitting folds included; a tree of at
    most `n_bins` leaves per feature is too small to carry more than a trace of the labels.
    """
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    tree_class = DecisionTreeRegressor if kind == "regression" else DecisionTreeClassifier
    min_leaf = max(3, len(features) // (40 * n_bins))
    edges = []
    for column in features.T:
        tree = tree_class(max_leaf_nodes=n_bins, min_samples_leaf=min_leaf, random_state=0)
        tree.fit(column[:, None], y)
        splits = tree.tree_.threshold[tree.tree_.feature >= 0]
        low, high = float(column.min()), float(column.max())
        inner = sorted(float(t) for t in np.unique(splits) if low < t < high)
        edges.append([low, *inner, high] if high > low else [low, low + 1.0])
    return edges


def member_loss(kind: str, net: TabularNet, numbers: torch.Tensor, codes: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training loss of a `kind` target, every ensemble member learning on its own."""
    z = net.member_logits(numbers, codes)  # [k, batch, outputs]
    if kind == "binary":
        return F.binary_cross_entropy_with_logits(z, y.expand_as(z))
    if kind == "multiclass":
        return F.cross_entropy(z.flatten(0, 1), y.repeat(z.shape[0]))
    return F.mse_loss(z, y.expand_as(z))


def ranking_score(net: TabularNet, numbers: torch.Tensor, codes: torch.Tensor, y: torch.Tensor) -> float:
    """Minus the mean average precision of the labels: insensitive to overconfidence on random failures."""
    from sklearn.metrics import average_precision_score

    z = net.member_logits(numbers, codes).mean(0).float().cpu().numpy()
    y = y.cpu().numpy()
    scores = [average_precision_score(y[:, j], z[:, j]) for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
    return -float(np.mean(scores)) if scores else 0.0


def strata(kind: str, y: np.ndarray, bags: int) -> np.ndarray | None:
    """The labels the held-out folds keep in proportion (None for regression, or when too rare to keep)."""
    if kind == "regression":
        return None
    labels = y if kind == "multiclass" else (y * (2 ** np.arange(y.shape[1]))).sum(1).astype(int)
    counts = np.bincount(labels)
    folds = max(bags, 5)
    if (counts[labels] < folds).any():  # rare label combinations: stratify on 'any failure'
        labels = np.where(counts[labels] < folds, -1, labels)
        labels = np.unique(labels, return_inverse=True)[1]
        if (np.bincount(labels) < folds).any():
            return None
    return labels


def frame_digest(frame: pd.DataFrame) -> str:
    """A short digest of the training table's values, saved in its fingerprint."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]
