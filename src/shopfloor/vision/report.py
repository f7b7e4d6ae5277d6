"""Pictures and report pages for inspection models: heatmap overlays, confusion matrix, ROC curve.

`write_overlay` is what `shopfloor predict` writes for every image: the part in grey with the
heatmap in colour on top (blue = looks normal, red = the evidence), at most 512 pixels a side.
The report page reuses `report`'s helpers (CSS, inline figures, tables, the atomic write).
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np

from shopfloor.errors import NotFitted
from shopfloor.tasks.tabular.report import (
    _e,
    _figure_to_img,
    _metrics_table,
    _new_figure,
    _page_header,
    _plots,
    _section,
    _write_page,
)

OVERLAY_SIDE = 512
EXAMPLES = 8


def overlay_image(image_path, heatmap: np.ndarray, caption: str = ""):
    """A PIL image: the picture in grey, the heatmap (0..1) as a colour layer where it is high."""
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    from shopfloor.vision.images import read_image

    height, width = heatmap.shape
    scale = min(1.0, OVERLAY_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # square heatmaps are the model's view of a resized image; tiled ones keep the image's shape
    grey = read_image(image_path, 1, size[0] if size[0] == size[1] else None)
    picture = Image.fromarray(np.clip(grey[0], 0, 255).astype(np.uint8)).resize(size, Image.BILINEAR).convert("RGB")
    heat = Image.fromarray((np.clip(heatmap, 0, 1) * 255).astype(np.uint8)).resize(size, Image.BILINEAR)
    level = np.asarray(heat, dtype=np.float32) / 255
    colour = (colormaps["jet"](level)[..., :3] * 255).astype(np.float32)
    alpha = (0.15 + 0.5 * level)[..., None]  # the part stays visible where nothing is found
    blended = (np.asarray(picture, dtype=np.float32) * (1 - alpha) + colour * alpha).astype(np.uint8)
    result = Image.fromarray(blended)
    if caption:
        draw = ImageDraw.Draw(result)
        draw.rectangle([0, 0, min(size[0], 8 + 7 * len(caption)), 16], fill=(0, 0, 0))
        draw.text((4, 2), caption, fill=(255, 255, 255))
    return result


def write_overlay(path: str | os.PathLike, image_path, heatmap: np.ndarray, caption: str = "") -> Path:
    path = Path(path)
    overlay_image(image_path, heatmap, caption).save(path, format="PNG")
    return path


def write_inspection_report(model, path: str | os.PathLike, data=None, source: str | None = None) -> Path:
    """The report page of a DefectModel or AnomalyModel: metrics on `data` (a labelled folder) when
    given, else the validation kept from training; the confusion matrix or ROC curve; example heatmaps."""
    if not model.is_fitted:
        raise NotFitted("the report needs a fitted model: call fit() first or load a saved model")
    if model.task_name == "defects":
        body = _defect_sections(model, data, source)
        title = f"shopfloor report: defect classes ({', '.join(model.classes_)})"
    else:
        body = _anomaly_sections(model, data, source)
        title = "shopfloor report: good-only anomaly detection"
    return _write_page(path, title, body)


# -- defect classification ------------------------------------------------------------------
def _defect_sections(model, data, source) -> str:
    if data is not None:
        metrics, confusion = model.evaluate(data), model.last_confusion_
        origin = f"{source or data} ({int(metrics['images'])} labelled images)"
    else:
        metrics, confusion = dict(model.validation_metrics_), model.validation_confusion_
        origin = f"validation images held out in training ({model.training_log_[-1]['valid_images']})"
    header = _page_header("Defect classification report", {
        "Backbone": model.backbone_, "Classes": ", ".join(model.classes_),
        "Image size": f"{model.image_size_} x {model.image_size_}, {'grey' if model.channels_ == 1 else 'colour'}",
        "Training images": f"{model.fingerprint_['images']:,}"}, model.train_seconds_, origin)
    parts = [header, _section("Metrics", _metrics_table(metrics)),
             _section("Confusion matrix", '<div style="max-width: 560px">'
                      + _plots([_confusion_figure(np.asarray(confusion), model.classes_)]) + "</div>")]
    if data is not None:
        parts.append(_examples_section(model, data))
    return "".join(parts)


def _confusion_figure(matrix: np.ndarray, names: list[str]) -> str:
    fig, ax = _new_figure(1.6 + 0.6 * len(names), 1.2 + 0.55 * len(names))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return _figure_to_img(fig, "rows: true class, columns: predicted class")


# -- anomaly detection ----------------------------------------------------------------------
def _anomaly_sections(model, data, source) -> str:
    shape = (f", tiles of {model.tile} px" if model.tile else ", tiles as long as the shorter side (aspect ratio kept)"
             if model.keep_aspect_ else ", squashed to a square")
    facts = {"Image size": f"{model.image_size} x {model.image_size}{shape}",
             "Good images learned": f"{model.fingerprint_['good_images']:,}",
             "Memory bank": f"{model.net_.bank.shape[0]:,} patches",
             "Threshold": f"{float(model.net_.threshold):.4g} (raw distance; score 0.5): {model.threshold_rule_}"}
    parts = []
    if data is not None:
        metrics = model.evaluate(data)
        origin = f"{source or data} ({int(metrics['images'])} test images)"
        scores = model.last_scores_
        figures = [_roc_figure(np.array(scores["is_defect"]), np.array(scores["score"])),
                   _score_histogram(np.array(scores["is_defect"]), np.array(scores["score"]))]
        parts += [_section("Metrics", _metrics_table(metrics)), _section("Scores", _plots(figures)),
                  _examples_section(model, data)]
    else:
        origin = "the set-aside good images (no test folder given)"
        good = model._squash(np.asarray(model.good_scores_))
        parts.append(_section("Good parts", '<p class="note">Scores of good images set aside in training; the decision '
                              "is at 0.5. Give --data with a test folder for AUROC and heatmaps.</p>"
                              + _plots([_score_histogram(np.zeros(len(good), bool), good)])))
    return _page_header("Anomaly detection report", facts, model.train_seconds_, origin) + "".join(parts)


def _roc_figure(is_defect: np.ndarray, score: np.ndarray) -> str:
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = _new_figure()
    if len(np.unique(is_defect)) == 2:
        fpr, tpr, _ = roc_curve(is_defect, score)
        ax.plot(fpr, tpr, color="#2680c2", label=f"AUROC {roc_auc_score(is_defect, score):.3f}")
        ax.legend(loc="lower right")
    ax.plot([0, 1], [0, 1], color="#bcccdc", linestyle="--")
    ax.set_xlabel("good parts flagged (false-alarm rate)")
    ax.set_ylabel("defective parts flagged (recall)")
    return _figure_to_img(fig, "ROC curve of the image scores")


def _score_histogram(is_defect: np.ndarray, score: np.ndarray) -> str:
    fig, ax = _new_figure()
    bins = np.linspace(0, 1, 41)
    ax.hist(score[~is_defect], bins=bins, alpha=.7, color="#2680c2", label="good")
    if is_defect.any():
        ax.hist(score[is_defect], bins=bins, alpha=.7, color="#d64545", label="defect")
    ax.axvline(0.5, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel("score (decision at 0.5)")
    ax.set_ylabel("images")
    ax.legend()
    return _figure_to_img(fig, "score distribution")


# -- examples -------------------------------------------------------------------------------
def _examples_section(model, data) -> str:
    """Heatmaps of a few images: for anomaly models the highest-scoring defects and good parts."""
    from shopfloor.vision.folders import read_class_folders, read_inspection_folder

    found = read_class_folders(data) if model.task_name == "defects" else read_inspection_folder(data, "test")
    rng = np.random.default_rng(0)
    picks = [int(i) for i in rng.permutation(len(found))[:EXAMPLES]]
    subset = found.subset(sorted(picks))
    table, maps = model.heatmaps(subset)
    images = []
    for i in range(len(table)):
        row = table.iloc[i]
        caption = (f"{subset.labels[i]} -> {row['defect']} ({row['confidence']:.2f})" if model.task_name == "defects"
                   else f"{subset.labels[i]}: score {row['score']:.2f} ({row['verdict']})")
        buffer = io.BytesIO()
        overlay_image(row["file"], maps[i]).save(buffer, format="PNG")
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        images.append(f'<figure><img src="data:image/png;base64,{encoded}" alt="{_e(caption)}">'
                      f"<figcaption>{_e(caption)}</figcaption></figure>")
    note = '<p class="note">Red marks where the evidence lies: the predicted class\'s activation for a classifier, ' \
           "distance from every good patch for an anomaly model (its colour scale puts the threshold mid-way).</p>"
    return _section(f"Example heatmaps ({len(images)} random images)", note + _plots(images))
