"""Remaining-useful-life network: operating-condition normalisation, then a small 1D CNN ensemble.

Input is one tensor `history` [batch, window, settings + sensors] of raw values, oldest cycle
first, so that Python, the REST service and ONNX all run the same preprocessing:

1. each cycle is assigned to its nearest operating condition (a centroid of the settings,
   fitted by the estimator); sensors are standardised with that condition's mean and spread.
   Engines flown at six altitudes/throttles read very differently at the same health, and this
   step matters more on such data than the architecture does;
2. the condition one-hot joins the sensors (when there is more than one condition);
3. `members` independent CNNs run side by side as grouped convolutions (one ensemble, one
   forward pass); each ends in four outputs per window: the capped RUL estimate and the
   P10 / P50 / P90 quantiles of the uncapped RUL, all in units of `scale` cycles.
"""

from __future__ import annotations

import torch
from torch import nn

from shopfloor.tasks.tabular.network import MemberLinear

OUTPUTS = ("rul", "p10", "p50", "p90")
QUANTILES = (0.1, 0.5, 0.9)


class OperatingConditions(nn.Module):
    """Nearest-centroid condition per cycle and per-condition sensor standardisation."""

    def __init__(self, n_settings: int, n_sensors: int, n_conditions: int):
        super().__init__()
        self.n_settings, self.n_sensors, self.n_conditions = n_settings, n_sensors, n_conditions
        self.register_buffer("setting_scale", torch.ones(max(n_settings, 1)))
        self.register_buffer("centroids", torch.zeros(n_conditions, max(n_settings, 1)))
        self.register_buffer("sensor_mean", torch.zeros(n_conditions, n_sensors))
        self.register_buffer("sensor_std", torch.ones(n_conditions, n_sensors))

    def condition(self, settings: torch.Tensor) -> torch.Tensor:
        """Index of the nearest condition for every cycle: [..., settings] -> [...]."""
        if self.n_conditions == 1 or self.n_settings == 0:
            return torch.zeros(settings.shape[:-1], dtype=torch.long, device=settings.device)
        scaled = settings / self.setting_scale
        distance = ((scaled.unsqueeze(-2) - self.centroids) ** 2).sum(-1)
        return distance.argmin(-1)

    def standardise(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw cycles [..., settings + sensors] -> standardised sensors [..., sensors] and condition [...]."""
        settings, sensors = history[..., :self.n_settings], history[..., self.n_settings:]
        condition = self.condition(settings)
        standard = (sensors - self.sensor_mean[condition]) / self.sensor_std[condition]
        # a sensor that never reported in a unit reads as its condition's mean
        standard = torch.where(torch.isnan(standard), torch.zeros_like(standard), standard)
        return standard, condition

    def one_hot(self, condition: torch.Tensor) -> torch.Tensor:
        return (condition.unsqueeze(-1) == torch.arange(self.n_conditions, device=condition.device)).float()

    @property
    def d_out(self) -> int:
        """Features per cycle: standardised sensors, and the condition one-hot when there are several."""
        return self.n_sensors + (self.n_conditions if self.n_conditions > 1 else 0)


class RULNet(nn.Module):
    """`members` 1D CNNs over a window of normalised cycles -> capped RUL and uncapped quantiles."""

    def __init__(self, n_settings: int, n_sensors: int, n_conditions: int, window: int, members: int = 5,
                 channels: int = 16, kernel: int = 5, layers: int = 3, hidden: int = 64, dropout: float = 0.1,
                 scale: float = 125.0, baseline: bool = True, age: bool = True, age_scale: float = 200.0):
        super().__init__()
        self.window, self.members, self.channels, self.scale = window, members, channels, scale
        self.baseline, self.age, self.age_scale = baseline, age, age_scale
        self.conditions = OperatingConditions(n_settings, n_sensors, n_conditions)
        convs, d_in = [], self.conditions.d_out + (n_sensors if baseline else 0)
        for _ in range(layers):
            convs += [nn.Conv1d(members * d_in, members * channels, kernel, padding=kernel // 2, groups=members), nn.GELU()]
            d_in = channels
        self.convs = nn.Sequential(*convs)
        self.hidden = MemberLinear(members, channels * window + int(age), hidden)
        self.dropout = nn.Dropout(dropout)
        self.rul_head = MemberLinear(members, hidden, 1)
        self.quantile_head = MemberLinear(members, hidden, len(QUANTILES))

    def member_outputs(self, history: torch.Tensor, start: torch.Tensor, age: torch.Tensor) -> torch.Tensor:
        """-> [members, batch, 4] in cycles.

        history [batch, window, settings + sensors]: the last cycles, raw; start [batch, k, same]:
        the unit's first cycles, its own healthy baseline (units differ from new by manufacture and
        initial wear); age [batch]: cycles since the unit's history began.
        """
        standard, condition = self.conditions.standardise(history)
        parts = [standard]
        if self.conditions.n_conditions > 1:
            parts.append(self.conditions.one_hot(condition))
        if self.baseline:
            parts.append(standard - self.conditions.standardise(start)[0].mean(1, keepdim=True))
        x = torch.cat(parts, dim=-1)
        x = self.convs(x.transpose(1, 2).repeat(1, self.members, 1))  # [batch, members * channels, window]
        x = x.reshape(x.shape[0], self.members, self.channels * self.window)
        if self.age:
            x = torch.cat([x, (age / self.age_scale)[:, None, None].expand(-1, self.members, 1)], dim=-1)
        x = x.transpose(0, 1)
        x = self.dropout(torch.nn.functional.gelu(self.hidden(x)))
        # The quantile heads read the features without training them: the uncapped RUL of a
        # healthy unit is its total life minus its age, which the network could only learn by
        # memorising the training units (measured: validation loss rose from the first epoch).
        q = self.quantile_head(x.detach())
        p10 = q[..., 1:2] - torch.nn.functional.softplus(q[..., 0:1])  # P10 <= P50 <= P90 always
        p90 = q[..., 1:2] + torch.nn.functional.softplus(q[..., 2:3])
        return torch.cat([self.rul_head(x), p10, q[..., 1:2], p90], dim=-1) * self.scale

    def forward(self, history: torch.Tensor, start: torch.Tensor, age: torch.Tensor) -> torch.Tensor:
        """Ensemble mean: [batch, 4] = capped RUL, P10, P50, P90 (before calibration)."""
        return self.member_outputs(history, start, age).mean(0)


class RULEstimate(nn.Module):
    """What a planner gets: [batch, 3] = RUL estimate, interval low, interval high, in cycles.

    The interval is the estimate's band's conformal margins below and above the estimate (or, for
    models saved with one margin, the P10-P90 band widened by it; `finish`). No estimate or bound is
    below zero and the estimate always lies inside its interval. The estimator and the ONNX export
    both run this.
    """

    def __init__(self, net: RULNet, below: list[float], above: list[float], edges: list[float],
                 around: str = "estimate"):
        super().__init__()
        self.net, self.around = net, around
        self.register_buffer("below", torch.tensor(below, dtype=torch.float32))
        self.register_buffer("above", torch.tensor(above, dtype=torch.float32))
        self.register_buffer("edges", torch.tensor(edges, dtype=torch.float32))

    def forward(self, history: torch.Tensor, start: torch.Tensor, age: torch.Tensor) -> torch.Tensor:
        return finish(self.net(history, start, age), self.below, self.above, self.edges, self.around)


def finish(outputs: torch.Tensor, below: torch.Tensor, above: torch.Tensor, edges: torch.Tensor,
           around: str = "estimate") -> torch.Tensor:
    """Raw ensemble outputs [batch, 4] -> [batch, 3]: estimate, low, high.

    The estimate picks its band: band b holds estimates in [edges[b - 1], edges[b]), and its interval
    reaches below[b] under and above[b] over the estimate (len(edges) + 1 of each). With `around`
    "quantiles" the margins widen P10 and P90 instead: a model saved with one margin has edges [inf]
    and that margin in every place, and so predicts as it always did.
    """
    rul = torch.clamp(outputs[:, 0], min=0)
    band = (rul[:, None] >= edges[None, :]).sum(1)  # comparisons and a gather: plain ONNX
    low, high = (rul, rul) if around == "estimate" else (outputs[:, 1], outputs[:, 3])
    low = torch.clamp(torch.minimum(low - below[band], rul), min=0)
    high = torch.maximum(high + above[band], rul)
    return torch.stack([rul, low, high], dim=1)
