"""The Gaussian process behind the optimiser: its fitting gradient, large-history fitting, conditioning, sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shopfloor.tasks.optimize.gaussian_process import GaussianProcess
from shopfloor.tasks.optimize.surrogate import HYPERPARAMETER_RECORDS, fit_gaussian_process


def _toy(n: int, noise: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=generator, dtype=torch.float64)
    y = 50 + 20 * torch.sin(3 * x[:, 0]) + 10 * x[:, 1] ** 2 + noise * torch.randn(n, generator=generator, dtype=torch.float64)
    return x, y


def test_closed_form_gradient_matches_autograd_through_the_cholesky():
    x, y = _toy(40, 0.5)
    gp = GaussianProcess.on(x, y)
    with torch.no_grad():
        gp.raw_lengthscale.copy_(torch.tensor([-1.0, 0.2, 0.5]))
        gp.mean_constant.fill_(0.3)
        gp.raw_noise.fill_(-3.0)

    def plain_loss() -> torch.Tensor:
        n = len(gp.targets)
        k = gp.kernel(gp.inputs, gp.inputs) + gp.noise * torch.eye(n, dtype=torch.float64)
        chol = torch.linalg.cholesky(k)
        residual = (gp.targets - gp.mean_constant)[:, None]
        alpha = torch.cholesky_solve(residual, chol)
        fit = 0.5 * (residual * alpha).sum() + torch.log(torch.diagonal(chol)).sum() + 0.5 * n * math.log(2 * math.pi)
        return (fit - gp.log_prior()) / n

    gradients = []
    for loss in (plain_loss, gp.negative_log_posterior):
        gp.zero_grad()
        value = loss()
        value.backward()
        gradients.append((float(value.detach()), [p.grad.clone() for p in gp.parameters()]))
    assert gradients[0][0] == pytest.approx(gradients[1][0], rel=1e-12)
    for a, b in zip(gradients[0][1], gradients[1][1], strict=True):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def test_a_long_history_is_fitted_on_a_subset_and_keeps_its_units():
    x, y = _toy(3 * HYPERPARAMETER_RECORDS, noise=0.5)
    gp = fit_gaussian_process(x, y)
    assert len(gp.targets) == len(x)  # predicts from every record
    assert math.sqrt(float(gp.noise_variance)) == pytest.approx(0.5, rel=0.25)  # the noise, in plant units
    fresh, truth = _toy(300, noise=0.0, seed=1)
    mean, variance = gp(fresh)
    assert float((mean - truth).square().mean().sqrt()) < 0.25
    inside = ((truth - mean).abs() <= 1.645 * variance.sqrt()).double().mean()
    assert 0.7 < float(inside) <= 1.0  # the model's own uncertainty about the mean, not the noise


def test_conditioning_equals_refitting_with_the_same_hyperparameters():
    x, y = _toy(30, noise=0.1)
    gp = fit_gaussian_process(x[:25], y[:25])
    conditioned = gp.condition_on(x[25:], y[25:])
    refit = GaussianProcess.on(x, y)
    refit.load_state_dict({**refit.state_dict(), **{k: v for k, v in gp.state_dict().items() if k not in ("inputs", "targets")}})
    refit.targets.copy_((y - gp.center) / gp.scale)
    probe, _ = _toy(20, 0.0, seed=3)
    assert torch.allclose(conditioned(probe)[0], refit.refresh()(probe)[0], atol=1e-9)


def test_joint_samples_follow_the_posterior():
    x, y = _toy(30, noise=0.1)
    gp = fit_gaussian_process(x, y)
    probe, _ = _toy(5, 0.0, seed=4)
    draws = gp.joint_sample(probe, 4000, torch.Generator().manual_seed(0))
    mean, variance = gp(probe)
    assert torch.allclose(draws.mean(0), mean, atol=4 * float(variance.max().sqrt()) / math.sqrt(4000) + 1e-6)
    assert np.allclose(draws.var(0).numpy(), variance.numpy(), rtol=0.15, atol=1e-8)
