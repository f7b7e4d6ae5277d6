"""A model report: one self-contained HTML page that shows how good a trained model is and why.

Everything is inline (CSS, plots as base64 PNG), so the page can be mailed, attached to a
ticket or opened on a shop-floor PC with no network. Plots are drawn on bare matplotlib
Figures with the Agg canvas, never through pyplot: writing a report neither switches the
caller's backend (a notebook keeps its inline plots) nor leaks figures in a long-running server.

Length: the page kit (layout, tables, figures) and the tabular page share their helpers here; issue 15
separates the kit from the pages, and each task's page moves to its package.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

import shopfloor
from shopfloor.data.targets import encode_labels
from shopfloor.errors import NotFitted
from shopfloor.metrics import calibration_curve

OUT_OF_FOLD = "out-of-fold validation (rows no network trained on)"
TOP_FEATURES = 30
SCATTER_ROWS = 20_000
KIND_WORDS = {"binary": "yes/no classification", "multiclass": "multiclass classification",
              "regression": "regression (predicting a number)"}
METRIC_WORDS = {
    "accuracy": "share of rows decided correctly; misleading when failures are rare",
    "f1": "balance of precision and recall (harmonic mean)",
    "f1_macro": "F1 averaged over classes, each class counting equally",
    "precision": "of the rows flagged, the share that really were",
    "recall": "of the real cases, the share that was flagged",
    "roc_auc": "how well scores rank real cases above the rest; 0.5 is chance",
    "pr_auc": "average precision over all thresholds; chance is the share of real cases",
    "mcc": "Matthews correlation, from -1 to 1 with 0 for chance; fair when failures are rare",
    "rmse": "root mean squared error, in target units",
    "mae": "mean absolute error, in target units",
    "r2": "share of the variance explained: 1 is perfect, 0 is as good as the mean",
    "interval_coverage": "share of rows whose true value lies inside the prediction interval",
    "image_auroc": "how well image scores rank defective parts above good ones; 0.5 is chance",
    "pixel_auroc": "how well heatmaps rank defect pixels above good pixels, over every pixel",
    "aupro": "per-region overlap up to 30 % false-positive pixels: every defect region counts the same",
    "false_alarm_rate": "share of good parts flagged as defective",
    "images": "images scored",
    "defect_masks": "defect images with a mask: pixel_auroc and aupro are measured on these",
}
CSS = """
body { margin: 0; background: #f4f5f7; color: #1f2933; line-height: 1.5;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; }
header { background: #243b53; color: #fff; padding: 20px 28px; border-radius: 8px; }
header h1 { margin: 0 0 12px; font-size: 24px; font-weight: 600; }
header dl { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 10px 24px; margin: 0; }
header dt { font-size: 12px; text-transform: uppercase; letter-spacing: .05em; color: #bcccdc; }
header dd { margin: 0; font-weight: 500; overflow-wrap: anywhere; }
section { background: #fff; border-radius: 8px; padding: 18px 24px; margin-top: 20px;
          box-shadow: 0 1px 3px rgba(0, 0, 0, .08); }
h2 { margin: 0 0 10px; font-size: 19px; color: #243b53; } h3 { margin: 18px 0 6px; font-size: 16px; color: #334e68; }
p { margin: 6px 0; } .note { color: #627d98; font-size: 13px; }
.warning { background: #fff3c4; border-left: 4px solid #f0b429; padding: 8px 12px; }
.decision { background: #e8f4fd; border-left: 4px solid #2680c2; padding: 8px 12px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
th, td { padding: 5px 12px; text-align: left; border-bottom: 1px solid #e4e7eb; vertical-align: top; }
th { background: #f0f4f8; font-weight: 600; }
td.number { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; } td.words { color: #627d98; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 16px; margin-top: 8px; }
figure { margin: 0; border: 1px solid #e4e7eb; border-radius: 6px; padding: 8px; background: #fff; }
figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: 13px; color: #627d98; margin-top: 4px; }
"""


def write_report(model, path: str | os.PathLike, data: pd.DataFrame | None = None,
                 source: str | None = None, rul=None) -> Path:
    """Write an HTML report of a fitted TabularModel to `path` and return the path.

    With `data` (labelled rows) the metrics and plots are computed on it, and `source` names
    it on the page; without, they come from the model's stored out-of-fold validation.
    A RULModel gets its own page (`report_rul`): `data` are test run histories, `rul` their true RUL.
    """
    if getattr(model, "task_name", "") == "rul":
        from shopfloor.tasks.rul.report import write_rul_report

        return write_rul_report(model, path, data, rul, source)
    if getattr(model, "task_name", "") in ("defects", "anomaly"):
        from shopfloor.vision.report import write_inspection_report

        return write_inspection_report(model, path, data, source)
    if getattr(model, "task_name", "") == "optimize":
        from shopfloor.tasks.optimize.report import write_optimize_report

        return write_optimize_report(model, path)
    if getattr(model, "kind_", None) is None:
        raise NotFitted("the report needs a fitted model: call fit() first or load a saved model")
    metrics, outputs, truth, origin, notes = _evidence(model, data, source)
    where = f"Computed on {origin}." + (" Metrics without a target name are averages over the targets."
                                        if len(model.targets) > 1 else "")
    if model.kind_ == "regression":
        results = _regression_sections(model, outputs, truth)
    else:
        results = _classification_sections(model, outputs, truth)
    body = "".join([
        _header(model, origin),
        _section("Metrics", f'<p class="note">{_e(where)}</p>'
                 + "".join(f'<p class="warning">{_e(n)}</p>' for n in notes) + _metrics_table(metrics)),
        results,
        _importance_section(model.importance_),
        _training_log_section(model.training_log_),
    ])
    return _write_page(path, f"shopfloor report: {', '.join(map(str, model.targets))}", body)


def _write_page(path: str | os.PathLike, title: str, body: str) -> Path:
    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n"
            f"</body>\n</html>\n")
    from shopfloor.artifacts import atomic_write

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, page)


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
    return _page_header("Model report", {
        "Task": KIND_WORDS.get(model.kind_, model.kind_),
        "Target" + ("s" if len(model.targets) > 1 else ""): ", ".join(map(str, model.targets)),
        "Training rows": f"{model.fingerprint_['rows']:,}",
        "Validation split": _split_words(model),
    }, model.train_seconds_, origin)


def _split_words(model) -> str:
    """How the out-of-fold rows were held out: time order and whole runs tell a different story than random rows."""
    split = getattr(model, "split_", None)
    return split.words() if split is not None else "random rows"


def _page_header(title: str, facts: dict, seconds: float, origin: str) -> str:
    """The page's title and a list of facts about the model, ending with when and how it was made."""
    facts = {
        **facts,
        "Training time": f"{seconds:.1f} s" if seconds < 120 else f"{seconds // 60:.0f} min {seconds % 60:.0f} s",
        "Metrics from": origin,
        "shopfloor version": shopfloor.__version__,
        "Written": datetime.now().strftime("%Y-%m-%d %H:%M"),
    }
    items = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in facts.items())
    return f"<header><h1>{_e(title)}</h1><dl>{items}</dl></header>\n"


def _metrics_table(metrics: dict[str, float]) -> str:
    rows = [[_e(name), _number(value), _e(METRIC_WORDS.get(name.rsplit(" ", 1)[-1], ""))]
            for name, value in metrics.items()]
    return _table(["metric", "value", "meaning"], rows, ["", "number", "words"])


# -- classification -------------------------------------------------------------------------
def _classification_sections(model, outputs: np.ndarray, truth: np.ndarray) -> str:
    if model.kind_ == "multiclass":
        target, names = model.targets[0], [str(c) for c in model.classes_[0]]
        truth, decision = truth.astype(int), outputs.argmax(1)
        curves = [(names[k], truth == k, outputs[:, k], decision == k) for k in range(len(names))]
        plots = [_confusion_figure(truth, decision, names),
                 _pr_figure(curves),
                 _calibration_figure(truth == decision, outputs.max(1), "probability of the predicted class")]
        words = f'<p class="decision">Each row gets the <b>{_e(target)}</b> class with the highest probability.</p>'
        return _section("Decisions", words + _plots(plots))
    parts = []
    labels = zip(model.targets, model.classes_, model.thresholds_, strict=True)
    for j, (target, classes, threshold) in enumerate(labels):
        y, proba = truth[:, j].astype(int), outputs[:, j]
        decision = (proba >= threshold).astype(int)
        negative, positive = str(classes[0]), str(classes[1])
        words = (f'<p class="decision"><b>{_e(target)}</b>: a row is flagged as <b>{_e(positive)}</b> when its '
                 f"probability of {_e(positive)} is at least <b>{threshold:.3g}</b>; otherwise it is "
                 f"{_e(negative)}.</p>")
        plots = [_confusion_figure(y, decision, [negative, positive]),
                 _pr_figure([(f"{target} = {positive}", y == 1, proba, decision == 1)]),
                 _calibration_figure(y, proba, f"predicted probability of {positive}")]
        heading = f"<h3>{_e(target)}</h3>" if len(model.targets) > 1 else ""
        parts.append(heading + words + _plots(plots))
    return _section("Decisions", "".join(parts))


def _confusion_figure(truth: np.ndarray, decision: np.ndarray, names: list[str]) -> str:
    k = len(names)
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (truth, decision), 1)
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, ax = _new_figure(4.0, 3.3 if k <= 4 else 4.4)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)  # coloured by share of the row, so rare rows show too
    size = 10 if k <= 4 else max(5, 10 - k // 2)
    for (i, j), n in np.ndenumerate(counts):
        text = f"{n:,}\n{shares[i, j]:.0%}" if k <= 6 else f"{n:,}"
        ax.text(j, i, text, ha="center", va="center", fontsize=size,
                color="white" if shares[i, j] > 0.5 else "#1f2933")
    labels = [_label(n) for n in names]
    ax.set_xticks(range(k), labels, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center", fontsize=size)
    ax.set_yticks(range(k), labels, fontsize=size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("Confusion matrix")
    return _figure_to_img(fig, "Rows by actual (down) and predicted (across) outcome, with the share of each "
                               "actual row; the diagonal is right.")


def _pr_figure(curves: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> str:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig, ax = _new_figure()
    for name, y, proba, decision in curves:
        if y.sum() == 0:
            continue  # no real cases of this outcome in the data: precision-recall is undefined
        precision, recall, _ = precision_recall_curve(y, proba)
        label = f"{_label(name)} (PR-AUC {average_precision_score(y, proba):.3f})"
        line, = ax.plot(recall, precision, lw=1.6, label=label, drawstyle="steps-post")
        flagged = decision.sum()
        point_precision = (y & decision).sum() / flagged if flagged else 1.0
        ax.plot((y & decision).sum() / y.sum(), point_precision, "o", ms=8, color=line.get_color(),
                markeredgecolor="black", zorder=5)
    ax.plot([], [], "o", color="grey", markeredgecolor="black", label="operating point (the model's decisions)")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.04), xlabel="recall (share of real cases flagged)",
           ylabel="precision (share of flags that are real)", title="Precision and recall")
    ax.legend(fontsize=7 if len(curves) > 4 else 8, loc="lower left")
    ax.grid(alpha=.3)
    return _figure_to_img(fig, "Every threshold traces the curve; the dot is where the model's decisions sit.")


def _calibration_figure(y: np.ndarray, proba: np.ndarray, xlabel: str) -> str:
    # equal-width bins: with rare failures equal-count groups would all sit near 0
    curve = calibration_curve(np.asarray(y, dtype=float), proba, bins=10, strategy="uniform")
    fig, ax = _new_figure()
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfectly calibrated")
    ax.plot(curve["predicted"], curve["observed"], "-", color="#2680c2", lw=1)
    sizes = 12 + 60 * np.sqrt(np.asarray(curve["count"]) / max(max(curve["count"], default=1), 1))
    ax.scatter(curve["predicted"], curve["observed"], s=sizes, color="#2680c2", label="model (size: rows)", zorder=3)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=xlabel, ylabel="observed share", title="Calibration")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=.3)
    counts = ", ".join(f"{c:,}" for c in curve["count"])
    return _figure_to_img(fig, f"Rows grouped by predicted probability in steps of 0.1 (rows per group: {counts}); "
                               "points on the diagonal mean the probabilities can be taken at face value.")



# -- regression -----------------------------------------------------------------------------
def _regression_sections(model, outputs: np.ndarray, truth: np.ndarray) -> str:
    coverage = getattr(model, "interval_coverage", None)
    parts = []
    for j, target in enumerate(model.targets):
        actual, predicted = truth[:, j], outputs[:, j]
        residual = actual - predicted
        halfwidth = float(model.interval_halfwidth_[j])
        words = f"<b>{_e(target)}</b>: the prediction interval is the predicted value ± <b>{halfwidth:.4g}</b>"
        words += f", set to hold {coverage:.0%} of out-of-fold rows." if coverage else "."
        plots = [_scatter_figure(actual, predicted, "actual", "predicted", "Predicted vs actual", diagonal=True),
                 _scatter_figure(predicted, residual, "predicted", "residual (actual - predicted)",
                                 "Residuals vs predicted", band=halfwidth),
                 _histogram_figure(residual, halfwidth)]
        heading = f"<h3>{_e(target)}</h3>" if len(model.targets) > 1 else ""
        parts.append(heading + f'<p class="decision">{words}</p>' + _plots(plots))
    return _section("Predictions", "".join(parts))


def _scatter_figure(x: np.ndarray, y: np.ndarray, xlabel: str, ylabel: str, title: str,
                    diagonal: bool = False, band: float | None = None) -> str:
    if len(x) > SCATTER_ROWS:  # a million dots draw slowly and show no more than this many
        keep = np.random.default_rng(0).choice(len(x), SCATTER_ROWS, replace=False)
        x, y = x[keep], y[keep]
    fig, ax = _new_figure()
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
    return _figure_to_img(fig, caption)


def _histogram_figure(residual: np.ndarray, halfwidth: float) -> str:
    fig, ax = _new_figure()
    ax.hist(residual, bins=min(50, max(10, len(residual) // 20)), color="#2680c2", alpha=.8)
    for edge in (-halfwidth, halfwidth):
        ax.axvline(edge, color="grey", ls="--", lw=1)
    ax.set(xlabel="residual (actual - predicted)", ylabel="rows", title="Residuals")
    ax.grid(alpha=.3)
    return _figure_to_img(fig, "How far predictions miss; dashed lines mark the prediction interval.")


# -- why and how it was trained -------------------------------------------------------------
IMPORTANCE_NOTE = ("Integrated-gradients attributions on a sample of training rows, averaged in absolute value: "
                   "larger bars move the prediction more.")


def _importance_section(importance: dict[str, float], title: str = "Feature importance", what: str = "features",
                        note: str = IMPORTANCE_NOTE) -> str:
    ranked = sorted(importance.items(), key=lambda kv: -kv[1])
    shown = ranked[:TOP_FEATURES]
    fig, ax = _new_figure(10, 1.0 + 0.26 * max(len(shown), 1))
    ax.barh(range(len(shown)), [v for _, v in shown][::-1], color="#2680c2")
    ax.set_yticks(range(len(shown)), [_label(k) for k, _ in shown][::-1], fontsize=9)
    ax.set_xlabel("mean |attribution|: how much it moves a prediction")
    ax.grid(alpha=.3, axis="x")
    more = f" The top {len(shown)} of {len(ranked)} {what} are shown." if len(ranked) > len(shown) else ""
    text = f'<p class="note">{_e(note)}{more}</p>'
    return _section(title, text + _plots([_figure_to_img(fig, "")], wide=True))


def _training_log_section(log: list[dict]) -> str:
    columns = list(dict.fromkeys(k for entry in log for k in entry))
    rows = [[_number(e.get(c)) if isinstance(e.get(c), float) else _e(e.get(c, "")) for c in columns] for e in log]
    text = ('<p class="note">One network per bag, each trained on the other bags and stopped early on its own; '
            "valid_score is its best stopping score on the rows it did not train on (lower is better): minus the "
            "average precision for yes/no models, the loss otherwise.</p>")
    return _section("Training log", text + _table(columns, rows, ["number"] * len(columns)))


# -- small HTML and plotting helpers --------------------------------------------------------
def _new_figure(width: float = 4.0, height: float = 3.3):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=140, layout="constrained")
    return fig, fig.add_subplot()


def _figure_to_img(fig, caption: str = "") -> str:
    """A matplotlib Figure as an inline <figure> with a base64 PNG: the page needs no other file."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    alt = _e(caption or "plot")
    text = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{encoded}" alt="{alt}">{text}</figure>'


def _plots(images: list[str], wide: bool = False) -> str:
    style = ' style="grid-template-columns: 1fr"' if wide else ""
    return f'<div class="plots"{style}>{"".join(images)}</div>'


def _section(title: str, content: str) -> str:
    return f"<section><h2>{_e(title)}</h2>{content}</section>\n"


def _table(headers: list[str], rows: list[list[str]], classes: list[str]) -> str:
    """Cells are already escaped HTML."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    cells = ("".join(f'<td class="{c}">{cell}</td>' for c, cell in zip(classes, row, strict=True)) for row in rows)
    body = "".join(f"<tr>{row}</tr>" for row in cells)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _label(text: str) -> str:
    """A user string for matplotlib, which would read '$...$' as mathematics."""
    return str(text).replace("$", r"\$")


def _number(value) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    if value == 0 or 0.001 <= abs(value) <= 1:  # scores such as f1 and r2: same decimals, easy to compare
        return f"{value:.4f}"
    return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
