"""What a task gives the robustness report (`Estimator.robustness_probe`): a differentiable view of its model.

Inputs are raw readings (a table's numbers, a RUL window's settings and sensors) or grey levels 0..255
(images), as the model's own preprocessing expects them; every perturbation is sized in units of `spread`,
which makes a strength mean the same for a temperature in kelvin and a speed in rpm: "normalised inputs".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

MAX_ROWS = 2000  # table rows and RUL windows: enough for a stable metric, fast enough for 2 minutes
MAX_IMAGES = 32  # images: an attack's forward and backward passes over a CNN are the report's slowest part


@dataclass
class Probe:
    """A model's inputs for one data set and how to score them (see the module docstring).

    `raw` holds the inputs, axis 0 the items; `sensor_axis` is the axis that indexes `inputs` (a table's
    columns, a window's sensors), None for images. `spread` and `typical` broadcast against `raw`."""

    raw: torch.Tensor
    forward: Callable[[torch.Tensor], torch.Tensor]  # raw inputs -> outputs, differentiable
    loss: Callable[[torch.Tensor, slice], torch.Tensor]  # outputs of the items at `slice` -> what an attack raises
    metric: Callable[[torch.Tensor], float]  # outputs -> the task's metric
    metric_name: str
    higher_is_better: bool
    kind: str  # "table", "windows", "images" or "signals": which perturbations fit
    spread: torch.Tensor  # per input (or one number for images): 1 normalised unit
    inputs: list[str] = field(default_factory=list)  # names along `sensor_axis`
    sensor_axis: int | None = None
    typical: torch.Tensor | None = None  # per input: its median, the value of a stuck sensor
    reads_missing: bool = True  # NaN is a missing reading the model handles (tables, RUL)

    @property
    def count(self) -> int:
        return len(self.raw)

    def score(self, raw: torch.Tensor) -> float:
        with torch.no_grad():
            return float(self.metric(self.forward(raw)))


def per_input(values: np.ndarray, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Spread (standard deviation, 1 where an input is constant) and median of every input along `axis` of
    `values`, shaped to broadcast against it; missing readings are left out."""
    moved = np.moveaxis(values, axis, -1).reshape(-1, values.shape[axis]).astype(np.float64)
    spread = np.nan_to_num(np.nanstd(moved, axis=0), nan=1.0)
    spread[spread <= 1e-12] = 1.0
    median = np.nan_to_num(np.nanmedian(moved, axis=0))
    shape = [1] * values.ndim
    shape[axis] = values.shape[axis]
    return (torch.tensor(spread, dtype=torch.float32).reshape(shape),
            torch.tensor(median, dtype=torch.float32).reshape(shape))
