"""The report page of a table model: how good it is and why, on new labelled rows or its out-of-fold validation.

The page is built from the kit (`shopfloor.kits.page`): one self-contained HTML file like every
other shopfloor report. What is the table task's own lives here: the decisions of a yes/no or
multiclass model (confusion matrix, precision-recall, calibration), the residuals of a regression,
and the warning when the rows given are the ones the model was trained on.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from shopfloor.data.targets import encode_labels
from shopfloor.errors import NotFitted
from shopfloor.kits.page import (
    escape,
    figure_to_img,
    importance_section,
    label,
    metrics_table,
    new_figure,
    page_header,
    plots,
    section,
    training_log_section,
    write_page,
)
from shopfloor.metrics import calibration_curve

OUT_OF_FOLD = "out-of-fold validation (rows no network trained on)"
SCATTER_ROWS = 20_000
KIND_WORDS = {"binary": "yes/no classification", "multiclass": "multiclass classification",
              "regression": "regression (predicting a number)"}
IMPORTANCE_NOTE = ("Integrated-gradients attributions on a sample of training rows, averaged in absolute value: "
                   "larger bars move the prediction more.")
TRAINING_NOTE = ('<p class="note">One network per bag, each trained on the other bags and stopped early on its own; '
                 "valid_score is its best stopping score on the rows it did not train on (lower is better): minus the "
                 "average precision for yes/no models, the loss otherwise.</p>")


def write_report(model, path: str | os.PathLike, data: pd.DataFrame | None = None, truth=None,
                 source: str | None = None) -> Path:
    """Write the HTML report of a fitted TabularModel to `path` and return the path.

    With `data` (labelled rows, already read) the metrics and plots are computed on it, and `source`
    names it on the page; without, they come from the model's stored out-of-fold validation. The
    labels are columns of `data`: a separate `truth` is refused.
    """
    model.refuse_truth(truth)
    if getattr(model, "kind_", None) is None:
        raise NotFitted("the report needs a fitted model: call fit() first or load a saved model")
    metrics, outputs, labels, origin, notes = _evidence(model, data, source)
    where = f"Computed on {origin}." + (" Metrics without a target name are averages over the targets."
                                        if len(model.targets) > 1 else "")
    if model.kind_ == "regression":
        results = _regression_sections(model, outputs, labels)
    else:
        results = _classification_sections(model, outputs, labels)
    body = "".join([
        _header(model, origin),
        section("Metrics", f'<p class="note">{escape(where)}</p>'
                + "".join(f'<p class="warning">{escape(n)}</p>' for n in notes) + metrics_table(metrics)),
        results,
        importance_section(model.importance_, "Feature importance", "features", IMPORTANCE_NOTE),
        training_log_section(model.training_log_, TRAINING_NOTE),
    ])
    return write_page(path, f"shopfloor report: {', '.join(map(str, model.targets))}", body)


# -- what the page is about -----------------------------------------------------------------
def _evidence(model, data: pd.DataFrame | None, source: str | None):
    """Metrics, model outputs, true labels, where they come from, and warnings for the reader."""
    notes = []
    if data is None:
        outputs, truth = model.validation_outputs_.numpy(), model.validation_targets_.numpy()
        rows = model.fingerprint_["rows"]
        if len(outputs) < rows:
            notes.append(f"The plots show a random sample of {len(outputs):,} of the {rows:,} out-of-fold rows; "
                         "the metrics use all of them.")
        metrics = {k: v for k, v in model.validation_metrics_.items() if k != "split"}
        return metrics, outputs, truth, f"{OUT_OF_FOLD}, held out as {_split_words(model)}", notes
    metrics = model.evaluate(data)  # raises a clear error when target columns are missing
    frame = data.loc[data[model.targets].notna().all(axis=1)]
    truth = encode_labels(frame, model.targets, model.kind_, model.classes_)
    if model.kind_ == "regression":
        predicted = model.predict(frame)
        outputs = np.stack([predicted[f"{t} predicted"].to_numpy(dtype=float) for t in model.targets], axis=1)
    else:
        outputs = model.predict_proba(frame)
    if _looks_like_training_table(model, data):
        notes.append("This looks like the table the model was trained on, so these numbers are optimistic; "
                     "write the report without data to see the out-of-fold validation.")
    return metrics, outputs, truth, f"{source or 'the table given'} ({len(frame):,} labelled rows)", notes


def _looks_like_training_table(model, data: pd.DataFrame) -> bool:
    # same digest as the model's data fingerprint; if that scheme changes, the warning just stays away
    fingerprint = getattr(model, "fingerprint_", {})
    if len(data) != fingerprint.get("rows") or list(map(str, data.columns)) != fingerprint.get("columns"):
        return False
    hashed = pd.util.hash_pandas_object(data, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16] == fingerprint.get("sha256")


def _header(model, origin: str) -> str:
    return page_header("Model report", {
        "Task": KIND_WORDS.get(model.kind_, model.kind_),
        "Target" + ("s" if len(model.targets) > 1 else ""): ", ".join(map(str, model.targets)),
        "Training rows": f"{model.fingerprint_['rows']:,}",
        "Validation split": _split_words(model),
    }, model.train_seconds_, origin)


def _split_words(model) -> str:
    """How the out-of-fold rows were held out: time order and whole runs tell a different story than random rows."""
    split = getattr(model, "split_", None)
    return split.words() if split is not None else "random rows"


# -- classification -------------------------------------------------------------------------
def _classification_sections(model, outputs: np.ndarray, truth: np.ndarray) -> str:
    if model.kind_ == "multiclass":
        target, names = model.targets[0], [str(c) for c in model.classes_[0]]
        truth, decision = truth.astype(int), outputs.argmax(1)
        curves = [(names[k], truth == k, outputs[:, k], decision == k) for k in range(len(names))]
        figures = [_confusion_figure(truth, decision, names),
                 _pr_figure(curves),
                 _calibration_figure(truth == decision, outputs.max(1), "probability of the predicted class")]
        words = f'<p class="decision">Each row gets the <b>{escape(target)}</b> class with the highest probability.</p>'
        return section("Decisions", words + plots(figures))
    parts = []
    labels = zip(model.targets, model.classes_, model.thresholds_, strict=True)
    for j, (target, classes, threshold) in enumerate(labels):
        y, proba = truth[:, j].astype(int), outputs[:, j]
        decision = (proba >= threshold).astype(int)
        negative, positive = str(classes[0]), str(classes[1])
        words = (f'<p class="decision"><b>{escape(target)}</b>: a row is flagged as <b>{escape(positive)}</b> when its '
                 f"probability of {escape(positive)} is at least <b>{threshold:.3g}</b>; otherwise it is "
                 f"{escape(negative)}.</p>")
        figures = [_confusion_figure(y, decision, [negative, positive]),
                 _pr_figure([(f"{target} = {positive}", y == 1, proba, decision == 1)]),
                 _calibration_figure(y, proba, f"predicted probability of {positive}")]
        heading = f"<h3>{escape(target)}</h3>" if len(model.targets) > 1 else ""
        parts.append(heading + words + plots(figures))
    return section("Decisions", "".join(parts))


def _confusion_figure(truth: np.ndarray, decision: np.ndarray, names: list[str]) -> str:
    k = len(names)
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (truth, decision), 1)
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, ax = new_figure(4.0, 3.3 if k <= 4 else 4.4)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)  # coloured by share of the row, so rare rows show too
    size = 10 if k <= 4 else max(5, 10 - k // 2)
    for (i, j), n in np.ndenumerate(counts):
        text = f"{n:,}\n{shares[i, j]:.0%}" if k <= 6 else f"{n:,}"
        ax.text(j, i, text, ha="center", va="center", fontsize=size,
                color="white" if shares[i, j] > 0.5 else "#1f2933")
    labels = [label(n) for n in names]
    ax.set_xticks(range(k), labels, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center", fontsize=size)
    ax.set_yticks(range(k), labels, fontsize=size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("Confusion matrix")
    return figure_to_img(fig, "Rows by actual (down) and predicted (across) outcome, with the share of each "
                               "actual row; the diagonal is right.")


def _pr_figure(curves: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> str:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig, ax = new_figure()
    for name, y, proba, decision in curves:
        if y.sum() == 0:
            continue  # no real cases of this outcome in the data: precision-recall is undefined
        precision, recall, _ = precision_recall_curve(y, proba)
        legend = f"{label(name)} (PR-AUC {average_precision_score(y, proba):.3f})"
        line, = ax.plot(recall, precision, lw=1.6, label=legend, drawstyle="steps-post")
        flagged = decision.sum()
        point_precision = (y & decision).sum() / flagged if flagged else 1.0
        ax.plot((y & decision).sum() / y.sum(), point_precision, "o", ms=8, color=line.get_color(),
                markeredgecolor="black", zorder=5)
    ax.plot([], [], "o", color="grey", markeredgecolor="black", label="operating point (the model's decisions)")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.04), xlabel="recall (share of real cases flagged)",
           ylabel="precision (share of flags that are real)", title="Precision and recall")
    ax.legend(fontsize=7 if len(curves) > 4 else 8, loc="lower left")
    ax.grid(alpha=.3)
    return figure_to_img(fig, "Every threshold traces the curve; the dot is where the model's decisions sit.")


def _calibration_figure(y: np.ndarray, proba: np.ndarray, xlabel: str) -> str:
    # equal-width bins: with rare failures equal-count groups would all sit near 0
    curve = calibration_curve(np.asarray(y, dtype=float), proba, bins=10, strategy="uniform")
    fig, ax = new_figure()
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfectly calibrated")
    ax.plot(curve["predicted"], curve["observed"], "-", color="#2680c2", lw=1)
    sizes = 12 + 60 * np.sqrt(np.asarray(curve["count"]) / max(max(curve["count"], default=1), 1))
    ax.scatter(curve["predicted"], curve["observed"], s=sizes, color="#2680c2", label="model (size: rows)", zorder=3)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=xlabel, ylabel="observed share", title="Calibration")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=.3)
    counts = ", ".join(f"{c:,}" for c in curve["count"])
    return figure_to_img(fig, f"Rows grouped by predicted probability in steps of 0.1 (rows per group: {counts}); "
                               "points on the diagonal mean the probabilities can be taken at face value.")



# -- regression -----------------------------------------------------------------------------
def _regression_sections(model, outputs: np.ndarray, truth: np.ndarray) -> str:
    coverage = getattr(model, "interval_coverage", None)
    parts = []
    for j, target in enumerate(model.targets):
        actual, predicted = truth[:, j], outputs[:, j]
        residual = actual - predicted
        halfwidth = float(model.interval_halfwidth_[j])
        words = f"<b>{escape(target)}</b>: the prediction interval is the predicted value ± <b>{halfwidth:.4g}</b>"
        words += f", set to hold {coverage:.0%} of out-of-fold rows." if coverage else "."
        figures = [_scatter_figure(actual, predicted, "actual", "predicted", "Predicted vs actual", diagonal=True),
                 _scatter_figure(predicted, residual, "predicted", "residual (actual - predicted)",
                                 "Residuals vs predicted", band=halfwidth),
                 _histogram_figure(residual, halfwidth)]
        heading = f"<h3>{escape(target)}</h3>" if len(model.targets) > 1 else ""
        parts.append(heading + f'<p class="decision">{words}</p>' + plots(figures))
    return section("Predictions", "".join(parts))


def _scatter_figure(x: np.ndarray, y: np.ndarray, xlabel: str, ylabel: str, title: str,
                    diagonal: bool = False, band: float | None = None) -> str:
    if len(x) > SCATTER_ROWS:  # a million dots draw slowly and show no more than this many
        keep = np.random.default_rng(0).choice(len(x), SCATTER_ROWS, replace=False)
        x, y = x[keep], y[keep]
    fig, ax = new_figure()
    ax.scatter(x, y, s=6, alpha=.35, color="#2680c2", linewidths=0)
    if diagonal:
        low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        ax.plot([low, high], [low, high], "--", color="#d64545", lw=1.2, label="perfect prediction")
        ax.legend(fontsize=8, loc="upper left")
    if band is not None:
        ax.axhline(0, color="#d64545", lw=1.2)
        for edge in (-band, band):
            ax.axhline(edge, color="grey", ls="--", lw=1)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=.3)
    caption = "Points on the red line are predicted exactly." if diagonal else \
        "Dashed lines: the prediction interval. A pattern here means the model is biased somewhere."
    return figure_to_img(fig, caption)


def _histogram_figure(residual: np.ndarray, halfwidth: float) -> str:
    fig, ax = new_figure()
    ax.hist(residual, bins=min(50, max(10, len(residual) // 20)), color="#2680c2", alpha=.8)
    for edge in (-halfwidth, halfwidth):
        ax.axvline(edge, color="grey", ls="--", lw=1)
    ax.set(xlabel="residual (actual - predicted)", ylabel="rows", title="Residuals")
    ax.grid(alpha=.3)
    return figure_to_img(fig, "How far predictions miss; dashed lines mark the prediction interval.")
