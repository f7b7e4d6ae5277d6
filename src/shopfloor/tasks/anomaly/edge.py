"""The anomaly detector's edge hooks (`Estimator.edge_hooks`): int8 export and the robustness report."""

from __future__ import annotations

import numpy as np

from shopfloor.vision.edge import STATIC_REASON, graph_images


def edge_data(model, data, truth=None):
    """An MVTec-layout folder's `test` part: image AUROC of the score (an image's score: its tiles' largest)."""
    from sklearn.metrics import roc_auc_score

    from shopfloor.errors import BadTarget
    from shopfloor.kits.quantise import EdgeData
    from shopfloor.vision.estimator import image_set
    from shopfloor.vision.folders import read_inspection_folder

    model._check_fitted()
    model.refuse_truth(truth)
    found = image_set(data, lambda root: read_inspection_folder(root, "test"))
    images, owner = graph_images(model, found)
    images_seen = np.unique(owner)
    is_defect = np.array([found.labels[i] != "good" for i in images_seen])
    if is_defect.all() or not is_defect.any():
        raise BadTarget(f"{found.root}: int8 export of an anomaly detector checks its image AUROC, which needs good "
                        "and defective test images; this set has only one kind")

    def auroc(outputs: dict[str, np.ndarray]) -> float:
        per_input = outputs["score"].reshape(len(owner), -1).max(1)
        per_image = np.full(len(found.paths), -np.inf)
        np.maximum.at(per_image, owner, per_input)
        return float(roc_auc_score(is_defect, per_image[images_seen]))

    return EdgeData({"images": images}, auroc, "image_auroc", "static", STATIC_REASON, items="images")
