"""The forecasting network: a DLinear-like linear head, an optional patch mixer, non-crossing quantiles.

Every input comes standardised by the estimator (per series and column, with the training history's
statistics). The network then works per window:

1. RevIN: each window's look-back is centred and scaled by its own mean and spread (per channel), and the
   forecast is put back on that scale at the end. Levels shift (a line's rate after a change-over, a
   transformer's load in summer); a window's own statistics follow such a shift, the training history's do not.
2. The linear head (DLinear): the look-back split into its moving-average trend and the rest, each mapped to
   the horizon by one linear layer shared by every channel (channel-independent).
3. The patch mixer (PatchTST/TSMixer-like, `mixer=True`): the look-back cut into overlapping patches, each
   embedded, mixed across patches (and across channels with `mixing=True`, the only way past covariates reach
   a target), squeezed, flattened and mapped to a correction of the linear head's forecast. Its last layer starts
   at zero, so training starts from the linear head. A series embedding joins it when there are many series.
4. Known covariates (calendar features, planned production) act step by step on the horizon through a small
   per-step layer.
5. Quantiles: an anchor (the quantile nearest 0.5) next to the point forecast and cumulative softplus steps
   above and below it, so they never cross; a learned spread per horizon step and quantile, shifted per window
   by a summary of it (the mixer's features, or the last 24 steps' volatility without the mixer); all in units
   of the window's spread. The estimator recalibrates them by conformal prediction.

Chosen by measurement (`python benchmarks/forecast.py`, results/forecast.json, 2026-12-06): the three variants
trained through ForecastModel on ETTh1 and ETTh2 (look-back 336, all 7 columns, research split), chosen on the
mean **validation** MSE at horizons 96 and 336 (standardised; where all three ran):

    validation MSE        ETTh1 96  ETTh1 336  ETTh2 96  ETTh2 336   mean    train s (ETTh1 96, shared cores)
    linear head alone       0.682     1.188      0.211     0.372     0.613      60
    + patch mixer           0.681     1.212      0.210     0.368     0.618     142
    + mixer mixing channels 0.698     1.198      0.213     0.379     0.622     296

so the default is the linear head alone (`mixer=False`): as good on the validation months on average, 2-5x
cheaper to train, and on the test months as good or better at 192 and 720 too (ETTh1 test MSE
0.385/0.418/0.453/0.466 by horizon). Mixing channels never beat the linear head on validation, also not on the
oil temperature with the loads as past covariates (validation MSE 0.0531 vs 0.0500 on ETTh1, 0.0893 vs 0.0863 on
ETTh2). The mixer stays an option (`architecture={"mixer": True}`) for data with structure a linear map of the
look-back cannot hold (its correction starts at zero, so it only moves away from the linear forecast when that
helps the held-out loss).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch
from torch import Tensor, nn
from torch.nn import functional as F

DEFAULT_QUANTILES = (0.1, 0.5, 0.9)
SQUEEZE = 8  # features per patch that reach the flattened head


class ForecastNet(nn.Module):
    """Look-back of targets and covariates -> point forecast and quantiles of every target over the horizon.

    forward(history [b, lookback, targets + past], known_history [b, lookback, known],
            known_future [b, horizon, known], series [b] long) -> [b, horizon, targets, 1 + len(quantiles)]
    where [..., 0] is the point (mean) forecast and [..., 1:] the quantiles in the order given.
    """

    def __init__(self, *, lookback: int, horizon: int, targets: int, past: int = 0, known: int = 0,
                 quantiles: tuple[float, ...] = DEFAULT_QUANTILES, series: int = 1, mixer: bool = False,
                 mixing: bool = False, patch: int = 16, stride: int = 8, width: int = 16, kernel: int = 25,
                 dropout: float = 0.1, revin: bool = True) -> None:
        super().__init__()
        check_shape(lookback=lookback, horizon=horizon, targets=targets, past=past, known=known, series=series)
        self.lookback, self.horizon, self.targets, self.past, self.known = lookback, horizon, targets, past, known
        self.quantiles = tuple(float(q) for q in quantiles)
        self.use_mixer, self.mixing, self.revin, self.kernel = mixer, mixing, revin, kernel
        self.channels = targets + past + (known if mixing else 0)
        self.trend = nn.Linear(lookback, horizon)
        self.seasonal = nn.Linear(lookback, horizon)
        summary = 1  # without the mixer, the quantiles see the window's recent volatility
        if mixer:
            self.mixer = PatchMixer(lookback, self.channels, series, patch=min(patch, lookback),
                                    stride=min(stride, patch, lookback), width=width, dropout=dropout, mixing=mixing)
            summary = width
            self.correction = nn.Linear(self.mixer.features, horizon)
            nn.init.zeros_(self.correction.weight)
            nn.init.zeros_(self.correction.bias)
        self.ahead = StepCovariates(known, targets, width) if known else None
        self.quantile_head = QuantileHead(summary, horizon, self.quantiles)

    def forward(self, history: Tensor, known_history: Tensor, known_future: Tensor, series: Tensor) -> Tensor:
        values = history[..., :self.targets + self.past]
        if self.mixing and self.known:
            values = torch.cat([values, known_history], dim=-1)
        centre, spread = window_statistics(values, self.revin)
        x = ((values - centre) / spread).transpose(1, 2)  # [b, channels, lookback]
        trend = moving_average(x, self.kernel)
        point = self.trend(trend) + self.seasonal(x - trend)  # [b, channels, horizon]
        if self.use_mixer:
            features, summary = self.mixer(x, series)
            point = point + self.correction(features)
        else:
            summary = x[..., -min(24, self.lookback):].std(dim=-1, keepdim=True, unbiased=False)
        point, summary = point[:, :self.targets], summary[:, :self.targets]
        if self.ahead is not None:
            point = point + self.ahead(known_future).transpose(1, 2)
        bands = self.quantile_head(summary, point)  # [b, targets, horizon, q]
        out = torch.cat([point.unsqueeze(-1), bands], dim=-1).transpose(1, 2)  # [b, horizon, targets, 1 + q]
        return out * spread[:, :, :self.targets].unsqueeze(-1) + centre[:, :, :self.targets].unsqueeze(-1)


class PatchMixer(nn.Module):
    """Overlapping patches of each channel's look-back, embedded, mixed across patches (and channels) ->
    (flattened features [b, channels, patches * SQUEEZE], a summary per channel [b, channels, width])."""

    def __init__(self, lookback: int, channels: int, series: int, *, patch: int, stride: int, width: int,
                 dropout: float, mixing: bool) -> None:
        super().__init__()
        self.patches = (max(lookback - patch, 0)) // stride + 1
        self.embed = nn.Conv1d(1, width, patch, stride=stride)  # a linear layer on every patch
        self.position = nn.Parameter(torch.zeros(1, width, self.patches))
        self.series = nn.Embedding(series, width) if series > 1 else None
        self.across_time = nn.Sequential(nn.LayerNorm(self.patches), nn.Linear(self.patches, self.patches), nn.GELU(),
                                         nn.Dropout(dropout))
        self.across_width = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.GELU(),
                                          nn.Dropout(dropout), nn.Linear(2 * width, width))
        self.across_channels = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, channels), nn.GELU(),
                                             nn.Dropout(dropout)) if mixing and channels > 1 else None
        self.squeeze = nn.Linear(width, SQUEEZE)  # the flattened head's cost grows with width x patches x horizon
        self.dropout = nn.Dropout(dropout)
        self.features = SQUEEZE * self.patches

    def forward(self, x: Tensor, series: Tensor) -> Tensor:
        batch, channels, lookback = x.shape
        z = self.embed(x.reshape(batch * channels, 1, lookback)) + self.position  # [b*c, width, patches]
        if self.series is not None:
            z = z + self.series(series).repeat_interleave(channels, dim=0).unsqueeze(-1)
        z = z + self.across_time(z)
        z = z + self.across_width(z.transpose(1, 2)).transpose(1, 2)
        if self.across_channels is not None:
            width = z.shape[1]
            by_channel = z.reshape(batch, channels, width * self.patches).transpose(1, 2)
            z = (by_channel + self.across_channels(by_channel)).transpose(1, 2).reshape(batch * channels, width,
                                                                                          self.patches)
        summary = z.mean(dim=-1).reshape(batch, channels, -1)  # [b, channels, width]
        flat = self.squeeze(z.transpose(1, 2)).reshape(batch, channels, -1)  # [b, channels, patches * SQUEEZE]
        return self.dropout(flat), summary


class StepCovariates(nn.Module):
    """Known covariates at each horizon step -> an additive effect on every target at that step."""

    def __init__(self, known: int, targets: int, width: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(known, width), nn.GELU(), nn.Linear(width, targets))

    def forward(self, known_future: Tensor) -> Tensor:
        return self.layers(known_future)  # [b, horizon, targets]


class QuantileHead(nn.Module):
    """Quantiles that cannot cross: an anchor near the median, cumulative softplus steps above and below it.

    Steps are in units of the window's spread; the anchor is the point forecast plus a learned offset (a skewed
    distribution's median is not its mean).
    """

    def __init__(self, features: int, horizon: int, quantiles: tuple[float, ...]) -> None:
        super().__init__()
        ordered = sorted(range(len(quantiles)), key=lambda i: quantiles[i])
        levels = [quantiles[i] for i in ordered]
        self.count, self.horizon = len(levels), horizon
        self.anchor = min(range(len(levels)), key=lambda i: abs(levels[i] - 0.5), default=0)
        self.layer = nn.Linear(features, max(self.count, 1))  # a window's shift of every step's spread
        nn.init.zeros_(self.layer.weight)
        nn.init.zeros_(self.layer.bias)
        self.steps = nn.Parameter(torch.zeros(horizon, max(self.count, 1)))  # how spread grows with the step
        # start with the steps of a unit normal between neighbouring levels
        # plain floats, no tensor read back: a saved model is rebuilt on the meta device before its weights load
        z = [NormalDist().inv_cdf(min(max(q, 1e-4), 1 - 1e-4)) for q in levels] or [0.0]
        start = [0.0 if i == self.anchor else inverse_softplus(max(abs(z[i] - z[i + (1 if i < self.anchor else -1)]),
                                                                   1e-3)) for i in range(len(z))]
        with torch.no_grad():
            self.steps.copy_(torch.tensor(start).expand(horizon, -1))
        self.register_buffer("given_order", torch.tensor([ordered.index(i) for i in range(len(levels))],
                                                         dtype=torch.long))

    def forward(self, features: Tensor, point: Tensor) -> Tensor:
        if self.count == 0:
            return point.new_zeros(*point.shape, 0)
        raw = self.layer(features).unsqueeze(-2) + self.steps  # [b, targets, horizon, q]
        anchor = point.unsqueeze(-1) + raw[..., self.anchor:self.anchor + 1]
        steps = F.softplus(raw)
        below = anchor - torch.flip(torch.cumsum(torch.flip(steps[..., :self.anchor], [-1]), -1), [-1])
        above = anchor + torch.cumsum(steps[..., self.anchor + 1:], -1)
        ordered = torch.cat([below, anchor, above], dim=-1)
        return ordered.index_select(-1, self.given_order)


def window_statistics(values: Tensor, revin: bool) -> tuple[Tensor, Tensor]:
    """Each window's mean and spread over its look-back, per channel ([b, 1, channels] each); 0 and 1 without RevIN."""
    if not revin:
        ones = values.new_ones(values.shape[0], 1, values.shape[2])
        return ones * 0.0, ones
    centre = values.mean(dim=1, keepdim=True)
    spread = torch.sqrt(values.var(dim=1, keepdim=True, unbiased=False) + 1e-5)
    return centre.detach(), spread.detach()


