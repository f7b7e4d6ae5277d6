"""The robustness report page: one plot per curve, and the inputs the model leans on most."""

from __future__ import annotations

import os
from pathlib import Path

from shopfloor.kits.page import escape, figure_to_img, new_figure, number, plots, section, table, write_page


def curve_figure(curve: dict, metric: str, clean: float) -> str:
    fig, ax = new_figure()
    x = [p[0] for p in curve["points"]]
    y = [p[1] for p in curve["points"]]
    ax.plot(x, y, marker="o", color="#2680c2")
    ax.axhline(clean, color="#9fb3c8", linestyle="--", linewidth=1, label="unperturbed")
    ax.set_xlabel(curve["strength"])
    ax.set_ylabel(metric)
    ax.legend(loc="best", fontsize=8)
    return figure_to_img(fig, curve["name"])


def inputs_section(report: dict) -> str:
    shuffled = "shuffled" in report["inputs"][0]  # signals: ranked by the loss with the channel shuffled
    rows = [[escape(row["input"]), number(row["stuck"]), "" if row["missing"] is None else number(row["missing"]),
             *([number(row["shuffled"])] if shuffled else []), number(row["loss"])] for row in report["inputs"]]
    how = ("with one channel at a time stuck at its median (a dead sensor) or shuffled among the windows (still a "
           "signal, no longer this window's); the channels whose loss of the metric when shuffled is largest") \
        if shuffled else ("with one input at a time stuck at its median or missing; the inputs whose loss of the "
                          "metric is largest")
    note = f"<p>{escape(report['metric'])} {how} are the ones the model leans on most.</p>"
    heads = ["input", "stuck at median", "missing", *(["shuffled"] if shuffled else []), "loss of the metric"]
    return section("Inputs the model leans on most", note + table(heads, rows, ["", *["number"] * (len(heads) - 1)]))


def write_robustness_page(path: str | os.PathLike, report: dict, model_name: str, source: str) -> Path:
    """The page for `curves.robustness_curves`'s report of the model `model_name` on the data `source`."""
    metric = report["metric"]
    better = "higher is better" if report["higher_is_better"] else "lower is better"
    head = (f"<header><h1>Robustness: {escape(model_name)}</h1><p>{escape(report['task'])} model, {escape(metric)} "
            f"({better}) on {report['items']} items of {escape(source)}: {number(report['clean'])} unperturbed; "
            f"measured in {report['seconds']:.0f} s.</p></header>\n")
    figures = plots([curve_figure(c, metric, report["clean"]) for c in report["curves"]])
    body = head + section("The metric as the inputs are perturbed", figures)
    if report.get("inputs"):
        body += inputs_section(report)
    return write_page(path, f"Robustness: {model_name}", body)
