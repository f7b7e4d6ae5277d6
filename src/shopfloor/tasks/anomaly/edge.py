"""The anomaly detector's edge hooks (`Estimator.edge_hooks`): int8 export and the robustness report."""

from __future__ import annotations

import numpy as np

from shopfloor.tasks.anomaly.bank_search import float_tail, int8_search
from shopfloor.vision.edge import STATIC_REASON, graph_images

SEARCH_REASON = (STATIC_REASON + "; the memory-bank search, most of the float graph's time, ranks candidates with int8 "
                 "products and compares the nearest few in float")


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

    # the backbone static QDQ, from the patch features on float (`float_tail`), and the bank search rewritten as
    # int8 products that rank candidates for a float comparison (`int8_search`): the quantiser's own int8 search
    # ran slower than float (benchmarks/README.md, int8.py); per-channel weight scales (`quantise_file`'s default):
    # per-tensor lost 0.028 image AUROC on magnetic tile
    return EdgeData({"images": images}, auroc, "image_auroc", "static", SEARCH_REASON, items="images",
                    float_nodes=float_tail, rewrite=int8_search)


def robustness_probe(model, data, truth=None):
    """At most MAX_IMAGES test images (half good and half defective where there are enough, drawn at random,
    seed 0) as grey levels, or their tiles; loss: the raw score (largest patch distance) pushed the wrong way
    (down on defects, up on good parts); metric: image AUROC of the raw score."""
    import torch

    from shopfloor.robustness.probe import MAX_IMAGES, Probe
    from shopfloor.vision.estimator import image_set
    from shopfloor.vision.folders import read_inspection_folder

    model._check_fitted()
    model.refuse_truth(truth)
    found = image_set(data, lambda root: read_inspection_folder(root, "test"))
    defect = np.array([label != "good" for label in found.labels])
    rng = np.random.default_rng(0)
    picks = [rng.permutation(np.flatnonzero(defect == kind))[:MAX_IMAGES // 2] for kind in (False, True)]
    if not len(picks[0]) or not len(picks[1]):
        from shopfloor.errors import BadTarget

        raise BadTarget(f"{found.root}: the robustness of an anomaly detector is measured by its image AUROC, which "
                        "needs good and defective test images; this set has only one kind")
    found = found.subset(list(np.sort(np.concatenate(picks))))
    images, owner = graph_images(model, found)
    owner_t = torch.from_numpy(owner)
    is_defect = torch.tensor([found.labels[i] != "good" for i in owner], dtype=torch.float32)
    module = model.estimator_module().eval()

    def loss(outputs, part: slice):
        return torch.mean((1 - 2 * is_defect[part]) * outputs.reshape(len(outputs), -1).amax(1))

    def metric(outputs) -> float:
        from sklearn.metrics import roc_auc_score

        per_image = torch.full((len(found.paths),), -torch.inf).scatter_reduce(
            0, owner_t, outputs.reshape(len(outputs), -1).amax(1), reduce="amax")
        seen = torch.unique(owner_t)
        return float(roc_auc_score([found.labels[i] != "good" for i in seen.tolist()], per_image[seen].numpy()))

    # raw distances, as `evaluate` ranks images: the 0..1 score saturates far from the good parts, and ties there
    # would read as a ranking lost
    return Probe(torch.from_numpy(images), module.distances, loss, metric, "image_auroc", True, "images",
                 torch.tensor(255.0))
