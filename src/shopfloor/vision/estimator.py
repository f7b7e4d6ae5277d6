"""What the two inspection estimators share: decoding folders into tensors, running the network in
small batches, and writing verdicts with heatmap overlays.

Images are held as uint8 [N, channels, size, size]: a quarter of the memory of floats, and the
networks take grey levels 0..255 anyway.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from shopfloor.errors import DataFileError, ShopfloorError, warn
from shopfloor.vision.folders import ImageSet

# Small batches: EfficientNet-Lite0 to block 10 at 256 px ran 59 images/s a thread in batches of 1,
# 45 in batches of 4 and 25 in batches of 8 (activations leave the cache).
PREDICT_BATCH = 1
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def image_set(data, read: Callable) -> ImageSet:
    """`data` itself when it is an ImageSet, else the folder or file read with `read`."""
    return data if isinstance(data, ImageSet) else read(data)


def image_channels(images: ImageSet, sample: int = 50) -> int:
    """1 when every image of a sample is grey, 3 when any is in colour. Many cameras and tools save grey
    pictures as RGB with three equal channels (NEU's JPEGs do): those count as grey, checked on a thumbnail."""
    from PIL import Image

    picks = np.random.default_rng(0).permutation(len(images))[:sample]
    for i in picks:
        try:
            with Image.open(images.paths[i]) as image:
                if image.mode in GREY_MODES:
                    continue
                image.draft("RGB", (64, 64))  # JPEG: decode at reduced size
                thumbnail = np.asarray(image.convert("RGB").resize((64, 64)), dtype=np.int16)
        except OSError:
            continue  # unreadable files are reported when decoded
        if np.abs(thumbnail - thumbnail[..., :1]).max() > 2:  # JPEG noise aside, the channels differ
            return 3
    return 1


def decode(images: ImageSet, channels: int, size: int) -> tuple[torch.Tensor, ImageSet]:
    """All images as uint8 [N, channels, size, size]; files that fail to decode are skipped with one warning."""
    from shopfloor.vision.images import read_image

    arrays, kept, skipped = [], [], []
    for i, path in enumerate(images.paths):
        try:
            arrays.append(np.rint(read_image(path, channels, size)).astype(np.uint8))
            kept.append(i)
        except ShopfloorError as err:
            skipped.append((path, str(err)))
    if skipped:
        names = ", ".join(Path(p).name for p, _ in skipped[:10])
        warn(f"skipped {len(skipped)} image(s) that could not be decoded: {names}"
             + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""))
    if not kept:
        raise DataFileError(f"none of the {len(images)} images in {images.root} could be decoded")
    subset = images.subset(kept)
    subset.skipped = list(images.skipped) + skipped
    return torch.from_numpy(np.stack(arrays)), subset


def in_batches(fn: Callable[[torch.Tensor], tuple | torch.Tensor], images: torch.Tensor,
               batch: int = PREDICT_BATCH, module: torch.nn.Module | None = None) -> list[np.ndarray]:
    """Run `fn` on float batches of uint8 images; outputs concatenated, one array per output.

    Each core takes its own batches with one thread, rather than every core sharing each batch:
    small image batches split poorly between threads (the work between synchronisations is short).
    On a device chosen with `--device` (not the CPU) the network (`module`: `fn` itself or the module whose method
    it is) moves there for the call and takes batches of 64, one after another (`on_device_batches`)."""
    from shopfloor.devices import current_device

    if current_device().type != "cpu":
        return on_device_batches(fn, images, module if module is not None else getattr(fn, "__self__", fn))
    starts = range(0, len(images), batch)
    workers = min(torch.get_num_threads(), len(starts))

    def run(start: int) -> tuple:
        with torch.inference_mode():
            out = fn(images[start:start + batch].float())
        return out if isinstance(out, tuple) else (out,)

    if workers <= 1:
        outputs = [run(start) for start in starts]
    else:
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(workers) as pool:
                outputs = list(pool.map(run, starts))
        finally:
            torch.set_num_threads(previous)
    return [torch.cat(parts).numpy() for parts in zip(*outputs, strict=True)]


DEVICE_BATCH = 64  # a GPU wants work: one image a call (the CPU's best) would leave it waiting on each launch


