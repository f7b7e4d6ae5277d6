"""`shopfloor drift`: new data against the reference profile a model wrote when it was trained.

It asks the estimator for its view of the data (`drift_view`, the contract in `shopfloor.tasks.base`) and
compares it with `drift_profile_` (`shopfloor.watch`); it never switches on a task. Everything is computed before
anything is written, so that a refused input leaves no file behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopfloor.cli.app import DataOpt, ModelOpt, app, friendly, refuse_output_over_input, stdout, write_json


@app.command()
@friendly
def drift(model: ModelOpt, data: DataOpt,
          json_out: Annotated[Path, typer.Option("--json", help="Write the drift report (every input, output, "
                                                 "finding and the estimated performance) as JSON.")],
          report: Annotated[Path | None, typer.Option("--report", help="Also write an HTML page of it.")] = None):
    """Compare new data with the model's training profile: drift per input, data quality, estimated accuracy."""
    import shopfloor
    from shopfloor.artifacts import atomic_write
    from shopfloor.errors import DataFileError, NotSupported
    from shopfloor.tasks.base import Estimator
    from shopfloor.watch.compare import compare_view
    from shopfloor.watch.report import drift_page

    refuse_output_over_input(json_out, "--json", data=data)
    refuse_output_over_input(report, "--report", data=data)
    estimator = shopfloor.load(model)
    if type(estimator).drift_view is Estimator.drift_view:
        estimator.drift_view(data)  # raises the task's one line: it has no drift watch
    if getattr(estimator, "drift_profile_", None) is None:
        raise NotSupported(f"{model} was saved before drift profiles; retrain it")
    if data.is_file() and data.stat().st_size == 0:
        raise DataFileError(f"{data} is empty")
    view = estimator.drift_view(data)
    if len(view.inputs) == 0:
        raise DataFileError(f"{data} has no readings to compare")
    result = _plain(compare_view(estimator.drift_profile_, view))
    page = drift_page(result, str(model), str(data)) if report is not None else None
    for path in (json_out, report):
        if path is not None and not path.parent.is_dir():
            raise DataFileError(f"{path}: the folder {path.parent} does not exist")
    write_json(json_out, {"model": str(model), "data": str(data), **result})
    if page is not None:
        atomic_write(report, page)
    stdout().print(_summary(result))


def _plain(value):
    """JSON values: numpy numbers as Python's, a number with no answer (NaN, infinity) as null."""
    import math

    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _summary(result: dict):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"drift: {result['verdict']} ({result['readings']} readings)")
    for column in ("input", "verdict", "size", "findings"):
        table.add_column(column)
    for r in result["inputs"] + result["outputs"] + ([result["embedding"]] if "embedding" in result else []):
        size = (f"PSI {r['psi']:.3f}" if r.get("psi") is not None else f"JS {r['js']:.3f}" if r.get("js") is not None
                else f"MMD p {r['p_value']:.3f}" if r["kind"] == "embedding" else "-")
        table.add_row(escape(r["input"]), r["verdict"], size, "; ".join(f["finding"] for f in r["findings"]) or "-")
    if "performance" in result:
        estimated = result["performance"]["estimated"]
        table.caption = f"estimated without labels: accuracy {estimated['accuracy']:.3f}, F1 {estimated['f1']:.3f}"
    return table
