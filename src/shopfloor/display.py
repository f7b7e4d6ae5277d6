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
        text = "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
        if spread is not None and key in spread and text != "n/a":
            text += f" ± {spread[key]:.4f}"
        table.add_row(plain(key), text)
    return table
