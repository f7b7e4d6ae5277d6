"""Anomaly detection from good parts only: a score per image and a heatmap of where it looks wrong.

How a fit goes (data in the MVTec layout; only `train/good` is read):
1. a share of the good images (`calibration_fraction`) is set aside;
2. the others, their lighting evened out, pass through the frozen ImageNet EfficientNet-Lite0 (the
   `shopfloor[pretrained]` extra); from their locally averaged patch features at `blocks` a greedy
   coreset keeps the `bank_size` patches that cover the rest best, so the saved model has a fixed
   size whatever the number of training images;
3. the set-aside good images are scored: the threshold is the score that only `false_alarm_rate`
   of good parts exceed (5 % by default: on magnetic tile, 1 % put the threshold at the highest
   set-aside score and caught 22 % of the defects, F1 0.36; 5 % caught 68 % with 1.6 % false
   alarms on the test's good parts, F1 0.81; 10 %: 95 %, 9.9 % and 0.95). With a `validation`
   folder that holds defects, the threshold that maximises F1 on it is used instead. (A threshold
   chosen for F1 on a validation set without defects flags everything - anomalib's issue #2433 -
   so the good-only rule is the default.)
4. scores and heatmaps are squashed to 0..1 with the threshold at 0.5; the raw threshold stays
   in the model.

Large images (a 4000 x 3000 frame with a 20-pixel defect) can be cut into tiles at native
resolution (`tile` pixels, overlapping); each tile is scored, the heatmaps are stitched, and the
image's score is its worst tile's. Without `tile`, an image is cut the same way into tiles as long as
its shorter side (`keep_aspect`, the default): the network sees every part at `image_size` pixels
across its shorter side, whatever its shape, and the heatmap has the part's shape. Squashing a 1:2.5
part into a square (what models saved before `keep_aspect` do, and `keep_aspect=False`) thins its
defects 2.5-fold along the long side. On magnetic tile, tiles found the thin cracks and breaks better
and lost on large brightness changes ('uneven'), at 2.9 times the training time: benchmarks/README.md.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import torch

from shopfloor.artifacts import check_size
from shopfloor.devices import scoring_on, to_device
from shopfloor.errors import BadOption, BadTarget, DataFileError, NotAModel
from shopfloor.metrics import anomaly_metrics, best_threshold
from shopfloor.tasks.anomaly.coreset import greedy_coreset
from shopfloor.tasks.anomaly.masks import mask_at, pixel_metrics, warn_unmasked
from shopfloor.tasks.base import Estimator
from shopfloor.training import seed_everything
from shopfloor.vision.efficientnet import BLOCK_CHANNELS
from shopfloor.vision.estimator import (
    decode,
    image_channels,
    image_inputs,
    image_set,
    images_line,
    in_batches,
    where_heatmaps_point,
    write_verdicts,
)
from shopfloor.vision.faces import ImageFaces
from shopfloor.vision.networks import AnomalyNet, Lite0Features
from shopfloor.watch.images import image_statistics
from shopfloor.watch.profile import ModelView, build_profile


class AnomalyModel(ImageFaces, Estimator):
    """Good-only inspection: image score and pixel heatmap, 0..1 with the decision at 0.5."""

    task_name = "anomaly"
    title = "anomaly detection"
    described_as = "an anomaly detector"
    edge_hooks = "shopfloor.tasks.anomaly.edge"  # int8 export, robustness report
    onnx_outputs = ("score", "heatmap")  # the exported graph's outputs, as estimator_module() returns them
    onnx_notes = {"threshold": "scores and heatmaps are 0..1 with the decision at 0.5",
                  "memory": "memory grows with the batch (every patch against the bank): feed a few images per call"}

    def __init__(self, *, image_size: int = 256, blocks: tuple[int, ...] = (3, 10), bank_size: int = 5_000,
                 candidates: int = 200_000, pooling: int = 3, sigma: float = 8.0, even_lighting: bool = True,
                 tile: int | None = None, keep_aspect: bool = True, false_alarm_rate: float = 0.05,
                 calibration_fraction: float = 0.2, seed: int = 0, progress: bool = True):
        self.image_size = image_size
        self.blocks = blocks
        self.bank_size = bank_size
        self.candidates = candidates
        self.pooling = pooling
        self.sigma = sigma
        self.even_lighting = even_lighting
        self.tile = tile
        self.keep_aspect = keep_aspect
        self.false_alarm_rate = false_alarm_rate
        self.calibration_fraction = calibration_fraction
        self.seed = seed
        self.progress = progress

    # -- fitting ----------------------------------------------------------------------
    def fit(self, data, validation=None) -> AnomalyModel:
        from shopfloor.vision.efficientnet import pretrained_lite0
        from shopfloor.vision.folders import read_inspection_folder

        started = time.perf_counter()
        self._check_options()
        good = image_set(data, lambda root: read_inspection_folder(root, "train"))
        if len(good) < 5:
            raise BadTarget(f"{good.root} has {len(good)} good images; an anomaly model needs at least 5 "
                            "(20 or more for a trustworthy threshold)")
        seed_everything(self.seed)
        self.channels_ = image_channels(good)
        self.image_size_ = self.image_size
        self.keep_aspect_ = bool(self.keep_aspect)
        order = np.random.default_rng(self.seed).permutation(len(good))
        n_calibration = max(2, int(round(len(good) * self.calibration_fraction)))
        bank_images, calibration_images = good.subset(np.sort(order[n_calibration:])), good.subset(np.sort(order[:n_calibration]))

        self.net_ = self._build_net(pretrained_lite0())
        self.net_.set_bank(self._bank(bank_images))
        good_scores = self._score(calibration_images)[0]
        self.good_scores_ = np.sort(good_scores).tolist()
        # with n good scores, the k-th largest is exceeded by a new good part with chance k / (n + 1)
        level = min(1.0, math.ceil((len(good_scores) + 1) * (1 - self.false_alarm_rate)) / len(good_scores))
        threshold = float(np.quantile(good_scores, level))
        self.threshold_rule_ = f"good-only: {self.false_alarm_rate:.1%} false alarms on {len(good_scores)} set-aside good images"
        self.validation_metrics_ = None
        if validation is not None:
            threshold = self._threshold_from_validation(validation, threshold)
        spread = float(np.subtract(*np.quantile(good_scores, [0.75, 0.25]))) / 1.349  # a robust std
        self.net_.threshold.fill_(threshold)
        self.net_.spread.fill_(max(spread, 1e-3 * max(abs(threshold), 1e-6)))
        view = self._drift_view(calibration_images)  # set-aside good images: what the line should look like
        self.drift_profile_ = build_profile(view.inputs, view.outputs, features=view.features, seed=self.seed)
        self.fingerprint_ = {"good_images": len(good), "bank_images": len(bank_images),
                             "calibration_images": len(calibration_images), "skipped": len(good.skipped),
                             "source": str(good.root)}
        self.train_seconds_ = time.perf_counter() - started
        return self

    def _check_options(self) -> None:
        if not 64 <= self.image_size <= 1024 or self.image_size % 32:
            raise BadOption(f"image_size {self.image_size} must be a multiple of 32 between 64 and 1024")
        if not self.blocks or any(not 0 <= b <= 15 for b in self.blocks):
            raise BadOption(f"blocks {list(self.blocks)} must be EfficientNet-Lite0 block numbers 0..15")
        if not 0 < self.false_alarm_rate < 0.5:
            raise BadOption("false_alarm_rate must be between 0 and 0.5 (e.g. 0.01 for one false alarm in 100 good parts)")
        if not 0 < self.calibration_fraction < 0.9:
            raise BadOption("calibration_fraction must be between 0 and 0.9")
        if self.tile is not None and self.tile < 32:
            raise BadOption(f"tile {self.tile} is too small: tiles are cut at native resolution, 32 pixels or more")
        if self.bank_size < 100 or self.candidates < self.bank_size:
            raise BadOption("bank_size must be at least 100 patches, and candidates at least bank_size")

    def _build_net(self, lite0=None, bank_size: int | None = None) -> AnomalyNet:
        return AnomalyNet(Lite0Features(tuple(self.blocks), lite0=lite0), bank_size or self.bank_size, self.pooling,
                          self.sigma, self.even_lighting)

    def _bank(self, images) -> torch.Tensor:
        """The memory bank: `bank_size` patches that cover the good patches best (a greedy coreset, as in
        PatchCore), chosen among `candidates` patches drawn evenly from the good images.

        On magnetic tile a 5,000-patch coreset scored image AUROC 0.979 against 0.951 for 20,000 patches
        drawn at random, and the search for the nearest patch costs a quarter as much."""
        rng = torch.Generator().manual_seed(self.seed)
        per_image = max(1, math.ceil(self.candidates / len(images)))
        drawn = []
        with torch.inference_mode(), scoring_on(self.net_) as device:  # --device: the patches are found there
            for batch in self._batches(images):
                patches = self.net_.patches(to_device((batch,), device)[0].float()).cpu()
                flat = patches.permute(0, 2, 3, 1).reshape(len(batch), -1, patches.shape[1])
                for item in flat:
                    drawn.append(item[torch.randperm(len(item), generator=rng)[:per_image]])
        drawn = torch.cat(drawn)
        drawn = drawn[torch.randperm(len(drawn), generator=rng)[:self.candidates]]
        return drawn[greedy_coreset(drawn, self.bank_size, rng)].clone()

    @property
    def _tiled(self) -> bool:
        """Images go through the network as tiles: of `tile` native pixels, or as long as their shorter side."""
        return self.tile is not None or self.keep_aspect_

    def _batches(self, images, batch: int = 8):
        """uint8 image batches, or tile batches of every image in tile mode."""
        if not self._tiled:
            decoded, _ = decode(images, self.channels_, self.image_size_)
            for start in range(0, len(decoded), batch):
                yield decoded[start:start + batch]
            return
        from shopfloor.vision.images import read_tiles

        for path in images.paths:
            tiles, _, _ = read_tiles(path, self.channels_, self.tile, self.image_size_)
            for start in range(0, len(tiles), batch):
                yield torch.from_numpy(np.rint(tiles[start:start + batch]).astype(np.uint8))

    def _threshold_from_validation(self, validation, fallback: float) -> float:
        from shopfloor.vision.folders import read_inspection_folder

        found = image_set(validation, lambda root: read_inspection_folder(root, "test"))
        is_defect = np.array([label != "good" for label in found.labels])
        if not is_defect.any() or is_defect.all():
            self.threshold_rule_ += " (the validation images are all of one kind, so F1 could not choose)"
            return fallback
        raw, _, kept = self._score(found)
        threshold = best_threshold(is_defect[kept], raw)
        self.threshold_rule_ = f"F1-optimal on {len(kept)} validation images ({int(is_defect[kept].sum())} with defects)"
        self.validation_metrics_ = anomaly_metrics(is_defect[kept], raw, raw >= threshold)
        return threshold

    # -- scoring ----------------------------------------------------------------------
    def _score(self, images) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """Raw image scores, raw heatmaps and the indexes of the images that could be read."""
        if not self._tiled:
            decoded, found = decode(images, self.channels_, self.image_size_)
            raw = in_batches(self.net_.distances, decoded)[0]
            position = {path: i for i, path in enumerate(images.paths)}
            kept = np.array([position[path] for path in found.paths])
            return raw.reshape(len(raw), -1).max(1), list(raw), kept
        with scoring_on(self.net_):  # once for every chunk's `in_batches` (each would move the net and its bank)
            return self._score_tiles(images)

    def _score_tiles(self, images, chunk: int = 32):
        """Tiles of `chunk` images at a time go through the network together (each core takes its own tiles), then
        each image's heatmap is stitched: at most 1024 pixels a side for `tile`, else at `view_size`."""
        from shopfloor.errors import ShopfloorError
        from shopfloor.vision.images import read_tiles, stitch, view_size

        scores, maps, kept, skipped = [], [], [], []
        for first in range(0, len(images.paths), chunk):
            read = []
            for i in range(first, min(first + chunk, len(images.paths))):
                try:
                    read.append((i, *read_tiles(images.paths[i], self.channels_, self.tile, self.image_size_)))
                except ShopfloorError as err:
                    skipped.append(f"{images.paths[i].name} ({' '.join(str(err).split())})")
            if not read:
                continue
            tiles = torch.from_numpy(np.rint(np.concatenate([r[1] for r in read])).astype(np.uint8))
            raw = in_batches(self.net_.distances, tiles)[0]
            ends = np.cumsum([len(r[2]) for r in read])
            for (i, _, boxes, (width, height)), end in zip(read, ends, strict=True):
                if self.tile is None:
                    out_size = view_size(width, height, self.image_size_)
                else:
                    scale = min(1.0, 1024 / max(width, height))
                    out_size = (max(1, round(width * scale)), max(1, round(height * scale)))
                heatmap = stitch(raw[end - len(boxes):end], boxes, (width, height), out_size)
                scores.append(float(heatmap.max()))
                maps.append(heatmap)
                kept.append(i)
        if skipped:
            from shopfloor.errors import warn

            warn(f"skipped {len(skipped)} image(s) that could not be cut into tiles: {', '.join(skipped[:10])}"
                 + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""))
        if not kept:
            raise DataFileError(f"none of the images in {images.root} could be decoded")
        return np.asarray(scores), maps, np.asarray(kept)

    def _squash(self, raw: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net_.squash(torch.as_tensor(np.asarray(raw), dtype=torch.float32)).numpy()

    def _verdicts(self, images) -> tuple[pd.DataFrame, list[np.ndarray], object]:
        from shopfloor.vision.folders import list_images

        self._check_fitted()
        found = image_set(images, list_images)
        raw, maps, kept = self._score(found)
        found = found.subset(kept)
        score = self._squash(raw)
        table = pd.DataFrame({"file": [str(p) for p in found.paths], "verdict": np.where(score >= 0.5, "defect", "good"),
                              "score": score, "raw_score": raw})
        return table, [self._squash(m) for m in maps], found

    def predict(self, data) -> pd.DataFrame:
        """One row per image: file, verdict (good/defect), score (0..1, defect at 0.5 and above), raw_score."""
        return self._verdicts(data)[0]

    def heatmaps(self, data) -> tuple[pd.DataFrame, list[np.ndarray]]:
        """The verdicts and, per image, its heatmap (0..1, 0.5 = the decision threshold)."""
        table, maps, _ = self._verdicts(data)
        return table, maps

    def explain(self, data) -> pd.DataFrame:
        """One row per image: the verdict and where its heatmap points (peak value, peak x/y as fractions of width
        and height, share of the image above the threshold: see `vision.estimator.where_heatmaps_point`)."""
        return where_heatmaps_point(*self.heatmaps(data))

    def predict_file(self, source, destination, chunk_rows: int = 0) -> int:
        table, maps, found = self._verdicts(source)
        write_verdicts(table, maps, found, destination)
        return len(table)

    def drift_view(self, data) -> ModelView:
        """Per image: its statistics as the camera gave them (`watch.images`), the score, and the network's
        patch features averaged over the image (at `image_size`, whole, also for a tiling model)."""
        from shopfloor.vision.folders import list_images

        self._check_fitted()
        return self._drift_view(image_set(data, list_images))

    def _drift_view(self, images) -> ModelView:
        decoded, found = decode(images, self.channels_, self.image_size_)
        raw = self._score(found)[0]
        pooled = in_batches(lambda batch: self.net_.patches(batch).mean((2, 3)), decoded, module=self.net_)[0]
        return ModelView(image_statistics(decoded), pd.DataFrame({"score": self._squash(raw)}), features=pooled)

    def estimator_module(self) -> AnomalyNet:
        self._check_fitted()
        return self.net_.eval()

    def evaluate(self, data, truth=None) -> dict[str, float]:
        """On an MVTec-layout folder's `test` part: image_auroc, pixel_auroc, aupro, f1 (+ precision, recall),
        and per defect type `image_auroc/<defect>` and `pixel_auroc/<defect>` (that defect against the good parts)."""
        from shopfloor.vision.folders import read_inspection_folder
        from shopfloor.vision.images import image_size, read_mask

        self.refuse_truth(truth)
        self._check_fitted()
        found = image_set(data, lambda root: read_inspection_folder(root, "test"))
        raw, maps, kept = self._score(found)
        labels = np.array(found.labels)[kept]
        is_defect = labels != "good"
        metrics = anomaly_metrics(is_defect, raw, self._squash(raw) >= 0.5)
        masks: list[np.ndarray | None] = []
        for j, i in enumerate(kept):
            height, width = maps[j].shape
            mask_path = found.masks[i]
            if mask_path is None and is_defect[j]:
                masks.append(None)  # a defect without a mask cannot be scored per pixel
            else:
                masks.append(np.zeros((height, width), bool) if mask_path is None
                             else mask_at(read_mask(mask_path, *image_size(found.paths[i])), width, height))
        metrics.update(pixel_metrics(masks, maps, np.ones(len(kept), bool)))
        metrics["images"] = float(len(kept))
        metrics["defect_masks"] = float(sum(m is not None for m, d in zip(masks, is_defect, strict=True) if d))
        warn_unmasked(found, kept, is_defect)
        for defect in sorted(set(labels) - {"good"}):
            pair = (labels == defect) | ~is_defect
            metrics[f"image_auroc/{defect}"] = anomaly_metrics(is_defect[pair], raw[pair], is_defect[pair])["image_auroc"]
            metrics[f"pixel_auroc/{defect}"] = pixel_metrics(masks, maps, pair, regions=False)["pixel_auroc"]
        self.last_scores_ = {"is_defect": is_defect.tolist(), "score": self._squash(raw).tolist(), "labels": labels.tolist()}
        return metrics

    # -- persistence ------------------------------------------------------------------
    # manifest key -> attribute: the fitted values that are JSON as they are (`_state` converts the rest)
    saved_state = {"channels": "channels_", "threshold_rule": "threshold_rule_", "good_scores": "good_scores_"}

    def _state(self) -> dict:
        """Threshold and spread are read from the network (the manifest shows them); models saved before
        `keep_aspect` lack it, so `_restore` gives it its old default."""
        return {"threshold": float(self.net_.threshold), "spread": float(self.net_.spread),
                "keep_aspect": self.keep_aspect_}

    def _tensors(self) -> dict[str, torch.Tensor]:
        return self._net_tensors()

    # -- the faces: report, ONNX, info -------------------------------------------------------
    def write_report(self, path, data=None, truth=None):
        from shopfloor.tasks.anomaly.report import write_report
        from shopfloor.vision.folders import read_inspection_folder

        self.refuse_truth(truth)
        images = image_set(data, lambda root: read_inspection_folder(root, "test")) if data is not None else None
        return write_report(self, path, images, source=str(data) if data is not None else None)

    @classmethod
    def summary(cls, manifest: dict) -> dict:
        out = super().summary(manifest)
        state, params = manifest.get("state", {}), manifest.get("params", {})
        out["inputs"], out["outputs"] = image_inputs(manifest), {"threshold": state.get("threshold")}
        out["headline"] = manifest["task"]
        shape = ("" if params.get("tile") else
                 ", aspect ratio kept" if state.get("keep_aspect", False) else ", squashed to a square")
        out["lines"] = [f"good-only anomaly detection; threshold {state['threshold']:.4g} ({state['threshold_rule']})",
                        images_line(manifest, shape)]
        return out

    def inspection_answer(self, row: dict) -> dict:
        """The service's answer for one image from its row of `predict`: good or defect, the calibrated score
        (defect from 0.5) and the uncalibrated distance."""
        return {"verdict": row["verdict"], "score": float(row["score"]), "raw_score": float(row["raw_score"])}

    @classmethod
    def check_sizes(cls, manifest: dict, shapes: dict[str, tuple[int, ...]]) -> None:
        try:  # image size, tiles and blocks have no weight to check them against: the bounds that fit() sets
            cls(**manifest["params"])._check_options()
        except BadOption as err:
            raise NotAModel(f"the manifest's params are out of bounds: {err} (the folder was damaged or edited)") from None
        if manifest.get("state", {}).get("channels") not in (1, 3):
            raise NotAModel("the manifest's state.channels must be 1 or 3 (the folder was damaged or edited)")
        sigma = manifest["params"]["sigma"]
        if not isinstance(sigma, int | float) or not 0 < sigma <= 64:
            raise NotAModel(f"the manifest's params.sigma is {sigma!r}; 0 to 64 pixels was expected")
        check_size("params.sigma (its blur kernel)", 2 * max(1, math.ceil(4 * sigma)) + 1, shapes, "net.blur", 0)
        dims = sum(BLOCK_CHANNELS[b] for b in manifest["params"]["blocks"])
        check_size("params.blocks (their features)", dims, shapes, "net.bank", 1)

    def _restore(self, state: dict, tensors: dict[str, torch.Tensor]) -> None:
        self.image_size_ = self.image_size
        # models saved before `keep_aspect` squashed every image into a square: they keep doing so
        self.keep_aspect = self.keep_aspect_ = state.get("keep_aspect", False)
        # a few small images give fewer patches than bank_size: the bank is as large as was saved
        bank_size = len(tensors[self.NET_PREFIX + "bank"])
        self.net_ = self._load_net(lambda: self._build_net(bank_size=bank_size), tensors)

