"""Exact Gaussian-process regression: the surrogate of one measured output of a process.

Matérn-5/2 kernel with one length scale per input (inputs are scaled to 0..1), a constant mean
and Gaussian measurement noise, on standardised targets; predictions come back in the plant's
units. Length scales have a log-normal prior centred at half of each input's range.

The module holds its records as buffers, so `state_dict()` is the whole model; `condition_on`
returns a copy that also knows some new (e.g. imagined) observations, with the same
hyperparameters: that is how a batch of experiments is spread out.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Noise variance floor in standardised units. 1e-6 (sd 0.1 % of the output spread) capped the precision on
# noise-free simulators: Branin regret 2.4e-4 there against 3e-6 with 1e-8 and 1.3e-6 with 1e-10.
NOISE_FLOOR = 1e-9
SQRT5 = math.sqrt(5.0)
FAR = 60.0  # sqrt(5) r beyond which the Matern kernel is below 1e-23 of its peak
NOISE_PRIOR = (-4.0, 2.0)  # log-normal on the noise variance: mean and sd of its log
# log-normal on each length scale (inputs scaled to 0..1), centred at half the range like BoTorch's classic
# Gamma(3, 6). The dimension-scaled prior of Hvarfner et al. (ICML 2024), centred near 10 for 6 settings,
# over-smoothed noisy records: Hartmann-6 with noise, median regret 0.90 against 0.17 with this one
# (noise-free 0.0147 against 1.2e-5; benchmarks/optimize.py).
LENGTHSCALE_PRIOR = (math.log(0.5), 1.0)


class GaussianProcess(nn.Module):
    def __init__(self, n_inputs: int, n_records: int):
        super().__init__()
        self.register_buffer("inputs", torch.zeros(n_records, n_inputs, dtype=torch.float64))
        self.register_buffer("targets", torch.zeros(n_records, dtype=torch.float64))  # standardised
        self.register_buffer("center", torch.zeros((), dtype=torch.float64))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))
        self.raw_lengthscale = nn.Parameter(torch.full((n_inputs,), math.log(0.5), dtype=torch.float64))
        self.raw_outputscale = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.raw_noise = nn.Parameter(torch.tensor(math.log(1e-2), dtype=torch.float64))
        self.mean_constant = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self._cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def on(cls, inputs: torch.Tensor, values: torch.Tensor) -> GaussianProcess:
        """A process model of `values` (plant units) at encoded `inputs`, hyperparameters not fitted yet."""
        gp = cls(inputs.shape[1], inputs.shape[0])
        center, scale = values.mean(), values.std().clamp_min(1e-12) if len(values) > 1 else torch.tensor(1.0)
        gp.inputs.copy_(inputs)
        gp.targets.copy_((values - center) / scale)
        gp.center.copy_(center)
        gp.scale.copy_(scale)
        return gp

    # -- hyperparameters -------------------------------------------------------------
    @property
    def lengthscale(self) -> torch.Tensor:
        return self.raw_lengthscale.exp()

    @property
    def noise(self) -> torch.Tensor:
        """Measurement-noise variance in standardised units."""
        return self.raw_noise.exp() + NOISE_FLOOR

    def kernel(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = a / self.lengthscale, b / self.lengthscale
        # |a|^2 + |b|^2 - 2ab: matrix products, fast both ways (cdist's exact mode made each fitting step's backward
        # pass 6x slower than its forward pass); the kernel is flat at r = 0, so rounding there does not matter
        squared = (a.square().sum(-1)[:, None] + b.square().sum(-1)[None, :] - 2 * a @ b.T).clamp_min(0)
        r = torch.sqrt(squared + 1e-12) * SQRT5  # + tiny: a finite gradient where two points coincide
        # far-apart pairs are exactly 0, not subnormal numbers: those made fitting 4x slower (SnAr, short length scales)
        r = r.clamp_max(FAR)
        return self.raw_outputscale.exp() * torch.where(r < FAR, (1 + r + r.square() / 3) * torch.exp(-r), 0.0)

    def log_prior(self) -> torch.Tensor:
        prior = -0.5 * ((self.raw_lengthscale - LENGTHSCALE_PRIOR[0]) / LENGTHSCALE_PRIOR[1]).square().sum()
        prior = prior - 0.5 * self.raw_outputscale.square()  # log-normal(0, 1) on the signal variance
        return prior - 0.5 * ((self.raw_noise - NOISE_PRIOR[0]) / NOISE_PRIOR[1]).square()

    def negative_log_posterior(self) -> torch.Tensor:
        """-(log marginal likelihood + log prior) per record: what fitting minimises.

        Its gradient comes from the closed form dL/dK = (K^-1 - a a^T) / 2 with a = K^-1 (y - m) (Rasmussen &
        Williams 2006, eq. 5.9), so that autograd only differentiates the kernel's entries: backpropagating
        through the Cholesky factorisation cost 6x the forward pass on 1,000 records.
        """
        n = len(self.targets)
        k = self.kernel(self.inputs, self.inputs) + self.noise * torch.eye(n, dtype=torch.float64)
        with torch.no_grad():
            chol = _cholesky(k)
            residual = (self.targets - self.mean_constant)[:, None]
            alpha = torch.cholesky_solve(residual, chol)
            value = 0.5 * (residual * alpha).sum() + torch.log(torch.diagonal(chol)).sum() + 0.5 * n * math.log(2 * math.pi)
            slope = 0.5 * (_inverse(chol) - alpha @ alpha.T)
        fit = (slope * k).sum() - alpha.sum() * self.mean_constant  # right gradient, wrong value: corrected below
        fit = fit + (value - fit).detach()
        return (fit - self.log_prior()) / n

    # -- predicting ------------------------------------------------------------------
    def refresh(self) -> GaussianProcess:
        """Factorise the kernel matrix once and freeze the hyperparameters: the model is ready to predict
        (gradients still flow to the inputs). Call after the hyperparameters or records change."""
        self.requires_grad_(False)
        with torch.no_grad():
            n = len(self.targets)
            k = self.kernel(self.inputs, self.inputs) + self.noise * torch.eye(n, dtype=torch.float64)
            chol = _cholesky(k)
            alpha = torch.cholesky_solve((self.targets - self.mean_constant)[:, None], chol)
            # the factor's inverse, once: each prediction is then a matrix product (a triangular solve per call
            # was most of the search's time on small histories)
            chol_inverse = torch.linalg.solve_triangular(chol, torch.eye(n, dtype=torch.float64), upper=False)
        self._cache = (chol, alpha, chol_inverse)
        return self

    def _factors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cholesky factor, K^-1 (y - m) and the factor's inverse, computed on first use."""
        if self._cache is None:
            self.refresh()
        return self._cache

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of the noise-free output at encoded inputs `x` [N, d], in plant units."""
        _, alpha, chol_inverse = self._factors()
        cross = self.kernel(x, self.inputs)
        mean = self.mean_constant + (cross @ alpha)[:, 0]
        v = chol_inverse @ cross.T
        variance = (self.raw_outputscale.exp() - v.square().sum(0)).clamp_min(1e-12)
        return self.center + self.scale * mean, self.scale.square() * variance

    def leave_one_out(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each record's prediction (mean, variance of a new run) by a model fitted on all the others,
        in closed form (Rasmussen & Williams 2006, eq. 5.12), in plant units: honest accuracy for free."""
        chol, alpha, _ = self._factors()
        with torch.no_grad():
            precision_diagonal = _inverse(chol).diagonal()
            mean = self.targets - alpha[:, 0] / precision_diagonal
        return self.center + self.scale * mean, self.scale.square() / precision_diagonal

    @property
    def noise_variance(self) -> torch.Tensor:
        """Measurement-noise variance in plant units: add it for the spread of a single new run."""
        return self.scale.square() * self.noise

    def joint_sample(self, x: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        """`n` draws of the output over all of `x` jointly ([n, N], plant units): Thompson sampling."""
        _, alpha, chol_inverse = self._factors()
        cross = self.kernel(x, self.inputs)
        v = chol_inverse @ cross.T
        covariance = self.kernel(x, x) - v.T @ v
        mean = self.mean_constant + (cross @ alpha)[:, 0]
        jitter = 1e-8 * torch.eye(len(x), dtype=torch.float64)
        factor = torch.linalg.cholesky_ex(covariance + jitter)[0]
        z = torch.randn((len(x), n), generator=generator, dtype=torch.float64)
        return (self.center + self.scale * (mean[:, None] + factor @ z)).T

    def condition_on(self, x: torch.Tensor, values: torch.Tensor) -> GaussianProcess:
        """A copy that has also seen `values` (plant units) at `x`, with the same hyperparameters.

        The factorisation is extended block-wise, O(n^2 m) instead of a new O(n^3) one: a batch of experiments
        conditions the model once per pick."""
        chol, _, chol_inverse = self._factors()
        gp = GaussianProcess(self.inputs.shape[1], len(self.targets) + len(x))
        state = {k: v for k, v in self.state_dict().items() if k not in ("inputs", "targets")}
        gp.load_state_dict({**state, "inputs": torch.cat([self.inputs, x]),
                            "targets": torch.cat([self.targets, (values - self.center) / self.scale])})
        gp.requires_grad_(False)
        with torch.no_grad():
            cross = self.kernel(self.inputs, x)
            lower = (chol_inverse @ cross).T  # [m, n]
            corner = _cholesky(self.kernel(x, x) + self.noise * torch.eye(len(x), dtype=torch.float64) - lower @ lower.T)
            corner_inverse = torch.linalg.solve_triangular(corner, torch.eye(len(x), dtype=torch.float64), upper=False)
            n, m = len(self.targets), len(x)
            new_chol = torch.zeros((n + m, n + m), dtype=torch.float64)
            new_chol[:n, :n], new_chol[n:, :n], new_chol[n:, n:] = chol, lower, corner
            new_inverse = torch.zeros_like(new_chol)
            new_inverse[:n, :n], new_inverse[n:, n:] = chol_inverse, corner_inverse
            new_inverse[n:, :n] = -corner_inverse @ lower @ chol_inverse
            residual = (gp.targets - gp.mean_constant)[:, None]
            alpha = new_inverse.T @ (new_inverse @ residual)
        gp._cache = (new_chol, alpha, new_inverse)
        return gp

def _cholesky(matrix: torch.Tensor) -> torch.Tensor:
    """Cholesky factor, with a little jitter added on the diagonal when rounding makes the matrix indefinite."""
    factor, info = torch.linalg.cholesky_ex(matrix)
    jitter = 1e-10 * matrix.diagonal().mean().detach()
    while int(info) != 0 and jitter < 1e-2:
        factor, info = torch.linalg.cholesky_ex(matrix + jitter * torch.eye(len(matrix), dtype=matrix.dtype))
        jitter *= 10
    if int(info) != 0:
        raise torch.linalg.LinAlgError("kernel matrix is not positive definite")
    return factor


def _inverse(chol: torch.Tensor) -> torch.Tensor:
    """K^-1 from K's Cholesky factor. torch.cholesky_inverse took 28x longer than this solve on 500 records."""
    return torch.cholesky_solve(torch.eye(len(chol), dtype=chol.dtype), chol)
