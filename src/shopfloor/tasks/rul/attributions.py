"""How a RUL model explains an estimate: how many cycles of it each sensor accounts for, by integrated gradients
from the unit's as-new readings.
"""

from __future__ import annotations

import numpy as np
import torch

from shopfloor.explain import path_attributions
from shopfloor.tasks.rul.network import RULNet

BATCH = 256  # windows explained at once


def sensor_attributions(net: RULNet, inputs: tuple[torch.Tensor, ...], n_settings: int,
                        steps: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Per-sensor attributions [windows, sensors] (summed over the window's cycles) and the reference RUL.

    The reference window reads every sensor as the unit did when its history began (its first cycles, in each
    cycle's operating condition); settings and age are unchanged.
    """
    history, start, age = inputs
    with torch.no_grad():
        conditions = net.conditions
        condition = conditions.condition(history[..., :n_settings])
        as_new = conditions.standardise(start)[0].mean(1, keepdim=True)  # [windows, 1, sensors]
        reference = history.clone()
        reference[..., n_settings:] = conditions.sensor_mean[condition] + conditions.sensor_std[condition] * as_new
    parts, references = [], []
    for s in range(0, len(history), BATCH):
        def rul_of(h, s=s):
            return net(h, start[s:s + BATCH], age[s:s + BATCH])[:, 0]

        a, r = path_attributions(rul_of, history[s:s + BATCH], reference[s:s + BATCH], steps)
        parts.append(a[..., n_settings:].sum(1))
        references.append(r)
    return torch.cat(parts).numpy().astype(np.float64), torch.cat(references).numpy().astype(np.float64)
