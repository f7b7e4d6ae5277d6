"""The network of normal behaviour: a causal convolutional autoencoder over a sensor sequence.

Input: readings [batch, sensors, time] in the plant's units; output: every sensor's contribution at
every time step (its reconstruction error, averaged over the last `window` steps and divided by its
usual size on held-out normal rows) and the raw score (the largest contribution). Everything that
turns readings into a score lives here, so that Python, the service, the stream and ONNX agree:

- standardisation with the training mean and spread of every sensor;
- slow sensors (temperatures that wander with the weather and the load) are judged by how they move
  within the last `window` steps, not by their level, which a few hours of history cannot cover;
- every layer is causal (a step sees itself and the past only) with the first reading repeated before
  the start, so a stream scores its newest reading as a file does, and early rows get a score from
  what there is;
- a step is anomalous only when its `persist` last steps all score above the threshold: a lone step above
  it is noise more often than a fault, and a flag that flickers on and off makes many false changepoints;
- the bottleneck (`latent` channels per step, fewer than the sensors) makes the network learn how the
  sensors move together: a sensor that leaves the others (stuck, drifting, a broken correlation)
  cannot be reconstructed.

A window autoencoder (encode a whole window, decode it) scored alike on SKAB but costs a network pass
per row and window; the causal one shares its work between overlapping windows: one pass per sequence.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class CausalConv(nn.Conv1d):
    """A 1-D convolution whose output at step t sees steps t - (kernel - 1) * dilation .. t only."""

    def __init__(self, inputs: int, outputs: int, kernel: int, dilation: int = 1):
        super().__init__(inputs, outputs, kernel, dilation=dilation)
        self.reach = (kernel - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.reach, 0), mode="replicate"))


def causal_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """The mean over the last `window` steps (fewer at the start) along the last axis.

    A sliding sum, not a running sum less the running sum `window` steps before: over a year of minutes the
    running sum grew so large that float32 kept 1e-4 of the score's digits (and ONNX Runtime, summing in
    another order, other digits); the sliding sum holds 1e-6, at about the same speed."""
    total = F.avg_pool1d(F.pad(x, (window - 1, 0)).flatten(0, -2)[:, None], window, stride=1)[:, 0] * window
    count = torch.clamp(torch.arange(1, x.shape[-1] + 1, device=x.device, dtype=x.dtype), max=window)
    return total.reshape(x.shape) / count


class MonitorNet(nn.Module):
    def __init__(self, n_sensors: int, window: int = 32, channels: int = 32, latent: int = 4, kernel: int = 5,
                 persist: int = 1):
        super().__init__()
        self.window = window
        self.persist = persist
        self.register_buffer("mean", torch.zeros(n_sensors))
        self.register_buffer("std", torch.ones(n_sensors))
        self.register_buffer("slow", torch.zeros(n_sensors))  # 1 for a sensor judged by its movement
        self.register_buffer("error_scale", torch.ones(n_sensors))
        self.register_buffer("threshold", torch.ones(()))
        h = channels
        self.encoder = nn.Sequential(CausalConv(n_sensors, h, kernel), nn.ReLU(), CausalConv(h, h, kernel, 2), nn.ReLU(),
                                     CausalConv(h, h, kernel, 4), nn.ReLU(), nn.Conv1d(h, latent, 1))
        self.decoder = nn.Sequential(CausalConv(latent, h, kernel), nn.ReLU(), CausalConv(h, h, kernel, 2), nn.ReLU(),
                                     nn.Conv1d(h, n_sensors, 1))

    def reach(self) -> int:
        """How many earlier steps a step's contributions depend on: the slow sensors' window, the
        convolutions, the error's window. A sequence scored in pieces that overlap by this much
        scores as the whole."""
        convolutions = sum(m.reach for m in self.modules() if isinstance(m, CausalConv))
        return 2 * (self.window - 1) + convolutions + self.persist - 1

    def standardise(self, readings: torch.Tensor) -> torch.Tensor:
        """[batch, sensors, time] readings -> what the autoencoder sees and reconstructs."""
        z = (readings - self.mean[:, None]) / self.std[:, None]
        slow = self.slow[:, None]
        return z - slow * causal_mean(z, self.window)

    def errors(self, readings: torch.Tensor) -> torch.Tensor:
        """Squared reconstruction error of every sensor at every step, [batch, sensors, time]."""
        z = self.standardise(readings)
        return (self.decoder(self.encoder(z)) - z) ** 2

    def forward(self, readings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Contributions [batch, sensors, time] (1 = a sensor's usual error on normal rows) and raw score [batch, time]:
        the largest contribution, at its lowest over the last `persist` steps (a step is anomalous only when the
        `persist` steps up to it all are)."""
        contributions = causal_mean(self.errors(readings), self.window) / self.error_scale[:, None]
        return contributions, persisted(contributions.amax(dim=1), self.persist)

    def squash(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw score -> 0..1 with the threshold at 0.5 (raw / (raw + threshold))."""
        return raw / (raw + self.threshold)


def persisted(raw: torch.Tensor, steps: int) -> torch.Tensor:
    """The lowest of the last `steps` raw scores [batch, time] (the first score repeated before the start)."""
    if steps <= 1:
        return raw
    # shifted slices, not max_pool1d: torch.export fixes the time axis of a pooling to the example's length,
    # and an exported monitor takes any length
    length = raw.shape[-1]
    padded = F.pad(raw[:, None], (steps - 1, 0), mode="replicate")[:, 0]
    lowest = padded[:, steps - 1:]
    for shift in range(steps - 1):
        lowest = torch.minimum(lowest, padded[:, shift:shift + length])
    return lowest


JUMP = 6.0  # a step this many robust spreads of the usual step is a jump between operating modes


def slow_sensors(steps: np.ndarray, spread: np.ndarray, below: float) -> np.ndarray:
    """Which sensors wander slowly, as temperatures do: their step-to-step changes are small against their
    spread (below `below`), and small steps, not jumps between operating modes, make that spread.

    `steps` are the changes from one time step to the next within segments, [steps, sensors]. A sensor that
    switches between the levels of idle and load has small steps too, but its spread comes from the switches:
    taken without its jumps its path stays narrow, and it is judged by its level.
    """
    if not len(steps):
        return np.zeros(len(spread), bool)
    centre = np.median(steps, axis=0)
    usual = 1.4826 * np.median(np.abs(steps - centre), axis=0)
    smooth = np.where(np.abs(steps - centre) > JUMP * np.maximum(usual, 1e-12), 0.0, steps)
    wander = np.cumsum(smooth, axis=0).std(0) / spread
    return (steps.std(0) / spread < below) & (wander >= 0.5)
