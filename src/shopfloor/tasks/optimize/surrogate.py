"""Fitting the process model: one Gaussian process per measured output the optimiser needs.

Hyperparameters (length scales, signal and noise variance, mean) are the maximum of the
marginal likelihood times the prior, found with L-BFGS from two starting points (short and
long length scales) plus, on later rounds, the previous fit.

Large histories: an exact GP costs O(n^3). Above `max_records` records the model is fitted on
a subset: the best records for each objective (where the optimum is decided) plus an even
spread of the rest (chosen by measurement, see benchmarks/optimize_speed.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from shopfloor.tasks.optimize.gaussian_process import NOISE_FLOOR, GaussianProcess

FIT_ITERATIONS = 60
# Hyperparameters are fitted on at most this many records (a random subset), then the model conditions on all
# of them with one factorisation: each fitting step costs O(n^3), the final model only once.
HYPERPARAMETER_RECORDS = 500
HYPERPARAMETERS = ("raw_lengthscale", "raw_outputscale", "raw_noise", "mean_constant")


def fit_gaussian_process(inputs: torch.Tensor, values: torch.Tensor, previous: GaussianProcess | None = None,
                         seed: int = 0) -> GaussianProcess:
    """The best of a few L-BFGS fits of the hyperparameters; the returned model is ready to predict."""
    if len(inputs) > HYPERPARAMETER_RECORDS:
        subset = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(seed))[:HYPERPARAMETER_RECORDS]
        tuned = fit_gaussian_process(inputs[subset], values[subset], previous)
        gp = GaussianProcess.on(inputs, values)
        with torch.no_grad():
            for name in HYPERPARAMETERS:
                getattr(gp, name).copy_(getattr(tuned, name))
            # the mean was learned on the subset's standard scale: carry it over in plant units
            gp.mean_constant.copy_((tuned.center + tuned.scale * tuned.mean_constant - gp.center) / gp.scale)
            gp.raw_outputscale.add_(2 * torch.log(tuned.scale / gp.scale))
            gp.raw_noise.copy_(torch.log((tuned.noise * (tuned.scale / gp.scale) ** 2 - NOISE_FLOOR).clamp_min(1e-12)))
        return gp.refresh()
    d = inputs.shape[1]
    starts = [math.log(0.2 * math.sqrt(d)), math.log(0.6 * math.sqrt(d))]
    best, best_loss = None, math.inf
    for start in [*starts, None] if previous is not None else starts:
        gp = GaussianProcess.on(inputs, values)
        with torch.no_grad():
            if start is None:
                for name in HYPERPARAMETERS:
                    getattr(gp, name).copy_(getattr(previous, name))
            else:
                gp.raw_lengthscale.fill_(start)
        loss = _maximise_evidence(gp)
        if loss < best_loss:
            best, best_loss = gp, loss
    return best.refresh()


def _maximise_evidence(gp: GaussianProcess) -> float:
    optimizer = torch.optim.LBFGS(gp.parameters(), lr=1.0, max_iter=FIT_ITERATIONS, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        try:
            loss = gp.negative_log_posterior()
        except torch.linalg.LinAlgError:  # a step to a degenerate kernel: steer back
            return torch.tensor(1e10, dtype=torch.float64, requires_grad=True)
        loss.backward()
        return loss

    try:
        optimizer.step(closure)
    except (RuntimeError, torch.linalg.LinAlgError):
        return math.inf
    with torch.no_grad():
        gp.raw_lengthscale.clamp_(math.log(1e-3), math.log(1e3))
        gp.raw_noise.clamp_(math.log(1e-9), math.log(10.0))
        try:
            loss = float(gp.negative_log_posterior())
        except torch.linalg.LinAlgError:
            return math.inf
    return loss if math.isfinite(loss) else math.inf


def choose_records(values: np.ndarray, max_records: int, maximise: list[bool], seed: int) -> np.ndarray:
    """Row indices to fit on: all of them, or the best quarter per objective plus an even random spread."""
    n = len(values)
    if n <= max_records:
        return np.arange(n)
    best_each = max_records // (4 * max(values.shape[1], 1))
    keep = set()
    for j, up in enumerate(maximise):
        order = np.argsort(-values[:, j] if up else values[:, j], kind="stable")
        keep.update(order[:best_each].tolist())
    rest = np.setdiff1d(np.arange(n), np.fromiter(keep, dtype=np.int64))
    spread = np.random.default_rng(seed).choice(rest, size=max_records - len(keep), replace=False)
    return np.sort(np.concatenate([np.fromiter(keep, dtype=np.int64), spread]))
