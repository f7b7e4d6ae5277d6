"""How a table model explains itself: per-row attributions of every feature (integrated gradients from a
typical row) and, over a sample of training rows, each feature's importance.
"""

from __future__ import annotations

import numpy as np
import torch

from shopfloor.explain import integrated_gradients
from shopfloor.tasks.tabular.network import TabularNet


def attribution_columns(net: TabularNet, numbers: np.ndarray, codes: np.ndarray, outputs: np.ndarray,
                        baseline_codes: torch.Tensor, kind: str, targets: list[str], features: list[str],
                        table: dict, steps: int = 32) -> dict:
    """`table` (the kept id and date columns) with, per explained output, its prediction, its baseline and one
    column per feature (see `TabularModel.explain`)."""
    labels = range(outputs.shape[1]) if kind != "multiclass" else [None]
    for j in labels:
        chosen = outputs.argmax(1) if j is None else np.full(len(numbers), j)
        num_attr, cat_attr = integrated_gradients(net, torch.from_numpy(numbers), torch.from_numpy(codes),
                                                  baseline_codes, torch.from_numpy(chosen), steps)
        prefix = "" if len(labels) == 1 else f"{targets[j]}: "
        table[f"{prefix}prediction"] = outputs[np.arange(len(numbers)), chosen]
        attributions = np.concatenate([num_attr.numpy(), cat_attr.numpy()], axis=1)
        table[f"{prefix}baseline"] = table[f"{prefix}prediction"] - attributions.sum(1)
        for k, feature in enumerate(features):
            name = f"{prefix}{feature}"
            table[f"{name} attribution" if name in table else name] = attributions[:, k]
    return table


def feature_importance(net: TabularNet, numbers: np.ndarray, codes: np.ndarray, outputs: np.ndarray,
                       baseline_codes: torch.Tensor, kind: str, features: list[str]) -> dict[str, float]:
    """Mean |attribution| per feature over the given rows (the first output, or the predicted class), largest first."""
    chosen = outputs.argmax(1) if kind == "multiclass" else np.zeros(len(numbers), dtype=np.int64)
    num_attr, cat_attr = integrated_gradients(net, torch.from_numpy(numbers), torch.from_numpy(codes),
                                              baseline_codes, torch.from_numpy(chosen), steps=16)
    scores = np.abs(np.concatenate([num_attr.numpy(), cat_attr.numpy()], axis=1)).mean(0)
    ranked = sorted(zip(features, scores.tolist(), strict=True), key=lambda kv: -kv[1])
    return dict(ranked)
