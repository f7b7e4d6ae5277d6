"""Printing for people: rich tables of metrics, and user text that is never read as markup.

Shared by the command line and the demo. rich is imported inside the functions so that
`shopfloor --help` stays fast.
"""

from __future__ import annotations

import math


def plain(text) -> str:
    """User text (column names like 'Torque [Nm]') must not be read as rich markup."""
    from rich.markup import escape

    return escape(str(text))


def metrics_table(title: str, metrics: dict, spread: dict | None = None):
    """A two-column table; with `spread`, values read 'mean ± std'."""
    from rich.table import Table

    table = Table(title=plain(title), show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, str):  # how the rows were split, beside the numbers
            table.add_row(plain(key), plain(value))
            continue
        text = "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
        if spread is not None and key in spread and text != "n/a":
            text += f" ± {spread[key]:.4f}"
        table.add_row(plain(key), text)
    return table


def optimize_tables(result: dict, validation: dict) -> list:
    """The recommendation (settings and predicted outputs), the next experiments, and how well the models predict."""
    from rich.table import Table

    recommended = Table(title="recommended settings", header_style="bold")
    recommended.add_column("setting")
    recommended.add_column("value", justify="right")
    for name, value in result["recommended"].items():
        recommended.add_row(plain(name), _value(value))
    predicted = Table(title=f"predicted (90 % range of a run); chance all constraints met "
                            f"{result['probability_feasible']:.0%}; distance to past runs {result['distance_to_data']:.3f}",
                      header_style="bold")
    for column in ("output", "mean", "low", "high"):
        predicted.add_column(column, justify="left" if column == "output" else "right")
    for name, p in result["predicted"].items():
        predicted.add_row(plain(name), _value(p["mean"]), _value(p["low"]), _value(p["high"]))
    experiments = Table(title="next experiments", header_style="bold")
    names = list(result["recommended"])
    experiments.add_column("#", justify="right")
    for name in names:
        experiments.add_column(plain(name), justify="right")
    for i, row in enumerate(result["experiments"], 1):
        experiments.add_row(str(i), *(_value(row[n]) for n in names))
    tables = [recommended, predicted, experiments]
    if result.get("pareto_front"):
        front = Table(title="Pareto front (predicted)", header_style="bold")
        columns = list(result["pareto_front"][0])
        for name in columns:
            front.add_column(plain(name), justify="right")
        for row in result["pareto_front"]:
            front.add_row(*(_value(row[c]) for c in columns))
        tables.append(front)
    tables.append(metrics_table("how well the models predict each past run from the others (leave-one-out)", validation))
    return tables


def _value(value) -> str:
    return f"{value:.5g}" if isinstance(value, float) else plain(value)
