"""The tabular network: preprocessing, feature embeddings and an ensemble of MLPs in one module.

Everything between the raw table values and the calibrated output lives here, as buffers
and parameters, so that Python, the REST service and the ONNX graph compute the same thing.

Design, from the tabular deep-learning literature:
- robust scaling with a smooth clip (RealMLP), missing-value indicators;
- a log companion for every non-negative sensor: physics such as power = torque x speed or
  overstrain = tool wear x torque becomes a straight line in log space, which an MLP learns
  from a few hundred failures, where a product of raw values needs far more;
- periodic embeddings of every numeric input (PLR, Gorishniy et al. 2022);
- an ensemble of independent members trained in one batched pass (TabM, Gorishniy et al. 2024):
  every parameter has a leading member axis, so a 'bag' of separately trained networks is
  merged by stacking parameters (`merge_members`).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Preprocess(nn.Module):
    """Raw numbers (NaN = missing) -> imputed, derived, robustly scaled features + missing flags.

    Derived features: the log of every non-negative column and, for tables with few numeric
    columns, pairwise differences (temperature rise) and pairwise log-sums and log-differences
    (products and ratios such as power = torque x speed). They give the network axis-aligned
    handles on the boundaries physics draws in such tables.
    """

    CLIP = 8.0  # robust units; protects the network from wild readings without bending the scale

    def __init__(self, n_numeric: int, log_index: list[int], missing_index: list[int], pairs: bool = False):
        super().__init__()
        diff_a, diff_b = _pairs(n_numeric) if pairs else ([], [])
        log_a, log_b = _pairs(len(log_index)) if pairs else ([], [])
        n_derived = n_numeric + len(log_index) + len(diff_a) + 2 * len(log_a)
        self.register_buffer("fill", torch.zeros(n_numeric))
        self.register_buffer("log_index", torch.tensor(log_index, dtype=torch.long))
        self.register_buffer("log_offset", torch.ones(len(log_index)))
        self.register_buffer("diff_a", torch.tensor(diff_a, dtype=torch.long))
        self.register_buffer("diff_b", torch.tensor(diff_b, dtype=torch.long))
        self.register_buffer("log_a", torch.tensor(log_a, dtype=torch.long))
        self.register_buffer("log_b", torch.tensor(log_b, dtype=torch.long))
        self.register_buffer("center", torch.zeros(n_derived))
        self.register_buffer("scale", torch.ones(n_derived))
        self.register_buffer("missing_index", torch.tensor(missing_index, dtype=torch.long))

    @property
    def n_outputs(self) -> int:
        return self.center.numel() + self.missing_index.numel()

    def derive(self, filled: torch.Tensor) -> torch.Tensor:
        parts = [filled]
        if self.log_index.numel():
            logs = torch.log(filled[:, self.log_index].clamp(min=0) + self.log_offset)
            parts.append(logs)
            if self.log_a.numel():
                parts += [logs[:, self.log_a] + logs[:, self.log_b], logs[:, self.log_a] - logs[:, self.log_b]]
        if self.diff_a.numel():
            parts.append(filled[:, self.diff_a] - filled[:, self.diff_b])
        return torch.cat(parts, dim=1)

    def fit(self, numbers: torch.Tensor) -> Preprocess:
        """Statistics from training numbers: medians fill gaps; median and IQR scale."""
        if numbers.shape[1] == 0:  # a table of categories only
            return self
        median = torch.nan_to_num(torch.nanquantile(numbers.double(), 0.5, dim=0)).float()
        self.fill.copy_(median)
        filled = torch.where(torch.isnan(numbers), median, numbers)
        if self.log_index.numel():
            offset = median[self.log_index].clamp(min=0) * 0.01
            self.log_offset.copy_(torch.where(offset > 0, offset, torch.full_like(offset, 1e-3)))
        derived = self.derive(filled).double()
        q = torch.quantile(derived, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64), dim=0)
        spread = (q[2] - q[0]) / 1.349
        spread = torch.where(spread > 1e-9 * (q[1].abs() + 1), spread, derived.std(dim=0))
        self.center.copy_(q[1].float())
        self.scale.copy_(torch.where(spread > 0, spread, torch.ones_like(spread)).float())
        return self

    def forward(self, numbers: torch.Tensor, missing: torch.Tensor | None = None) -> torch.Tensor:
        if missing is None:
            missing = torch.isnan(numbers)
        filled = torch.where(missing, self.fill, numbers)
        scaled = ((self.derive(filled) - self.center) / self.scale).clamp(-self.CLIP, self.CLIP)
        if self.missing_index.numel():
            return torch.cat([scaled, missing[:, self.missing_index].to(numbers.dtype)], dim=1)
        return scaled


def _pairs(n: int) -> tuple[list[int], list[int]]:
    a, b = zip(*[(i, j) for i in range(n) for j in range(i + 1, n)]) if n > 1 else ((), ())
    return list(a), list(b)


class MemberLinear(nn.Module):
    """k independent linear layers applied in one batched matmul: [k, N, d_in] -> [k, N, d_out]."""

    def __init__(self, members: int, d_in: int, d_out: int):
        super().__init__()
        bound = 1 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(members, d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, d_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class PeriodicEmbedding(nn.Module):
    """Per member and feature: x -> ReLU(W [cos 2pi f x, sin 2pi f x] + b), plus x itself."""

    def __init__(self, members: int, n_features: int, n_frequencies: int, d_embedding: int, sigma: float):
        super().__init__()
        self.frequencies = nn.Parameter(torch.randn(members, 1, n_features, n_frequencies) * sigma)
        bound = 1 / math.sqrt(2 * n_frequencies)
        self.weight = nn.Parameter(torch.empty(members, n_features, 2 * n_frequencies, d_embedding).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(members, 1, n_features, d_embedding))

    @property
    def d_out(self) -> int:
        return self.weight.shape[1] * (self.weight.shape[3] + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, F] -> [k, N, F * (d + 1)]
        angle = 2 * math.pi * x[None, :, :, None] * self.frequencies  # [k, N, F, f]
        waves = torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1)
        embedded = torch.relu(torch.einsum("knfp,kfpd->knfd", waves, self.weight) + self.bias)
        raw = x[None, :, :, None].expand(embedded.shape[0], -1, -1, 1)
        return torch.cat([embedded, raw], dim=-1).flatten(2)


class TabularNet(nn.Module):
    """Raw numbers + category codes -> calibrated outputs, averaged over ensemble members.

    Outputs by `kind`: 'binary' (multi-label too): probabilities [N, labels];
    'multiclass': probabilities [N, classes]; 'regression': values [N, targets] in target units.
    """

    def __init__(self, *, kind: str, n_outputs: int, n_numeric: int, log_index: list[int],
                 missing_index: list[int], category_sizes: list[int], pairs: bool = False, members: int = 4,
                 hidden: int = 128, depth: int = 2, dropout: float = 0.1, n_frequencies: int = 16,
                 d_embedding: int = 8, sigma: float = 0.1, d_category: int = 8):
        super().__init__()
        self.kind = kind
        self.preprocess = Preprocess(n_numeric, log_index, missing_index, pairs)
        self.numeric_embedding = PeriodicEmbedding(members, self.preprocess.n_outputs, n_frequencies,
                                                   d_embedding, sigma)
        self.category_embeddings = nn.ModuleList(
            nn.Embedding(size + 2, d_category * members) for size in category_sizes
        )
        self.d_category = d_category
        d_in = self.numeric_embedding.d_out + d_category * len(category_sizes)
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [MemberLinear(members, d_in if i == 0 else hidden, hidden), nn.ReLU(), nn.Dropout(dropout)]
        self.backbone = nn.Sequential(*layers)
        self.head = MemberLinear(members, hidden, n_outputs)
        # Calibration (fitted on held-out rows) and output units, kept in the graph.
        self.register_buffer("output_scale", torch.ones(n_outputs))
        self.register_buffer("output_shift", torch.zeros(n_outputs))

    @property
    def members(self) -> int:
        return self.head.weight.shape[0]

    def embed_numbers(self, numbers: torch.Tensor, missing: torch.Tensor | None = None) -> torch.Tensor:
        """[k, N, d_numeric] member inputs from raw numbers."""
        return self.numeric_embedding(self.preprocess(numbers, missing))

    def embed_categories(self, codes: torch.Tensor) -> torch.Tensor:
        """[k, N, d_category * n_categorical] member inputs from category codes."""
        k, n = self.members, codes.shape[0]
        parts = [embedding(codes[:, j]).view(n, k, self.d_category).transpose(0, 1)
                 for j, embedding in enumerate(self.category_embeddings)]
        return torch.cat(parts, dim=-1) if parts else torch.zeros(k, n, 0)

    def from_embedded(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """Uncalibrated member outputs [k, N, outputs] from embedded inputs."""
        return self.head(self.backbone(torch.cat([numeric, categorical], dim=-1)))

    def calibrate(self, member_logits: torch.Tensor) -> torch.Tensor:
        return member_logits.mean(0) * self.output_scale + self.output_shift

    def squash(self, z: torch.Tensor) -> torch.Tensor:
        if self.kind == "binary":
            return torch.sigmoid(z)
        if self.kind == "multiclass":
            return torch.softmax(z, dim=-1)
        return z

    def member_logits(self, numbers: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Uncalibrated outputs of every member: [k, N, outputs] (what training optimises)."""
        return self.from_embedded(self.embed_numbers(numbers), self.embed_categories(codes))

    def forward(self, numbers: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Probabilities for classification, values in target units for regression."""
        return self.squash(self.calibrate(self.member_logits(numbers, codes)))


def merge_members(nets: list[TabularNet]) -> TabularNet:
    """One net whose members are all members of `nets` (same architecture and preprocessing)."""
    merged = nets[0]
    if len(nets) == 1:
        return merged
    states = [n.state_dict() for n in nets]
    for name, param in merged.named_parameters():
        stacked = torch.cat([s[name] for s in states], dim=0 if not name.startswith("category_embeddings") else 1)
        param.data = stacked
        param.grad = None  # shaped for one bag; stale after stacking
    merged.d_category = nets[0].d_category
    return merged
