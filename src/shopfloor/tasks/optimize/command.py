"""`shopfloor optimize`: recommended settings, predicted KPIs and the next experiments from production records
(and, with --out, the fitted optimiser saved as a model)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from shopfloor.cli.app import app, friendly, refuse_output_over_input, stderr, write_json
from shopfloor.display import plain


@app.command()
@friendly
def optimize(
    data: Annotated[Path, typer.Option("--data", help="Production records: CSV or Parquet, one row per run.")],
    target: Annotated[list[str], typer.Option("--target", help="KPI column to optimise; repeat for several "
                                              "(COL:max or COL:min sets each one's direction).")],
    setting: Annotated[list[str], typer.Option("--setting", help="A setting to change: 'temp=150:250', 'pressure=1:5:0.5' "
                                               "(steps), 'die=A,B,C' (choices), or a bare column name (range of the records).")],
    json_out: Annotated[Path, typer.Option("--json", help="Write the recommendation and the next experiments here.")],
    maximize: Annotated[bool, typer.Option("--maximize", help="Make the targets as large as possible.")] = False,
    minimize: Annotated[bool, typer.Option("--minimize", help="Make the targets as small as possible.")] = False,
    fixed: Annotated[list[str] | None, typer.Option("--fixed", help="Fixed context, e.g. 'type=M' (product, lot).")] = None,
    constraint: Annotated[list[str] | None, typer.Option("--constraint", help="E.g. 'defect_rate<=0.02' or "
                                                         "'temp - 2*pressure <= 100'; `backticks` around odd names.")] = None,
    batch: Annotated[int, typer.Option("--batch", help="Next experiments to propose.")] = 5,
    trust_radius: Annotated[str, typer.Option("--trust-radius", help="How far from any past run a recommendation may go "
                                              "(root-mean-square share of each setting's range), or 'none'.")] = "0.15",
    confidence: Annotated[float, typer.Option("--confidence", help="Required chance of meeting the output constraints.")] = 0.9,
    acquisition: Annotated[str, typer.Option("--acquisition", help="ei (expected improvement), ucb or thompson.")] = "ei",
    out: Annotated[Path | None, typer.Option("--out", help="Also save the fitted optimiser as a model folder.")] = None,
    report_out: Annotated[Path | None, typer.Option("--report", help="Also write an HTML page (partial dependence, "
                                                    "Pareto front).")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
):
    """Recommend machine settings from production records, with predicted KPIs, uncertainty and next experiments."""
    from shopfloor.artifacts import check_destination
    from shopfloor.display import optimize_tables
    from shopfloor.errors import BadOption
    from shopfloor.tasks.optimize.model import ProcessOptimizer
    from shopfloor.tasks.optimize.settings import parse_fixed

    goals = _objectives(target, maximize, minimize)
    refuse_output_over_input(json_out, "--json", data=data)
    refuse_output_over_input(report_out, "--report", data=data)
    if not json_out.parent.is_dir():
        raise BadOption(f"--json {json_out}: the folder {json_out.parent} does not exist")
    if out is not None:
        check_destination(out)
    radius = None if trust_radius.strip().lower() in ("none", "inf", "off") else _positive_number(trust_radius, "--trust-radius")
    optimizer = ProcessOptimizer(
        list(setting), maximize=[c for c, up in goals if up], minimize=[c for c, up in goals if not up],
        fixed=parse_fixed(fixed or []), constraints=list(constraint or []), trust_radius=radius,
        confidence=confidence, acquisition=acquisition, batch=batch, seed=seed)
    optimizer.fit(data)
    result = optimizer.optimize()
    if out is not None:
        optimizer.save(out)
    if report_out is not None:
        from shopfloor.tasks.optimize.report import write_report

        write_report(optimizer, report_out, result=result)
    write_json(json_out, result)
    console = stderr()
    for table in optimize_tables(result, optimizer.validation_metrics_):
        console.print(table)
    written = [str(p) for p in (json_out, out, report_out) if p is not None]
    console.print(f"[green]wrote[/] {plain(', '.join(written))}")


def _objectives(targets: list[str], maximize: bool, minimize: bool) -> list[tuple[str, bool]]:
    from shopfloor.errors import BadOption

    if maximize and minimize:
        raise BadOption("--maximize and --minimize both given; give one, or write each target as COL:max / COL:min")
    goals = []
    for text in targets:
        column, _, suffix = text.rpartition(":")
        if column and suffix.lower() in ("max", "maximize", "min", "minimize"):
            goals.append((column, suffix.lower().startswith("max")))
        elif maximize or minimize:
            goals.append((text, maximize))
        else:
            raise BadOption(f"say what to do with '{text}': add --maximize or --minimize (or write it as {text}:max)")
    return goals


def _positive_number(text: str, option: str) -> float:
    from shopfloor.errors import BadOption

    try:
        value = float(text)
    except ValueError:
        raise BadOption(f"{option} '{text}' is not a number (or 'none')") from None
    if not value > 0 or not math.isfinite(value):
        raise BadOption(f"{option} must be a positive number or 'none', not {text}")
    return value
