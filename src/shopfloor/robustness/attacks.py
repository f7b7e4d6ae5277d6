"""Adversarial perturbations within an L-infinity budget on the normalised inputs (raw / spread).

FGSM (Goodfellow et al. 2015): one step of `epsilon` in the sign of the loss's gradient. PGD (Madry et al.
2018): a few smaller steps, each projected back into the budget. Both raise the loss the task names (its
training loss, or for an anomaly detector the score pushed the wrong way), so the metric falls as fast as
a small, worst-case change of the inputs can make it. Missing readings stay missing.
"""

from __future__ import annotations

import torch

from shopfloor.robustness.probe import Probe

PGD_STEPS = 3
ATTACK_BATCH = 16


def gradient_sign(probe: Probe, raw: torch.Tensor) -> torch.Tensor:
    """Sign of the loss's gradient with respect to the normalised inputs: images and signal windows batch by
    batch (a CNN's activations for every item at once would not fit), readings at once (their forward needs
    every row's context: a table's categories, a window's start and age)."""
    size = ATTACK_BATCH if probe.kind in ("images", "signals") else max(len(raw), 1)
    signs = []
    for start in range(0, len(raw), size):
        part = raw[start:start + size].clone().requires_grad_(True)
        # the inputs' gradient only: no weight gradients computed, none left on the user's model
        grad, = torch.autograd.grad(probe.loss(probe.forward(part), slice(start, start + size)), part)
        signs.append(torch.nan_to_num(grad * probe.spread).sign())  # d loss / d (raw / spread)
    return torch.cat(signs)


def clip_to_images(probe: Probe, raw: torch.Tensor) -> torch.Tensor:
    return raw.clamp(0, 255) if probe.kind == "images" else raw


def fgsm(probe: Probe, epsilon: float) -> torch.Tensor:
    if epsilon <= 0:
        return probe.raw
    return clip_to_images(probe, probe.raw + epsilon * probe.spread * gradient_sign(probe, probe.raw))


def pgd(probe: Probe, epsilon: float, steps: int = PGD_STEPS) -> torch.Tensor:
    if epsilon <= 0:
        return probe.raw
    step = 2.5 * epsilon / steps
    low, high = probe.raw - epsilon * probe.spread, probe.raw + epsilon * probe.spread
    raw = probe.raw
    for _ in range(steps):
        raw = raw + step * probe.spread * gradient_sign(probe, raw)
        raw = clip_to_images(probe, torch.maximum(torch.minimum(raw, high), low))
    return raw
