"""What the image tasks' edge hooks share (`tasks/defects/edge.py`, `tasks/anomaly/edge.py`): the graph's
input for a set of images, and why both are quantised statically.

Both are convolutional nets, so both are quantised statically (QDQ, ranges calibrated on the given images):
a conv's activations span a range that a per-batch guess (dynamic quantisation) measures badly, and ONNX
Runtime's dynamic mode quantises only matrix products, which leaves the convolutions, most of the time
and weight, in float. The graph's input is what `vision.export` documents: images float32 0..255, whole or
cut into the model's tiles.
"""

from __future__ import annotations

import numpy as np

STATIC_REASON = ("a convolutional net: its activations get ranges calibrated on the given images (static, QDQ), "
                 "and its convolutions, most of its time and weight, are quantised too")


def graph_images(model, found) -> tuple[np.ndarray, np.ndarray]:
    """The graph's input for every readable image of `found` (tiles where the model tiles) and, per input, the
    index in `found` of the image it came from."""
    from shopfloor.vision.estimator import decode
    from shopfloor.vision.export import tiled
    from shopfloor.vision.images import read_tiles

    if not tiled(model):
        images, kept = decode(found, model.channels_, model.image_size_)
        position = {path: i for i, path in enumerate(found.paths)}
        return images.float().numpy(), np.array([position[p] for p in kept.paths])
    tiles, owner = [], []
    for i, path in enumerate(found.paths):
        cut = read_tiles(path, model.channels_, getattr(model, "tile", None), model.image_size_)[0]
        tiles.append(np.rint(cut).astype(np.float32))  # as the model rounds its tiles
        owner += [i] * len(cut)
    return np.concatenate(tiles), np.array(owner)
