"""How an anomaly detector's heatmaps are scored against defect masks (the ground truth of an MVTec-layout
folder): masks brought to the heatmap's resolution, pixel AUROC and AUPRO, and a word about defect images
that have no mask.
"""

from __future__ import annotations

import numpy as np

from shopfloor.metrics import aupro, pixel_auroc


def pixel_metrics(masks: list, maps: list, chosen: np.ndarray, regions: bool = True) -> dict[str, float]:
    """Pixel AUROC (and AUPRO) over the chosen images that have a mask (good parts have an empty one)."""
    pairs = [(m, a) for m, a, c in zip(masks, maps, chosen, strict=True) if c and m is not None]
    if not any(m.any() for m, _ in pairs):
        return {"pixel_auroc": float("nan"), **({"aupro": float("nan")} if regions else {})}
    found, heat = [m for m, _ in pairs], [a for _, a in pairs]
    return {"pixel_auroc": pixel_auroc(found, heat), **({"aupro": aupro(found, heat)} if regions else {})}


def warn_unmasked(found, kept: np.ndarray, is_defect: np.ndarray) -> None:
    """Name the defect images without a mask that the folder reader passed over in silence: those of defect
    types with no ground-truth folder at all (pixel_auroc came out null without a word, issue 13)."""
    from shopfloor.errors import warn
    from shopfloor.vision.folders import MASK_ENDINGS

    silent = [found.paths[i] for i, d in zip(kept, is_defect, strict=True)
              if d and found.masks[i] is None and not (found.root / "ground_truth" / found.labels[i]).is_dir()]
    if not silent:
        return
    named = ", ".join(f"{p.parent.name}/{p.name}" for p in silent[:10])
    named += f" and {len(silent) - 10} more" if len(silent) > 10 else ""
    endings = ", ".join(f"<image>{e}" for e in MASK_ENDINGS)
    warn(f"{len(silent)} of {int(is_defect.sum())} defect images have no mask ({named}): pixel scores leave them out; "
         f"put masks in {found.root / 'ground_truth'}/<defect>/ named {endings} (any image suffix)")


def mask_at(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """A defect mask at the heatmap's resolution (nearest neighbour, as anomalib and MVTec's tools do)."""
    from PIL import Image

    if mask.shape == (height, width):
        return mask
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.NEAREST)) > 127
