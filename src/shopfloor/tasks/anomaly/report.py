"""The report page of a good-only anomaly detector: metrics, ROC curve, score histogram and example heatmaps.

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
    """Write the HTML report of a fitted AnomalyModel to `path` and return the path.

    With `data` (test images, already read: an ImageSet of an inspection folder's `test` part) the page
    shows the metrics, the ROC curve and score histogram of good and defective parts, and a few heatmaps;
    `source` names it on the page. Without, it shows the scores of the good images set aside in training.
    The labels are the folders: a separate `truth` is refused.
    """
    model.refuse_truth(truth)
    if not model.is_fitted:
        raise NotFitted("the report needs a fitted model: call fit() first or load a saved model")
    shape = (f", tiles of {model.tile} px" if model.tile else ", tiles as long as the shorter side (aspect ratio kept)"
             if model.keep_aspect_ else ", squashed to a square")
    facts = {"Image size": f"{model.image_size} x {model.image_size}{shape}",
             "Good images learned": f"{model.fingerprint_['good_images']:,}",
             "Memory bank": f"{model.net_.bank.shape[0]:,} patches",
             "Threshold": f"{float(model.net_.threshold):.4g} (raw distance; score 0.5): {model.threshold_rule_}"}
    parts = []
    if data is not None:
        metrics = model.evaluate(data)
        origin = f"{source or data.root} ({int(metrics['images'])} test images)"
        scores = model.last_scores_
        figures = [_roc_figure(np.array(scores["is_defect"]), np.array(scores["score"])),
                   _score_histogram(np.array(scores["is_defect"]), np.array(scores["score"]))]
        parts += [section("Metrics", metrics_table(metrics)), section("Scores", plots(figures)),
                  examples_section(model, data, _caption)]
    else:
        origin = "the set-aside good images (no test folder given)"
        good = model._squash(np.asarray(model.good_scores_))
        parts.append(section("Good parts", '<p class="note">Scores of good images set aside in training; the decision '
                             "is at 0.5. Give --data with a test folder for AUROC and heatmaps.</p>"
                             + plots([_score_histogram(np.zeros(len(good), bool), good)])))
    body = page_header("Anomaly detection report", facts, model.train_seconds_, origin) + "".join(parts)
    return write_page(path, "shopfloor report: good-only anomaly detection", body)


def _roc_figure(is_defect: np.ndarray, score: np.ndarray) -> str:
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = new_figure()
    if len(np.unique(is_defect)) == 2:
        fpr, tpr, _ = roc_curve(is_defect, score)
        ax.plot(fpr, tpr, color="#2680c2", label=f"AUROC {roc_auc_score(is_defect, score):.3f}")
        ax.legend(loc="lower right")
    ax.plot([0, 1], [0, 1], color="#bcccdc", linestyle="--")
    ax.set_xlabel("good parts flagged (false-alarm rate)")
    ax.set_ylabel("defective parts flagged (recall)")
    return figure_to_img(fig, "ROC curve of the image scores")


def _score_histogram(is_defect: np.ndarray, score: np.ndarray) -> str:
    fig, ax = new_figure()
    bins = np.linspace(0, 1, 41)
    ax.hist(score[~is_defect], bins=bins, alpha=.7, color="#2680c2", label="good")
    if is_defect.any():
        ax.hist(score[is_defect], bins=bins, alpha=.7, color="#d64545", label="defect")
    ax.axvline(0.5, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel("score (decision at 0.5)")
    ax.set_ylabel("images")
    ax.legend()
    return figure_to_img(fig, "score distribution")


def _caption(label: str, row: pd.Series) -> str:
    """The true label, the score and the verdict."""
    return f"{label}: score {row['score']:.2f} ({row['verdict']})"
