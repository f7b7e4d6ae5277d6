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
