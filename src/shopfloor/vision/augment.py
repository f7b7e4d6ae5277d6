"""Augmentation for small inspection sets: flips, quarter turns, crops, light and contrast.

A plant rarely has more than a few hundred images of a defect. A surface has no up or left, so
flips and quarter turns are free data; a part never sits in exactly the same place (random crops);
and the light drifts between shifts (brightness, contrast). All on a batch, in torch, on the
batch's device, from the caller's generator: the same seed gives the same batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from shopfloor.errors import BadOption

_DRAWS = 9  # random numbers per image, drawn whatever the options, so that one option never shifts another


def augment(x: torch.Tensor, generator: torch.Generator, flips: bool = True, rotations: bool = True,
            brightness: float = 0.2, contrast: float = 0.2, crop: float = 0.85) -> torch.Tensor:
    """A randomly changed copy of the batch x [B, C, H, W] (grey levels 0..255); x itself is left alone.

    flips: horizontal and vertical, each with probability 1/2. rotations: 0, 90, 180 or 270 degrees,
    only for square images. brightness / contrast: a gain of 1 +- brightness, and a stretch of
    1 +- contrast about the image's mean, per image, clamped to 0..255. crop: a random window keeping
    at least this fraction of each side, resized back to H x W (1 turns cropping off).
    """
    if x.ndim != 4:
        raise ValueError(f"augment needs a batch [B, C, H, W], got shape {tuple(x.shape)}")
    if not 0 < crop <= 1:
        raise BadOption(f"crop must be a fraction of each side in (0, 1], got {crop!r}")
    for name, value in (("brightness", brightness), ("contrast", contrast)):
        if not 0 <= value < 1:
            raise BadOption(f"{name} must be in [0, 1), got {value!r}")
    x = x if x.is_floating_point() else x.float()
    batch, _, height, width = x.shape
    u = torch.rand(batch, _DRAWS, generator=generator, device=generator.device).to(device=x.device, dtype=x.dtype)
    per_image = (batch, 1, 1, 1)

    if flips:
        x = torch.where((u[:, 0] < 0.5).view(per_image), x.flip(-1), x)
        x = torch.where((u[:, 1] < 0.5).view(per_image), x.flip(-2), x)
    if rotations and height == width:
        turns = (u[:, 2] * 4).long().clamp(max=3)
        turned = x.clone()
        for k in (1, 2, 3):
            chosen = turns == k
            turned[chosen] = torch.rot90(x[chosen], k, dims=(-2, -1))
        x = turned
    if crop < 1:
        x = _crop(x, u[:, 3:7], crop)
    if contrast:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = mean + (x - mean) * (1 + contrast * (2 * u[:, 7] - 1)).view(per_image)
    if brightness:
        x = x * (1 + brightness * (2 * u[:, 8] - 1)).view(per_image)
    return x.clamp(0, 255) if (contrast or brightness) else x


def _crop(x: torch.Tensor, u: torch.Tensor, keep: float) -> torch.Tensor:
    """Random-resized crop by an affine grid: one resample for the whole batch, no loop over images."""
    across = keep + (1 - keep) * u[:, 0]
    down = keep + (1 - keep) * u[:, 1]
    theta = torch.zeros(len(x), 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0], theta[:, 1, 1] = across, down
    theta[:, 0, 2] = (2 * u[:, 2] - 1) * (1 - across)  # the window stays inside the image
    theta[:, 1, 2] = (2 * u[:, 3] - 1) * (1 - down)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