def on_device_batches(fn: Callable[[torch.Tensor], tuple | torch.Tensor], images: torch.Tensor,
                      module: torch.nn.Module) -> list[np.ndarray]:
    """`in_batches` on the chosen device: uint8 batches copied there (a quarter of the bytes of floats), outputs
    brought back to the CPU; the module returns to the CPU afterwards (`devices.scoring_on`)."""
    from shopfloor.devices import scoring_on, to_device

    if not isinstance(module, torch.nn.Module):
        raise TypeError("in_batches on a device needs the network: pass module=")
    outputs = []
    with torch.inference_mode(), scoring_on(module) as device:
        for start in range(0, len(images), DEVICE_BATCH):
            out = fn(to_device((images[start:start + DEVICE_BATCH],), device)[0].float())
            outputs.append(tuple(t.cpu() for t in (out if isinstance(out, tuple) else (out,))))
    return [torch.cat(parts).numpy() for parts in zip(*outputs, strict=True)]


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indexes for training and validation, with every class in both where it has 2+ images."""
    rng = np.random.default_rng(seed)
    valid = []
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        take = int(round(len(rows) * fraction)) if len(rows) > 1 else 0
        valid.extend(rows[:max(take, 1 if len(rows) > 1 else 0)])
    valid = np.sort(np.asarray(valid, dtype=np.int64))
    return np.setdiff1d(np.arange(len(labels)), valid), valid


def where_heatmaps_point(table: pd.DataFrame, heatmaps: list[np.ndarray] | np.ndarray) -> pd.DataFrame:
    """The prediction table with, per image, where its heatmap (0..1) points, in numbers a table can hold:

    heatmap_peak: the heatmap's largest value; heatmap_peak_x, heatmap_peak_y: where it is, as fractions of the
    heatmap's width and height from the top left corner (the pixel's centre; the first such pixel on a tie),
    so that they hold for the image at any size; heatmap_above_half: the share of the image whose heatmap
    is above 0.5 (for the anomaly detector, the decision threshold), how large the suspect area is.
    The maps themselves come from the task's `heatmaps`, and as overlays from `explain_file`.
    """
    peak, x, y, above = [], [], [], []
    for heatmap in heatmaps:
        heatmap = np.asarray(heatmap, dtype=np.float64)
        row, column = np.unravel_index(int(heatmap.argmax()), heatmap.shape)
        peak.append(float(heatmap[row, column]))
        x.append((column + 0.5) / heatmap.shape[1])
        y.append((row + 0.5) / heatmap.shape[0])
        above.append(float((heatmap > 0.5).mean()))
    return table.assign(heatmap_peak=peak, heatmap_peak_x=x, heatmap_peak_y=y, heatmap_above_half=above)


def write_verdicts(table: pd.DataFrame, heatmaps: np.ndarray, images: ImageSet,
                   destination: str | os.PathLike) -> Path:
    """The verdict table as CSV/Parquet plus one PNG overlay per image.

    `destination` ending in .csv or .parquet: that file, overlays in '<name>-heatmaps/' beside it;
    anything else is a folder that receives predictions.csv and heatmaps/.
    """
    from shopfloor.data.tables import write_table
    from shopfloor.vision.report import write_overlay

    destination = Path(destination)
    if destination.suffix.lower() in (".csv", ".parquet"):
        table_path, overlay_dir = destination, destination.with_name(destination.stem + "-heatmaps")
    else:
        table_path, overlay_dir = destination / "predictions.csv", destination / "heatmaps"
    if not table_path.parent.exists() and table_path.parent != destination:
        raise DataFileError(f"{table_path}: the folder {table_path.parent} does not exist")
    overlay_dir.mkdir(parents=True, exist_ok=True)
    names = _overlay_names(images)
    overlays = []
    for i, path in enumerate(images.paths):
        target = overlay_dir / names[i]
        write_overlay(target, path, heatmaps[i], _caption(table.iloc[i]))
        overlays.append(str(target))
    write_table(table.assign(heatmap=overlays), table_path)
    return table_path


def _overlay_names(images: ImageSet) -> list[str]:
    """Unique PNG names: the file's path under the folder read, with '/' turned into '__'."""
    names = []
    for path in images.paths:
        path = Path(path)
        try:
            relative = path.relative_to(images.root)
        except ValueError:
            relative = Path(path.name)
        names.append("__".join(relative.with_suffix("").parts) + ".png")
    return names


def _caption(row: pd.Series) -> str:
    if "defect" in row:
        return f"{row['defect']} ({row['confidence']:.2f})"
    return f"{row['verdict']} (score {row['score']:.2f})"


def image_inputs(manifest: dict) -> dict:
    """What an image model's `summary` says it reads: the image size and the number of channels."""
    state, params = manifest.get("state", {}), manifest.get("params", {})
    return {"image_size": state.get("image_size") or params.get("image_size"), "channels": state.get("channels")}


def images_line(manifest: dict, shape: str = "") -> str:
    """`info`'s line on the images a model reads: size (with `shape`, how a non-square image is fitted),
    grey or colour, and the backbone when the task has one."""
    state, params = manifest.get("state", {}), manifest.get("params", {})
    size = image_inputs(manifest)["image_size"]
    return (f"images: {size} x {size}{shape}, {'grey' if state['channels'] == 1 else 'colour'}"
            + (f", backbone {state.get('backbone', params['backbone'])}" if "backbone" in params else ""))
