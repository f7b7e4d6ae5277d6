"""The defect classifier's edge hooks (`Estimator.edge_hooks`): int8 export and the robustness report."""

from __future__ import annotations

import numpy as np

from shopfloor.vision.edge import STATIC_REASON, graph_images


def edge_data(model, data, truth=None):
    """A class-per-folder set: accuracy of the most likely class."""
    from shopfloor.kits.quantise import EdgeData
    from shopfloor.vision.estimator import image_set
    from shopfloor.vision.folders import read_class_folders

    model._check_fitted()
    model.refuse_truth(truth)
    folders = image_set(data, read_class_folders)
    images, owner = graph_images(model, folders)
    known = {name: k for k, name in enumerate(model.classes_)}
    labels = np.array([known.get(folders.labels[i], -1) for i in owner])

    def accuracy(outputs: dict[str, np.ndarray]) -> float:
        return float(np.mean(outputs["probabilities"].argmax(1) == labels))

    return EdgeData({"images": images}, accuracy, "accuracy", "static", STATIC_REASON, items="images")


def robustness_probe(model, data, truth=None):
    """At most MAX_IMAGES images of a class-per-folder set (drawn at random, seed 0) as grey levels; loss:
    cross-entropy of the true class; metric: accuracy."""
    import torch

    from shopfloor.kits.sampling import spread_rows
    from shopfloor.robustness.probe import MAX_IMAGES, Probe
    from shopfloor.vision.estimator import image_set
    from shopfloor.vision.folders import read_class_folders

    model._check_fitted()
    model.refuse_truth(truth)
    folders = image_set(data, read_class_folders)
    folders = folders.subset(list(spread_rows(len(folders.paths), MAX_IMAGES)))
    images, owner = graph_images(model, folders)
    known = {name: k for k, name in enumerate(model.classes_)}
    labels = torch.tensor([known.get(folders.labels[i], -1) for i in owner])
    module = model.estimator_module().eval()

    def loss(outputs, part: slice):
        return torch.nn.functional.nll_loss(torch.log(outputs.clamp_min(1e-7)), labels[part].clamp_min(0))

    def metric(outputs) -> float:
        return float(torch.mean((outputs.argmax(1) == labels).float()))

    return Probe(torch.from_numpy(images), module.probabilities, loss, metric, "accuracy", True, "images",
                 torch.tensor(255.0))
