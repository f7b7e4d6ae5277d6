"""The perturbations, each a function of the raw inputs and a strength, returning new raw inputs.

Readings: Gaussian noise of `sigma` spreads on every input; one input stuck at its median or missing (NaN,
which the model's preprocessing fills as it does any missing reading); for signals, a gain change per channel
and one channel shuffled among the windows. Images (grey levels 0..255, [N, C, H, W]): Gaussian blur of
`sigma` pixels, brightness scaled by a factor, JPEG compression at a quality, and a rotation by a few degrees
about the centre (edges repeated).
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F


def noise(raw: torch.Tensor, spread: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return raw + sigma * spread * torch.randn(raw.shape, generator=generator)


def set_input(raw: torch.Tensor, axis: int, index: int, value: torch.Tensor | float) -> torch.Tensor:
    """`raw` with input `index` along `axis` replaced by `value` everywhere (stuck, or NaN for missing)."""
    out = raw.clone()
    where = [slice(None)] * raw.ndim
    where[axis] = index
    out[tuple(where)] = value
    return out


def shuffle_input(raw: torch.Tensor, axis: int, index: int, seed: int = 0) -> torch.Tensor:
    """`raw` with input `index` along `axis` taken from other items (a random permutation of axis 0): it still
    looks like itself, but no longer goes with the item's other inputs and label (permutation importance)."""
    order = torch.randperm(len(raw), generator=torch.Generator().manual_seed(seed))
    out = raw.clone()
    where = [slice(None)] * raw.ndim
    where[axis] = index
    out[tuple(where)] = raw[order][tuple(where)]
    return out


def gain(raw: torch.Tensor, axis: int, change: float) -> torch.Tensor:
    """Every channel along `axis` scaled by its own gain, 1 + `change` for the first, 1 - `change` for the second
    and so on (a sensor recalibrated: two channels of one machine moved apart, not only a louder machine)."""
    signs = torch.tensor([1.0 if k % 2 == 0 else -1.0 for k in range(raw.shape[axis])])
    shape = [1] * raw.ndim
    shape[axis] = raw.shape[axis]
    return raw * (1 + change * signs.reshape(shape))


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return images
    radius = max(1, int(round(3 * sigma)))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def brightness(images: torch.Tensor, change: float) -> torch.Tensor:
    """Grey levels scaled by 1 + `change` (-0.3: 30 % darker), kept in 0..255."""
    return (images * (1 + change)).clamp(0, 255)


def jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image saved as JPEG at `quality` (1..95) and read back; 100 leaves them as they came."""
    from PIL import Image

    if quality >= 100:
        return images
    out = []
    for image in images.clamp(0, 255).round().to(torch.uint8).numpy():
        mode = "L" if image.shape[0] == 1 else "RGB"
        picture = Image.fromarray(image[0] if mode == "L" else image.transpose(1, 2, 0), mode)
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=int(quality))
        back = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert(mode), dtype=np.float32)
        out.append(back[None] if mode == "L" else back.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out))


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    angle = torch.tensor(np.deg2rad(degrees), dtype=torch.float32)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, torch.tensor(0.0)]), torch.stack([sin, cos, torch.tensor(0.0)])])
    grid = F.affine_grid(theta.expand(len(images), 2, 3), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


IMAGE_CURVES = {  # name -> (function, strengths, what a strength is)
    "blur": (blur, [0.0, 0.5, 1.0, 2.0], "Gaussian blur sigma (pixels)"),
    "brightness": (brightness, [-0.3, -0.15, 0.0, 0.15, 0.3], "brightness change (fraction)"),
    "jpeg": (jpeg, [100, 50, 20, 10], "JPEG quality (100: the images as they came)"),
    "rotation": (rotate, [0.0, 2.0, 5.0, 10.0], "rotation (degrees)"),
}
UNCHANGED = {"jpeg": 100}  # the strength that leaves the images as they came (0 for the others)
