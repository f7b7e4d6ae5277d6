"""What the drift watch reads of images: a few statistics of each image as the camera gave it, and the network's
pooled features.

The statistics catch what a model may have been built to ignore: the anomaly model evens out each image's
lighting before its network sees it, so its features (and its verdicts) do not move when a lamp dims, but the
camera's images did, and a second lamp failing may not be harmless. Each is a number per image, compared as any
numeric input is: mean grey level, its spread, and the share of pixels at the dark and bright ends.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

DARK, BRIGHT = 16, 239  # grey levels (0-255) counted as crushed blacks and blown highlights


def image_statistics(images: torch.Tensor) -> pd.DataFrame:
    """Per image (uint8 [N, C, H, W]): brightness, contrast, dark share, bright share."""
    flat = images.reshape(len(images), -1).float()
    return pd.DataFrame({"brightness": flat.mean(1).numpy().astype(np.float64),
                         "contrast": flat.std(1).numpy().astype(np.float64),
                         "dark share": (flat <= DARK).float().mean(1).numpy().astype(np.float64),
                         "bright share": (flat >= BRIGHT).float().mean(1).numpy().astype(np.float64)})
