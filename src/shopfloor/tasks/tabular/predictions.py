"""What a table model's outputs say, as the columns of its prediction table: probabilities and the decision
(yes/no labels against their thresholds, the most likely class), or the value and its interval (numbers).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def decisions(kind: str, outputs: np.ndarray, thresholds: list[float]) -> np.ndarray:
    """Per row: True where a yes/no label reaches its threshold, the index of the most likely class, or the value."""
    if kind == "binary":
        return outputs >= np.asarray(thresholds)[None, :]
    if kind == "multiclass":
        return outputs.argmax(1)
    return outputs


def prediction_columns(table: dict, kind: str, targets: list[str], classes: list, outputs: np.ndarray,
                       decided: np.ndarray, interval_halfwidth: list[float]) -> dict:
    """`table` (the kept id and date columns) with '<target> probability', '<target> predicted' (and, for
    numbers, '<target> low' and '<target> high') added."""
    if kind == "binary":
        for j, (name, levels) in enumerate(zip(targets, classes, strict=True)):
            table[f"{name} probability"] = outputs[:, j]
            table[f"{name} predicted"] = np.where(decided[:, j], levels[1], levels[0])
    elif kind == "multiclass":
        name, levels = targets[0], classes[0]
        for i, level in enumerate(levels):
            table[f"{name} probability {level}"] = outputs[:, i]
        table[f"{name} predicted"] = np.asarray(levels, dtype=object)[decided]
        table[f"{name} predicted"] = pd.Series(table[f"{name} predicted"]).infer_objects().to_numpy()
    else:
        for j, name in enumerate(targets):
            table[f"{name} predicted"] = outputs[:, j]
            table[f"{name} low"] = outputs[:, j] - interval_halfwidth[j]
            table[f"{name} high"] = outputs[:, j] + interval_halfwidth[j]
    return table
