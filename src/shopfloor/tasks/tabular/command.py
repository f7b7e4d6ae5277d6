"""`shopfloor train tabular`: a failure-prediction or KPI model from a table, with optional cross-validation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopfloor.cli.app import DataOpt, DayFirstOpt, friendly, on_devices, stderr, train_app
from shopfloor.display import metrics_table, plain


@train_app.command("tabular")
@friendly
@on_devices(trains=True)
def train_tabular(
    data: DataOpt,
    target: Annotated[list[str], typer.Option("--target", help="Column to predict; repeat for several yes/no targets.")],
    out: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    drop: Annotated[list[str] | None, typer.Option("--drop", help="Column to ignore (leaks the target).")] = None,
    id_column: Annotated[list[str] | None, typer.Option("--id", help="Id column: kept in outputs, not learned.")] = None,
    task: Annotated[str, typer.Option("--task", help="classification, regression, or auto (from the target).")] = "auto",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    cv: Annotated[int, typer.Option("--cv", help="Also report K-fold cross-validation, mean ± std.")] = 0,
    split: Annotated[str, typer.Option("--split", help="How validation (and --cv) holds rows out: auto (time order "
                                       "or whole runs when the table has them), random, time or group.")] = "auto",
    group: Annotated[str | None, typer.Option("--group", help="Run id column (run, batch, lot): validate on whole runs.")] = None,
    time: Annotated[str | None, typer.Option("--time", help="Time column: validate on later rows than trained on.")] = None,
    miss_cost: Annotated[float | None, typer.Option("--miss-cost", help="Cost of a missed failure.")] = None,
    false_alarm_cost: Annotated[float | None, typer.Option("--false-alarm-cost", help="Cost of a false alarm.")] = None,
    bags: Annotated[int | None, typer.Option("--bags", help="Cross-fitted networks (8 below 5,000 rows, else 5).")] = None,
    max_epochs: Annotated[int, typer.Option("--max-epochs")] = 200,
    dayfirst: DayFirstOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
):
    """Train a failure-prediction or KPI model on a table (CSV or Parquet)."""
    from shopfloor.artifacts import check_destination
    from shopfloor.data.tables import column_name, column_names, read_table
    from shopfloor.data.times import date_order
    from shopfloor.tasks.tabular.model import TabularModel

    check_destination(out)  # before training, not after it
    frame = read_table(data)
    target, drop, id_column = column_names(target), column_names(drop), column_names(id_column)  # as the header is read
    time, group = (None if n is None else column_name(n) for n in (time, group))
    model = TabularModel(target=target if len(target) > 1 else target[0], drop=drop, ids=id_column, task=task,
                         split=split, time=time, group=group, seed=seed, miss_cost=miss_cost,
                         false_alarm_cost=false_alarm_cost, bags=bags, max_epochs=max_epochs,
                         date_order=date_order(dayfirst), progress=not quiet)
    console = stderr()
    if cv:
        def show(result: dict) -> None:
            console.print(metrics_table(f"{cv}-fold cross-validation ({data.name}; {result['split']})", result["mean"],
                                        result["std"]))

        from shopfloor.crossval import fit_with_cross_validation

        model = fit_with_cross_validation(model, frame, cv, report=show)
    else:
        model.fit(frame)
    model.save(out)
    console.print(metrics_table(f"out-of-fold validation (rows no network trained on; {model.split_.words()})",
                                {k: v for k, v in model.validation_metrics_.items() if k != "split"}))
    console.print(f"[green]saved[/] {plain(out)}  ({model.kind_}, {len(model.schema_.features)} features, "
                  f"{model.train_seconds_:.1f} s)")
