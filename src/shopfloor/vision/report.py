"""Pictures that the two image tasks share: heatmap overlays and the report section of example heatmaps.

`write_overlay` is what `shopfloor predict` writes for every image: the part in grey with the
heatmap in colour on top (blue = looks normal, red = the evidence), at most 512 pixels a side.
Each image task's own page (`tasks/defects/report.py`, `tasks/anomaly/report.py`) puts
`examples_section` among its sections, with a caption that says what its model decided.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from shopfloor.kits.page import plots, png_figure, section

OVERLAY_SIDE = 512
EXAMPLES = 8
EXAMPLES_NOTE = ('<p class="note">Red marks where the evidence lies: the predicted class\'s activation for a classifier, '
                 "distance from every good patch for an anomaly model (its colour scale puts the threshold mid-way).</p>")


def overlay_image(image_path, heatmap: np.ndarray, caption: str = ""):
    """A PIL image: the picture in grey, the heatmap (0..1) as a colour layer where it is high."""
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    from shopfloor.vision.images import read_image

    height, width = heatmap.shape
    scale = min(1.0, OVERLAY_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # square heatmaps are the model's view of a resized image; tiled ones keep the image's shape
    grey = read_image(image_path, 1, size[0] if size[0] == size[1] else None)
    picture = Image.fromarray(np.clip(grey[0], 0, 255).astype(np.uint8)).resize(size, Image.BILINEAR).convert("RGB")
    heat = Image.fromarray((np.clip(heatmap, 0, 1) * 255).astype(np.uint8)).resize(size, Image.BILINEAR)
    level = np.asarray(heat, dtype=np.float32) / 255
    colour = (colormaps["jet"](level)[..., :3] * 255).astype(np.float32)
    alpha = (0.15 + 0.5 * level)[..., None]  # the part stays visible where nothing is found
    blended = (np.asarray(picture, dtype=np.float32) * (1 - alpha) + colour * alpha).astype(np.uint8)
    result = Image.fromarray(blended)
    if caption:
        draw = ImageDraw.Draw(result)
        draw.rectangle([0, 0, min(size[0], 8 + 7 * len(caption)), 16], fill=(0, 0, 0))
        draw.text((4, 2), caption, fill=(255, 255, 255))
    return result


def write_overlay(path: str | os.PathLike, image_path, heatmap: np.ndarray, caption: str = "") -> Path:
    path = Path(path)
    overlay_image(image_path, heatmap, caption).save(path, format="PNG")
    return path


def examples_section(model, images, caption: Callable[[str, pd.Series], str]) -> str:
    """Heatmaps of a few random images of `images` (an ImageSet), each with `caption(its label, its verdict row)`.

    The same images for the same set every time (a fixed seed), so two reports of one folder can be compared.
    """
    rng = np.random.default_rng(0)
    picks = [int(i) for i in rng.permutation(len(images))[:EXAMPLES]]
    subset = images.subset(sorted(picks))
    verdicts, maps = model.heatmaps(subset)
    figures = []
    for i in range(len(verdicts)):
        row = verdicts.iloc[i]
        buffer = io.BytesIO()
        overlay_image(row["file"], maps[i]).save(buffer, format="PNG")
        figures.append(png_figure(buffer.getvalue(), caption(subset.labels[i], row)))
    return section(f"Example heatmaps ({len(figures)} random images)", EXAMPLES_NOTE + plots(figures))
