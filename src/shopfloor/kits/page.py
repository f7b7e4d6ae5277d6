"""The HTML page kit every task's report is built from: one self-contained page per model.

Everything is inline (CSS, plots as base64 PNG), so the page can be mailed, attached to a
ticket or opened on a shop-floor PC with no network. Plots are drawn on bare matplotlib
Figures with the Agg canvas, never through pyplot: writing a report neither switches the
caller's backend (a notebook keeps its inline plots) nor leaks figures in a long-running server.

The kit knows pages, tables, figures and the words for common metrics; it knows no task. Each
task's page (`tasks/<task>/report.py`) puts its sections together from these pieces, so every
report looks alike and a new task writes only what it has to say.
"""

from __future__ import annotations

import base64
import html
import io
import os
from datetime import datetime
from pathlib import Path

import numpy as np

TOP_FEATURES = 30  # more bars than this cannot be read on one plot
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


# -- the page -------------------------------------------------------------------------------
def write_page(path: str | os.PathLike, title: str, body: str) -> Path:
    """Write `body` (HTML) as a whole page at `path`, atomically: a reader (the dashboard, a browser
    reloading) finds the old page or the new one, never half of it. Missing folders are made."""
    from shopfloor.artifacts import atomic_write

    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n"
            f"</body>\n</html>\n")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, page)


def page_header(title: str, facts: dict, seconds: float, origin: str) -> str:
    """The page's title and a list of facts about the model, ending with when and how it was made."""
    from shopfloor import __version__

    facts = {
        **facts,
        "Training time": f"{seconds:.1f} s" if seconds < 120 else f"{seconds // 60:.0f} min {seconds % 60:.0f} s",
        "Metrics from": origin,
        "shopfloor version": __version__,
        "Written": datetime.now().strftime("%Y-%m-%d %H:%M"),
    }
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in facts.items())
    return f"<header><h1>{escape(title)}</h1><dl>{items}</dl></header>\n"


def section(title: str, content: str) -> str:
    """A titled card of the page; `content` is already HTML."""
    return f"<section><h2>{escape(title)}</h2>{content}</section>\n"


def table(headers: list[str], rows: list[list[str]], classes: list[str]) -> str:
    """Cells are already escaped HTML; `classes` styles each column ("number", "words" or "")."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    cells = ("".join(f'<td class="{c}">{cell}</td>' for c, cell in zip(classes, row, strict=True)) for row in rows)
    body = "".join(f"<tr>{row}</tr>" for row in cells)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def metrics_table(metrics: dict[str, float], words: dict[str, str] = METRIC_WORDS) -> str:
    """Metric, value and what it means; a name such as 'failure f1' takes the words of its last part."""
    rows = [[escape(name), number(value), escape(words.get(name.rsplit(" ", 1)[-1], ""))]
            for name, value in metrics.items()]
    return table(["metric", "value", "meaning"], rows, ["", "number", "words"])


# -- figures --------------------------------------------------------------------------------
def new_figure(width: float = 4.0, height: float = 3.3):
    """A bare matplotlib Figure and its one Axes (no pyplot: see the module's docstring)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=140, layout="constrained")
    return fig, fig.add_subplot()


def figure_to_img(fig, caption: str = "") -> str:
    """A matplotlib Figure as an inline <figure> with a base64 PNG: the page needs no other file."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return png_figure(buffer.getvalue(), caption)


def png_figure(png: bytes, caption: str = "") -> str:
    """PNG bytes (a plot, an image with its heatmap) as an inline <figure>."""
    encoded = base64.b64encode(png).decode("ascii")
    alt = escape(caption or "plot")
    text = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{encoded}" alt="{alt}">{text}</figure>'


def plots(images: list[str], wide: bool = False) -> str:
    """Figures side by side, as many as fit the page's width; `wide` puts one per row."""
    style = ' style="grid-template-columns: 1fr"' if wide else ""
    return f'<div class="plots"{style}>{"".join(images)}</div>'


# -- sections that several tasks share ------------------------------------------------------
def importance_section(importance: dict[str, float], title: str, what: str, note: str) -> str:
    """A bar per input, largest first, at most `TOP_FEATURES`; `what` names the inputs ("features", "sensors")
    and `note` says how the importance was measured."""
    ranked = sorted(importance.items(), key=lambda kv: -kv[1])
    shown = ranked[:TOP_FEATURES]
    fig, ax = new_figure(10, 1.0 + 0.26 * max(len(shown), 1))
    ax.barh(range(len(shown)), [v for _, v in shown][::-1], color="#2680c2")
    ax.set_yticks(range(len(shown)), [label(k) for k, _ in shown][::-1], fontsize=9)
    ax.set_xlabel("mean |attribution|: how much it moves a prediction")
    ax.grid(alpha=.3, axis="x")
    more = f" The top {len(shown)} of {len(ranked)} {what} are shown." if len(ranked) > len(shown) else ""
    text = f'<p class="note">{escape(note)}{more}</p>'
    return section(title, text + plots([figure_to_img(fig, "")], wide=True))


def training_log_section(log: list[dict], note: str) -> str:
    """The training log as a table, one row per entry (a bag, a member, a stage), one column per key
    any entry has; `note` (HTML) says how to read it."""
    columns = list(dict.fromkeys(k for entry in log for k in entry))
    rows = [[number(e.get(c)) if isinstance(e.get(c), float) else escape(e.get(c, "")) for c in columns] for e in log]
    return section("Training log", note + table(columns, rows, ["number"] * len(columns)))


# -- text -----------------------------------------------------------------------------------
def escape(value) -> str:
    """Any value as HTML text: column names and file names come from users and may hold markup."""
    return html.escape(str(value), quote=True)


def label(text: str) -> str:
    """A user string for matplotlib, which would read '$...$' as mathematics."""
    return str(text).replace("$", r"\$")


def number(value) -> str:
    """A metric for people: scores with the same four decimals, large values grouped, 'n/a' when missing."""
    if value is None or not np.isfinite(value):
        return "n/a"
    if value == 0 or 0.001 <= abs(value) <= 1:  # scores such as f1 and r2: same decimals, easy to compare
        return f"{value:.4f}"
    return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