def moving_average(x: Tensor, kernel: int) -> Tensor:
    """The trend of [b, channels, lookback]: a centred moving average, its ends padded with the end values."""
    if kernel <= 1:
        return x
    front, back = (kernel - 1) // 2, kernel // 2
    padded = torch.cat([x[..., :1].expand(-1, -1, front), x, x[..., -1:].expand(-1, -1, back)], dim=-1)
    return F.avg_pool1d(padded, kernel, stride=1)


def inverse_softplus(y: float) -> float:
    return math.log(math.expm1(y))


def check_shape(**sizes: int) -> None:
    """Refuse sizes no window can have, in one line naming the size."""
    for name in ("lookback", "horizon", "targets", "series"):
        if sizes[name] < 1:
            raise ValueError(f"ForecastNet needs {name} >= 1, not {sizes[name]}")
    for name in ("past", "known"):
        if sizes[name] < 0:
            raise ValueError(f"ForecastNet needs {name} >= 0, not {sizes[name]}")


def pinball_loss(output: Tensor, actual: Tensor, quantiles: tuple[float, ...]) -> Tensor:
    """Mean pinball (quantile) loss of output[..., 1:] against actual [b, horizon, targets]."""
    if not quantiles:
        return output.new_zeros(())
    levels = torch.tensor(quantiles, dtype=output.dtype, device=output.device)
    error = actual.unsqueeze(-1) - output[..., 1:]
    return torch.maximum(levels * error, (levels - 1) * error).mean()


def forecast_loss(output: Tensor, actual: Tensor, quantiles: tuple[float, ...]) -> Tensor:
    """Training loss: MSE of the point forecast plus the pinball loss of the quantiles. actual: [batch, horizon, targets]."""
    return F.mse_loss(output[..., 0], actual) + pinball_loss(output, actual, quantiles)
