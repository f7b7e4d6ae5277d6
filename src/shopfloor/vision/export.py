"""ONNX export of the two image tasks (defect classes and anomaly detection), and their parity check.

Both take the same input and differ only in what they give, so one exporter serves both and asks the
estimator for the difference, never its name:

- `onnx_outputs` (a class attribute of the task's model): the graph's output names, in the order the
  model's `estimator_module()` returns them ("probabilities", "heatmap" for defect classes; "score",
  "heatmap" for anomaly detection);
- `onnx_notes` (optional class attribute): sentences for the file's metadata that only that task needs
  (the anomaly score's threshold, the memory its bank search takes);
- `classes_`, when the fitted model has it: the classes the outputs' columns stand for;
- `tile` and `keep_aspect_`, when set: how a picture is cut into the graph's images (see `view`).

Input: images float32 [N, channels, size, size], grey levels 0..255. Scaling, the network, the memory-bank
search (anomaly) and the heatmap are inside the graph; decoding and resizing to size x size stay with the
caller, as every image library does them.

Metadata: the keys every shopfloor file carries (`shopfloor.kits.onnx`: shopfloor_version, task =
"defects" or "anomaly", exporter, outputs, input_contract) and:
    image_size   the side of the graph's square images, in pixels
    channels     1 (grey) or 3 (RGB)
    classes      JSON list of the defect classes, the columns of `probabilities` (models with classes)
    and the task's `onnx_notes`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from shopfloor.kits.onnx import check_request, export_module, file_facts, frozen_copy, largest_difference, run_onnx, write_onnx

PARITY_IMAGES = 16
PARITY_BATCH = 4


def export_onnx(model, path: str | os.PathLike, opset: int = 18) -> Path:
    """Write a fitted image model (DefectModel, AnomalyModel) as one ONNX graph; returns its path."""
    path = check_request(model, path, opset)
    module = frozen_copy(model.estimator_module())
    size = model.image_size_
    example = (torch.rand(2, model.channels_, size, size, generator=torch.Generator().manual_seed(0)) * 255,)
    outputs = list(model.onnx_outputs)
    proto, exporter = export_module(module, example, opset, ["images"], outputs)
    proto.graph.name = f"shopfloor {model.task_name}"
    contract = (f"images float32 [N, {model.channels_}, {size}, {size}]: {view(model)}, grey levels 0..255"
                + (", grey" if model.channels_ == 1 else ", RGB order"))
    facts = file_facts(model, exporter, outputs, contract) | {"image_size": str(size), "channels": str(model.channels_)}
    if getattr(model, "classes_", None) is not None:
        facts["classes"] = json.dumps(model.classes_)
    return write_onnx(proto, path, facts | dict(getattr(model, "onnx_notes", {})))


def tiled(model) -> bool:
    """Whether the model sees a picture as several tiles (of `tile` native pixels, or along its longer side)."""
    return getattr(model, "tile", None) is not None or getattr(model, "keep_aspect_", False)


def view(model) -> str:
    """How a picture becomes the graph's input, in words: the same steps as `shopfloor.vision.images`."""
    size = model.image_size_
    if getattr(model, "tile", None) is not None:
        return (f"tiles of {model.tile} x {model.tile} native pixels overlapping by 1/8 or more, each resized to "
                f"{size} x {size} (bilinear); an image's heatmap is the maximum over its tiles, its score the "
                "maximum of that (shopfloor.vision.images.read_tiles and stitch)")
    if getattr(model, "keep_aspect_", False):
        return (f"the picture scaled so its shorter side is {size} pixels (bilinear, aspect ratio kept) and cut along "
                f"its longer side into {size} x {size} tiles overlapping by 1/8 or more; an image's heatmap is the "
                "maximum over its tiles, its score the maximum of that (shopfloor.vision.images.read_tiles with no "
                "tile size, and stitch)")
    return f"the picture resized to {size} x {size} (bilinear)"


def check_parity(model, onnx_path: str | os.PathLike, data) -> float:
    """Largest difference over every output, on up to PARITY_IMAGES images of a file or folder, fed as the
    model feeds its network (whole images, or their tiles)."""
    from shopfloor.vision.estimator import decode, image_set
    from shopfloor.vision.folders import list_images
    from shopfloor.vision.images import read_tiles

    found = image_set(data, list_images)
    found = found.subset(list(range(min(len(found), PARITY_IMAGES))))
    size = model.image_size_
    if tiled(model):
        tiles = [read_tiles(path, model.channels_, getattr(model, "tile", None), size)[0] for path in found.paths]
        images = torch.from_numpy(np.rint(np.concatenate(tiles)[:PARITY_IMAGES]).astype(np.float32))  # as the model rounds
    else:
        images = decode(found, model.channels_, size)[0].float()
    module = model.estimator_module()
    worst = 0.0
    for start in range(0, len(images), PARITY_BATCH):
        batch = images[start:start + PARITY_BATCH]
        exported = run_onnx(onnx_path, {"images": batch.numpy()})
        with torch.no_grad():
            expected = module(batch)
        for name, value in zip(model.onnx_outputs, expected, strict=True):
            worst = max(worst, largest_difference(onnx_path, exported[name], value.numpy()))
    return worst
