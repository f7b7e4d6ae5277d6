"""Networks for visual inspection: feature extractors, the defect classifier and the anomaly detector.

Every module takes images as the camera gives them: float [batch, channels, size, size] with
grey levels 0..255 (channels 1 or 3). Scaling, grey-to-RGB and normalisation happen inside, so
Python, the REST service and the ONNX graph see the same numbers.

- `SurfaceCNN`: a small CNN learned from scratch (four stages of two 3x3 convolutions).
- `Lite0Features`: EfficientNet-Lite0 with ImageNet weights, frozen, cut after the last block used.
- `DefectNet`: features -> global average -> standardise -> linear layer. Because the head is
  linear after a global average, the class-activation map `sum_k w_ck (A_k - mu_k) / sigma_k` averages
  exactly to the class logit (minus its bias): it is Grad-CAM without the gradient pass, and it
  exports to ONNX with the prediction.
- `AnomalyNet`: PatchCore-style. Each image's lighting is evened out; locally averaged patch
  features of good images form a memory bank; a patch's anomaly is its distance to the nearest bank
  entry; the map is upsampled and smoothed; the image score is the map's maximum. Scores are squashed to 0..1 so that the decision
  threshold reads 0.5 for every model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from shopfloor.vision.efficientnet import BLOCK_CHANNELS, HEAD_CHANNELS, EfficientNetLite0


class SurfaceCNN(nn.Module):
    """A from-scratch feature extractor for small grey or colour images; output stride 16.

    A stride-2 stem, then four stages of two 3x3 convolutions with max-pooling between them:
    about 0.2 GMAC at 128 px, so that an epoch of a thousand images takes seconds, not minutes,
    on two cores (the first design, without the stem, cost four times as much)."""

    def __init__(self, channels: int, widths: tuple[int, ...] = (32, 64, 128, 192)):
        super().__init__()
        self.register_buffer("mean", torch.full((1, channels, 1, 1), 127.5))
        self.register_buffer("std", torch.full((1, channels, 1, 1), 64.0))
        layers = [nn.Conv2d(channels, 24, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(24), nn.ReLU()]
        d_in = 24
        for i, width in enumerate(widths):
            for _ in range(2):
                layers += [nn.Conv2d(d_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
                d_in = width
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.feature_channels = [d_in]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body((images - self.mean) / self.std)


class Lite0Features(nn.Module):
    """Frozen ImageNet EfficientNet-Lite0: images 0..255 -> feature maps after `blocks` (and the head).

    Blocks after the last one used are removed, so a saved anomaly model holds only what it runs.
    """

    def __init__(self, blocks: tuple[int, ...], head: bool = False, lite0: EfficientNetLite0 | None = None):
        super().__init__()
        net = lite0 if lite0 is not None else EfficientNetLite0()
        del net._fc
        if not head:
            del net._conv_head, net._bn1
            net._blocks = net._blocks[:max(blocks) + 1]
        self.net, self.blocks, self.head = net, tuple(blocks), head
        self.feature_channels = [BLOCK_CHANNELS[b] for b in blocks] + ([HEAD_CHANNELS] if head else [])
        self.requires_grad_(False)
        # depthwise convolutions run 1.15-1.45x faster with channels last (same outputs), measured at 256 px
        self.net.to(memory_format=torch.channels_last)

    def train(self, mode: bool = True):
        return super().train(False)  # frozen: batch-norm statistics stay ImageNet's

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        scaled = ((images - 127.5) / 127.5).contiguous(memory_format=torch.channels_last)
        return self.net.taps(scaled, self.blocks, self.head)


class DefectNet(nn.Module):
    """Images -> class logits; `heatmaps` gives the class-activation map of any class.
    `temperature` (fitted on validation images) calibrates the probabilities, not the training."""

    def __init__(self, features: nn.Module, n_classes: int, dropout: float = 0.2):
        super().__init__()
        self.features = features
        n_features = sum(features.feature_channels)
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        self.register_buffer("temperature", torch.tensor(1.0))
        self.dropout = nn.Dropout(dropout)
        self.classify = nn.Linear(n_features, n_classes)

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """Standardised features [batch, features, h, w]; every map is brought to the first's size."""
        maps = self.features(images)
        maps = maps if isinstance(maps, list | tuple) else [maps]
        size = maps[0].shape[-2:]
        maps = [m if m.shape[-2:] == size else F.adaptive_avg_pool2d(m, size) for m in maps]
        mean, std = self.feature_mean[None, :, None, None], self.feature_std[None, :, None, None]
        return (torch.cat(maps, 1) - mean) / std

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        return self.feature_map(images).mean((2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(self.feature_map(images))

    def logits(self, maps: torch.Tensor) -> torch.Tensor:
        """Class logits from `feature_map`'s output (so that a caller who needs the maps too computes them once)."""
        return self.classify(self.dropout(maps.mean((2, 3))))

    def heatmaps(self, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Where the evidence for `classes` [batch] lies: [batch, size, size], 0..1 per image."""
        return self.class_activation(self.feature_map(images), classes, images.shape[-2:])

    def class_activation(self, maps: torch.Tensor, classes: torch.Tensor, size) -> torch.Tensor:
        weights = self.classify.weight[classes]  # [batch, features]
        cam = torch.relu(torch.einsum("bk,bkhw->bhw", weights, maps))
        cam = F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        return cam / cam.flatten(1).amax(1).clamp(min=1e-12)[:, None, None]


class DefectEstimate(nn.Module):
    """The whole classifier prediction for export: images -> probabilities and the winning class's heatmap."""

    def __init__(self, net: DefectNet):
        super().__init__()
        self.net = net

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(images) / self.net.temperature, dim=1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the backbone runs once for both answers (running it again for the heatmap doubled an inspection's time)
        maps = self.net.feature_map(images)
        probabilities = torch.softmax(self.net.logits(maps) / self.net.temperature, dim=1)
        return probabilities, self.net.class_activation(maps, probabilities.argmax(1), images.shape[-2:])


def even_out_lighting(images: torch.Tensor) -> torch.Tensor:
    """Every image to the same mean grey (127.5) and spread (40 levels): parts are lit and coated a little
    differently, and a memory bank of good patches should not have to hold every brightness."""
    flat = images.flatten(1)
    mean = flat.mean(1)[:, None, None, None]
    std = flat.std(1).clamp(min=1.0)[:, None, None, None]
    return ((images - mean) / std * 40 + 127.5).clamp(0, 255)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(4 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


class AnomalyNet(nn.Module):
    """Good-only anomaly detection: images -> (score [batch], heatmap [batch, size, size]), both 0..1.

    A score of 0.5 is the decision threshold (`threshold`, a raw distance); `spread` sets how fast
    the squashed score moves from 0 to 1 around it.
    """

    def __init__(self, features: Lite0Features, bank_size: int, pooling: int = 3, sigma: float = 8.0,
                 even_lighting: bool = True):
        super().__init__()
        self.features = features
        self.pooling = pooling
        self.even_lighting = even_lighting
        dims = sum(features.feature_channels)
        self.register_buffer("bank", torch.zeros(bank_size, dims))
        self.register_buffer("bank_norm", torch.zeros(bank_size))  # |b|^2, precomputed
        self.register_buffer("blur", gaussian_kernel(sigma))
        self.register_buffer("threshold", torch.tensor(1.0))
        self.register_buffer("spread", torch.tensor(1.0))

    def patches(self, images: torch.Tensor) -> torch.Tensor:
        """Patch features [batch, dims, h, w]: each map averaged over its neighbourhood, at the first map's size.

        The average counts the zero padding at the border (`count_include_pad`): ignoring it dropped
        magnetic-tile image AUROC from 0.92 to 0.77, because border patches then look like no other."""
        if self.even_lighting:
            images = even_out_lighting(images)
        maps = [F.avg_pool2d(m, self.pooling, 1, self.pooling // 2) for m in self.features(images)]
        size = maps[0].shape[-2:]
        maps = [m if m.shape[-2:] == size else F.interpolate(m, size=size, mode="bilinear", align_corners=False)
                for m in maps]
        return torch.cat(maps, 1)

    def distances(self, images: torch.Tensor) -> torch.Tensor:
        """Raw anomaly map [batch, size, size]: distance of each patch to the nearest good patch, smoothed."""
        patches = self.patches(images)
        b, d, h, w = patches.shape
        flat = patches.permute(0, 2, 3, 1).reshape(b * h * w, d)
        # |p - b|^2 = |b|^2 - 2 p.b + |p|^2: one fused multiply-add over the [patches, bank] matrix, then
        # |p|^2 after the minimum (it is the same for every bank entry)
        squared = torch.addmm(self.bank_norm[None, :], flat, self.bank.T, alpha=-2).min(1).values
        nearest = (squared + (flat * flat).sum(1)).clamp(min=0).sqrt().reshape(b, 1, h, w)
        raw = F.interpolate(nearest, size=images.shape[-2:], mode="bilinear", align_corners=False)
        k = self.blur.numel()
        raw = F.pad(raw, [k // 2] * 4, mode="replicate")
        raw = F.conv2d(raw, self.blur.view(1, 1, 1, k))
        raw = F.conv2d(raw, self.blur.view(1, 1, k, 1))
        return raw[:, 0]

    def squash(self, raw: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid((raw - self.threshold) / self.spread)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.distances(images)
        return self.squash(raw.flatten(1).amax(1)), self.squash(raw)

    def set_bank(self, bank: torch.Tensor) -> None:
        self.bank = bank.contiguous()
        self.bank_norm = (bank * bank).sum(1)
