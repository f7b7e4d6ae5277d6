"""The report page of a defect classifier: metrics, the confusion matrix and example heatmaps.

Built from the kit (`shopfloor.kits.page`) and the image tasks' shared pictures (`vision.report`),
so the page is one self-contained HTML file like every other shopfloor report.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from shopfloor.errors import NotFitted
from shopfloor.kits.page import figure_to_img, metrics_table, new_figure, page_header, plots, section, write_page
from shopfloor.vision.report import examples_section


def write_report(model, path: str | os.PathLike, data=None, truth=None, source: str | None = None) -> Path:
    """Write the HTML report of a fitted DefectModel to `path` and return the path.

    With `data` (labelled images, already read: an ImageSet of one folder per class) the metrics and the
    confusion matrix are computed on it and a few of its images are shown with their heatmaps; `source`
    names it on the page. Without, they come from the validation images kept from training. The labels
    are the folders: a separate `truth` is refused.
    """
    model.refuse_truth(truth)
    if not model.is_fitted:
        raise NotFitted("the report needs a fitted model: call fit() first or load a saved model")
    if data is not None:
        metrics, confusion = model.evaluate(data), model.last_confusion_
        origin = f"{source or data.root} ({int(metrics['images'])} labelled images)"
    else:
        metrics, confusion = dict(model.validation_metrics_), model.validation_confusion_
        origin = f"validation images held out in training ({model.training_log_[-1]['valid_images']})"
    header = page_header("Defect classification report", {
        "Backbone": model.backbone_, "Classes": ", ".join(model.classes_),
        "Image size": f"{model.image_size_} x {model.image_size_}, {'grey' if model.channels_ == 1 else 'colour'}",
        "Training images": f"{model.fingerprint_['images']:,}"}, model.train_seconds_, origin)
    parts = [header, section("Metrics", metrics_table(metrics)),
             section("Confusion matrix", '<div style="max-width: 560px">'
                     + plots([_confusion_figure(np.asarray(confusion), model.classes_)]) + "</div>")]
    if data is not None:
        parts.append(examples_section(model, data, _caption))
    return write_page(path, f"shopfloor report: defect classes ({', '.join(model.classes_)})", "".join(parts))


def _confusion_figure(matrix: np.ndarray, names: list[str]) -> str:
    fig, ax = new_figure(1.6 + 0.6 * len(names), 1.2 + 0.55 * len(names))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return figure_to_img(fig, "rows: true class, columns: predicted class")


def _caption(label: str, row: pd.Series) -> str:
    """The true class, the predicted one and its confidence."""
    return f"{label} -> {row['defect']} ({row['confidence']:.2f})"
