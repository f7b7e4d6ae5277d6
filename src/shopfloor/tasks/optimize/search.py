"""Searching the settings space: candidate pools, gradient polishing, acquisition values, Pareto fronts.

Everything here works on *encoded* settings (0..1 per number, one-hot per choice) and on a
`score` function that maps a batch of them to a value to maximise. The search is the usual
one for Bayesian optimisation (as in BoTorch's `optimize_acqf`): score a large quasi-random
pool plus small moves around the best records, then polish the best few with L-BFGS-B on the
numeric settings. A polished point that leaves the allowed region (a constraint on the
settings, or the trust region around the records) is walked back along its path until it is
inside again, so that optima lying on a boundary are still reached.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from scipy.optimize import minimize

from shopfloor.tasks.optimize.settings import SettingSpace

Score = Callable[[torch.Tensor], torch.Tensor]
Allowed = Callable[[torch.Tensor], torch.Tensor]  # encoded settings -> bool mask
LOCAL_STEPS = (0.1, 0.02, 0.004)  # move sizes around anchors, as fractions of each setting's range
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def log_expected_improvement(mean: torch.Tensor, sd: torch.Tensor, best: float) -> torch.Tensor:
    """log E[max(f - best, 0)] for f ~ N(mean, sd^2), stable far below `best` too (Ament et al., NeurIPS 2023)."""
    z = (mean - best) / sd
    normal = torch.distributions.Normal(0.0, 1.0)
    safe_z = torch.where(z > -5, z, torch.full_like(z, -5.0))
    log_h_mid = torch.log(torch.exp(normal.log_prob(safe_z)) + safe_z * normal.cdf(safe_z))
    tail_z = torch.where(z > -5, torch.full_like(z, -5.0), z)
    # phi(z) + z Phi(z) ~ phi(z) / z^2 (1 - 3 / z^2) for z << 0
    log_h_tail = -0.5 * tail_z.square() - _LOG_SQRT_2PI - 2 * torch.log(-tail_z) + torch.log1p(-3 / tail_z.square())
    return torch.where(z > -5, log_h_mid, log_h_tail) + torch.log(sd)


def distance_to_data(candidates: torch.Tensor, records: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Root-mean-square distance per setting (in fractions of its range; a different choice counts 1)
    from each candidate to its nearest record."""
    w = weights.sqrt()
    nearest = torch.full((len(candidates),), math.inf, dtype=torch.float64)
    for start in range(0, len(records), 4096):  # bounded memory on long histories
        block = torch.cdist(candidates * w, records[start:start + 4096] * w, compute_mode="donot_use_mm_for_euclid_dist")
        nearest = torch.minimum(nearest, block.min(1).values)
    return nearest / math.sqrt(float(weights.sum()))


def column_weights(space: SettingSpace) -> torch.Tensor:
    """Per encoded column: 1 for a number, 1/2 per one-hot column (a different choice differs in two columns)."""
    return torch.tensor([1.0 if not s.is_choice else 0.5 for s in space.settings for _ in range(s.width)], dtype=torch.float64)


def candidate_pool(space: SettingSpace, anchors: torch.Tensor, n_global: int, n_local: int,
                   generator: torch.Generator) -> torch.Tensor:
    """Quasi-random settings over the whole space, the anchors themselves and small moves around them,
    snapped to steps and choices."""
    parts = [space.sample(n_global, generator), anchors]
    numeric = _numeric_mask(space)
    for step in LOCAL_STEPS:
        if len(anchors) == 0:
            break
        picks = anchors[torch.randint(len(anchors), (n_local,), generator=generator)]
        moves = torch.randn(picks.shape, generator=generator, dtype=torch.float64) * step * numeric
        parts.append((picks + moves).clamp(0, 1) * numeric + picks * (1 - numeric))
    return space.snap(torch.cat(parts))


def _numeric_mask(space: SettingSpace) -> torch.Tensor:
    return torch.tensor([0.0 if s.is_choice else 1.0 for s in space.settings for _ in range(s.width)], dtype=torch.float64)


def best_of(score: Score, allowed: Allowed, space: SettingSpace, pool: torch.Tensor,
            polish: int = 6) -> tuple[torch.Tensor, float]:
    """The highest-scoring allowed setting: best of the pool, then the best `polish` of them polished by L-BFGS-B."""
    pool = pool[allowed(pool)]
    if len(pool) == 0:
        raise ValueError("no allowed candidates")
    with torch.no_grad():
        values = _scores_in_chunks(score, pool)
    starts = pool[_distinct_top(pool, values, polish)]
    polished = _polish(score, space, starts)
    walked = torch.stack([_walk_back(allowed, s, p) for s, p in zip(starts, polished, strict=True)])
    finalists = torch.cat([starts, space.snap(walked)])
    finalists = finalists[allowed(finalists)]
    with torch.no_grad():
        final_values = score(finalists)
    i = int(final_values.argmax())
    return finalists[i], float(final_values[i])


def _scores_in_chunks(score: Score, pool: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    return torch.cat([score(pool[s:s + chunk]) for s in range(0, len(pool), chunk)])


def _distinct_top(pool: torch.Tensor, values: torch.Tensor, k: int) -> list[int]:
    order = torch.argsort(values, descending=True).tolist()
    picked: list[int] = []
    for i in order:
        if all(torch.dist(pool[i], pool[j]) > 1e-3 for j in picked):
            picked.append(i)
        if len(picked) == k:
            break
    return picked


def _polish(score: Score, space: SettingSpace, starts: torch.Tensor) -> torch.Tensor:
    """L-BFGS-B on the numeric columns of all starts at once (their scores are independent, so their sum is maximised)."""
    free = _numeric_mask(space).bool()
    if not free.any():
        return starts
    fixed_part = starts.clone()

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        x = fixed_part.clone()
        moving = torch.from_numpy(flat).view(len(starts), int(free.sum())).requires_grad_(True)
        x[:, free] = moving
        values = score(x)
        total = -values.sum()
        if not torch.isfinite(total):
            return 1e10, np.zeros_like(flat)
        total.backward()
        return total.item(), moving.grad.numpy().ravel().copy()

    x0 = starts[:, free].numpy().ravel()
    result = minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * len(x0),
                      options={"maxiter": 100, "ftol": 1e-12, "gtol": 1e-9})
    out = fixed_part.clone()
    out[:, free] = torch.from_numpy(result.x).view(len(starts), -1)
    return out


def _walk_back(allowed: Allowed, start: torch.Tensor, end: torch.Tensor, steps: int = 12) -> torch.Tensor:
    """The furthest allowed point on the segment start -> end (bisection); `start` is allowed."""
    if bool(allowed(end[None])[0]):
        return end
    low, high = 0.0, 1.0
    for _ in range(steps):
        mid = (low + high) / 2
        if bool(allowed((start + mid * (end - start))[None])[0]):
            low = mid
        else:
            high = mid
    return start + low * (end - start)


def nondominated(values: torch.Tensor) -> torch.Tensor:
    """Mask of the rows no other row beats on every objective (all maximised)."""
    better_or_equal = (values[:, None, :] >= values[None, :, :]).all(-1)
    strictly = (values[:, None, :] > values[None, :, :]).any(-1)
    dominated = (better_or_equal & strictly).any(0)
    return ~dominated
