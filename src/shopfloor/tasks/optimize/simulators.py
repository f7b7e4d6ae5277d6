"""Simulated processes with a known optimum, written from published equations.

They are the test bench of the optimiser (tests, `benchmarks/optimize.py`) and the source of the
demo's production records: each one declares its settings, objective, constraints, the best
achievable value, and a historical *operating window* from which past records are drawn. The
window leaves the optimum out, as a plant's history usually does.

- ``hartmann6``: minimise the Hartmann 6-D function on [0, 1]^6 (Dixon & Szegő 1978; constants
  from Surjanovic & Bingham's Virtual Library of Simulation Experiments). Minimum -3.322368.
- ``branin_disk``: minimise Branin-Hoo subject to the disk (x1-2.5)^2 + (x2-7.5)^2 <= 50
  (Gelbart, Snoek & Adams, UAI 2014). The disk is a constraint on the settings, known exactly;
  it rules out two of Branin's three minima, one of which lies inside the historical window.
- ``snar``: a flow reactor. 2,4-difluoronitrobenzene + pyrrolidine in ethanol, four second-order
  Arrhenius reactions in plug flow (Hone et al., React. Chem. Eng. 2017, 2, 103; as implemented in
  Summit's SnarBenchmark, Felton et al. 2021, including its two quirks: the para product forms
  with k_a, and degC -> K adds 273.71). Maximise space-time yield (kg m^-3 h^-1) subject to an
  E-factor (kg waste per kg product) <= 10.5, an output constraint learned from the records.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp
from scipy.stats import qmc

_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]], dtype=float)
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]], dtype=float)


def hartmann6(x: np.ndarray) -> np.ndarray:
    inner = np.sum(_H6_A * (np.asarray(x, float)[..., None, :] - _H6_P) ** 2, axis=-1)
    return -np.sum(_H6_ALPHA * np.exp(-inner), axis=-1)


def branin(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, float)
    x1, x2 = x[..., 0], x[..., 1]
    return (x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * np.cos(x1) + 10


# SnAr: (k_ref [1e-2 M^-1 s^-1] at 90 degC, activation energy [kJ/mol]) of reactions a..d
SNAR_KINETICS = ((57.9, 33.3), (2.70, 35.3), (0.865, 38.9), (1.63, 44.8))
SNAR_MOLAR_MASS = (159.09, 71.12, 210.21, 210.21, 261.33)  # g/mol: DFNB, pyrrolidine, ortho, para, bis
SNAR_VOLUME_ML, ETHANOL_DENSITY, GAS_CONSTANT = 3.0, 0.789, 8.314e-3


def snar(residence_time: float, equivalents: float, concentration: float, temperature: float) -> tuple[float, float]:
    """Space-time yield and E-factor of the SnAr flow reactor at one operating point."""
    t, t_ref = temperature + 273.71, 90.0 + 273.71
    ka, kb, kc, kd = (0.6 * k * math.exp(-ea / GAS_CONSTANT * (1 / t - 1 / t_ref)) for k, ea in SNAR_KINETICS)
    inlet = np.array([concentration, equivalents * concentration, 0.0, 0.0, 0.0])
    floor = 1e-6 * inlet[:2]

    def rates(_time, c):
        c1 = c[0] if c[0] >= floor[0] else 0.0
        c2 = c[1] if c[1] >= floor[1] else 0.0
        substitution, r_c, r_d = (ka + kb) * c1 * c2, kc * c2 * c[2], kd * c2 * c[3]
        return [-substitution, -substitution - r_c - r_d, ka * c1 * c2 - r_c, ka * c1 * c2 - r_d, r_c + r_d]

    c = solve_ivp(rates, (0.0, residence_time), inlet, rtol=1e-6, atol=1e-9).y[:, -1]
    m = SNAR_MOLAR_MASS
    flow = SNAR_VOLUME_ML / residence_time  # mL/min
    sty = max(60.0 * m[2] * c[2] / residence_time, 1e-6)
    product = 1e-3 * m[2] * c[2] * flow
    waste = flow * ETHANOL_DENSITY + 1e-3 * flow * sum(m[i] * c[i] for i in (0, 1, 3, 4))
    e_factor = 1e3 if np.isclose(c[2], 0.0) else min(waste / product, 1e3)
    return sty, e_factor


@dataclass(frozen=True)
class Simulator:
    name: str
    settings: tuple[str, ...]  # as the optimiser declares them: "name=low:high"
    objective: str
    maximize: bool
    constraints: tuple[str, ...]  # in the optimiser's syntax
    outputs: Callable[[np.ndarray], dict[str, np.ndarray]]  # [N, d] settings -> output columns
    optimum: float
    optimum_at: tuple[float, ...]
    window: tuple[tuple[float, float], ...]  # the historical operating window
    noise_scale: dict[str, float]  # a typical size of each output, for noisy records

    @property
    def names(self) -> list[str]:
        return [s.split("=")[0] for s in self.settings]

    @property
    def bounds(self) -> np.ndarray:
        return np.array([[float(v) for v in s.split("=")[1].split(":")] for s in self.settings])

    def run(self, settings: pd.DataFrame | np.ndarray, noise: float = 0.0,
            rng: np.random.Generator | None = None) -> pd.DataFrame:
        """Records: the settings and the measured outputs (with Gaussian noise of `noise` x each output's scale)."""
        x = settings[self.names].to_numpy(float) if isinstance(settings, pd.DataFrame) else np.atleast_2d(settings)
        frame = pd.DataFrame(x, columns=self.names)
        for column, values in self.outputs(x).items():
            scale = self.noise_scale.get(column, 0.0) * noise
            frame[column] = values + (rng.normal(0, scale, len(values)) if scale > 0 else 0.0)
        return frame

    def regret(self, value: float) -> float:
        return self.optimum - value if self.maximize else value - self.optimum

    def constraint_values(self, records: pd.DataFrame) -> np.ndarray:
        """[N, constraints] values g of the records' columns, feasible where g <= 0 (Optuna's convention)."""
        import torch

        from shopfloor.tasks.optimize.constraints import parse_constraints

        columns = {c: torch.tensor(records[c].to_numpy(float)) for c in records.columns}
        parts = [c(columns).numpy() for c in parse_constraints(list(self.constraints))]
        return np.stack(parts, axis=1) if parts else np.zeros((len(records), 0))

    def violation(self, settings: pd.DataFrame) -> np.ndarray:
        """How far each row's true outputs are beyond the constraints (0 = met)."""
        return np.clip(self.constraint_values(self.run(settings)), 0, None).sum(axis=1)

    def history(self, n: int, seed: int, noise: float = 0.0) -> pd.DataFrame:
        """`n` past records from the operating window (Latin hypercube)."""
        rng = np.random.default_rng(seed)
        window = np.array(self.window)
        x = window[:, 0] + (window[:, 1] - window[:, 0]) * qmc.LatinHypercube(d=len(window), rng=rng).random(n)
        return self.run(x, noise, rng)


def _hartmann_outputs(x: np.ndarray) -> dict[str, np.ndarray]:
    return {"f": hartmann6(x)}


def _branin_outputs(x: np.ndarray) -> dict[str, np.ndarray]:
    return {"f": branin(x)}


def _snar_outputs(x: np.ndarray) -> dict[str, np.ndarray]:
    values = np.array([snar(*row) for row in x]).reshape(-1, 2)
    return {"sty": values[:, 0], "e_factor": values[:, 1]}


SIMULATORS: dict[str, Simulator] = {
    "hartmann6": Simulator(
        "hartmann6", tuple(f"x{i}=0:1" for i in range(1, 7)), "f", False, (), _hartmann_outputs,
        -3.322368011415511, (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573),
        ((0.35, 1.0),) * 6, {"f": 1.0}),  # x1, x2, x4, x5 of the optimum lie below 0.35
    "branin_disk": Simulator(
        "branin_disk", ("x1=-5:10", "x2=0:15"), "f", False, ("(x1 - 2.5)**2 + (x2 - 7.5)**2 <= 50",), _branin_outputs,
        0.39788735772973816, (math.pi, 2.275), ((-5.0, 10.0), (6.0, 15.0)), {"f": 10.0}),
    "snar": Simulator(
        "snar", ("residence_time=0.5:2", "equivalents=1:5", "concentration=0.1:0.5", "temperature=30:120"),
        "sty", True, ("e_factor <= 10.5",), _snar_outputs,
        11544.1283860982, (0.5, 4.297971942267434, 0.5, 35.15325433558327),
        ((0.8, 2.0), (1.0, 3.0), (0.25, 0.5), (30.0, 100.0)), {"sty": 1000.0, "e_factor": 1.0}),
}
