"""The parts of a RUL fit that need no fitted model: the per-condition sensor statistics the network
standardises with, which units each ensemble member holds out, and the loss and stopping score.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import KFold

from shopfloor.tasks.rul.network import QUANTILES, RULNet


def set_normalisation(net: RULNet, condition_model: dict, sensors: np.ndarray) -> None:
    """Put the operating conditions (setting scale, centroids) and each sensor's mean and spread per condition
    into the network, so that every face standardises as training did."""
    conditions = net.conditions
    labels = condition_model["labels"]
    mean = np.stack([np.nanmean(sensors[labels == c], axis=0) for c in range(condition_model["k"])])
    std = np.stack([np.nanstd(sensors[labels == c], axis=0) for c in range(condition_model["k"])])
    std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)  # a sensor constant in one condition
    with torch.no_grad():
        conditions.setting_scale.copy_(torch.as_tensor(condition_model["scale"], dtype=torch.float32))
        conditions.centroids.copy_(torch.as_tensor(condition_model["centroids"], dtype=torch.float32))
        conditions.sensor_mean.copy_(torch.as_tensor(np.nan_to_num(mean), dtype=torch.float32))
        conditions.sensor_std.copy_(torch.as_tensor(std, dtype=torch.float32))


def unit_folds(n_units: int, members: int, seed: int) -> np.ndarray:
    """Per unit: the member that holds it out (cross-fitting); with one member, 0 marks the held-out fifth."""
    fold = np.zeros(n_units, dtype=np.int64)
    if members == 1:  # one network: a fifth of the units held out for stopping and calibration
        held_out = next(KFold(5, shuffle=True, random_state=seed).split(np.arange(n_units)))[1]
        fold[:] = 1
        fold[held_out] = 0
        return fold
    splits = min(members, n_units)
    for k, (_, rows) in enumerate(KFold(splits, shuffle=True, random_state=seed).split(np.arange(n_units))):
        fold[rows] = k
    return fold


def rul_loss(rul_cap: float, net: RULNet, history: torch.Tensor, start: torch.Tensor, age: torch.Tensor,
             rul: torch.Tensor, trains_on: torch.Tensor) -> torch.Tensor:
    """Squared error on the capped RUL plus pinball loss on the uncapped one, per member on its own units."""
    out = net.member_outputs(history, start, age) / net.scale  # [members, batch, 4]
    y = (rul / net.scale)[None, :]
    capped = torch.clamp(y, max=rul_cap / net.scale)
    loss = (out[..., 0] - capped) ** 2
    for j, q in enumerate(QUANTILES):
        error = y - out[..., 1 + j]
        loss = loss + torch.maximum(q * error, (q - 1) * error)
    weight = trains_on.T.to(loss.dtype)
    return (loss * weight).sum() / weight.sum().clamp(min=1)


def capped_rul_error(rul_cap: float, net: RULNet, history, start, age, rul, trains_on) -> float:
    """Early stopping watches the capped-RUL error alone: the quantile heads follow the features."""
    out = net.member_outputs(history, start, age)[..., 0] / net.scale
    error = (out - torch.clamp(rul, max=rul_cap)[None, :] / net.scale) ** 2
    weight = trains_on.T.to(error.dtype)
    return float((error * weight).sum() / weight.sum().clamp(min=1))
