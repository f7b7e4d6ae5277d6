"""`shopfloor train forecast` and `shopfloor backtest`: fit a forecasting model, and replay it over a history.

`backtest` is a command of its own on the root app (not a `train` subcommand): only a forecasting model has
one; any other model is refused by the estimator's own `NotSupported` line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopfloor.cli.app import (
    DataOpt,
    DayFirstOpt,
    ModelOpt,
    app,
    friendly,
    json_safe,
    on_devices,
    refuse_output_over_input,
    set_date_order,
    stderr,
    stdout,
    train_app,
    write_json,
)
from shopfloor.display import metrics_table, plain


def _names(options: list[str] | None) -> list[str]:
    return [name.strip() for option in options or [] for name in option.split(",") if name.strip()]


def _levels(text: str) -> tuple[float, ...]:
    from shopfloor.errors import BadOption

    try:
        return tuple(float(q) for q in text.split(",") if q.strip())
    except ValueError:
        raise BadOption(f"--quantiles takes levels between 0 and 1 separated by commas (0.1,0.5,0.9), not {text!r}") from None


@train_app.command("forecast")
@friendly
@on_devices(trains=True)
def train_forecast(
    data: DataOpt,
    time: Annotated[str, typer.Option("--time", help="Time column: dates, or numbers such as shift counts.")],
    target: Annotated[list[str], typer.Option("--target", help="Column to forecast; repeat (or a,b) for several.")],
    out: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    series: Annotated[str | None, typer.Option("--series", help="Series id column (line, machine, part): one model "
                                               "learns them all.")] = None,
    known: Annotated[list[str] | None, typer.Option("--known", help="Covariate known ahead (planned production, shift "
                                                    "plan); predict then needs it in --future. Every other numeric "
                                                    "column is a past-only covariate.")] = None,
    horizon: Annotated[int, typer.Option("--horizon", help="Steps to forecast.")] = 24,
    lookback: Annotated[int, typer.Option("--lookback", help="Steps of history each forecast reads.")] = 96,
    quantiles: Annotated[str, typer.Option("--quantiles", help="Quantile levels, conformally calibrated.")] = "0.1,0.5,0.9",
    holdout: Annotated[float, typer.Option("--holdout", help="Share of every series' end held out for early stopping "
                                           "and calibration.")] = 0.15,
    max_epochs: Annotated[int, typer.Option("--max-epochs")] = 60,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    dayfirst: DayFirstOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
):
    """Train a forecasting model (CSV or Parquet): the next H steps of every target of every series, with
    calibrated quantiles."""
    from shopfloor.artifacts import check_destination
    from shopfloor.data.times import date_order
    from shopfloor.tasks.forecast.model import ForecastModel

    check_destination(out)
    model = ForecastModel(time=time, targets=_names(target), series=series, known=_names(known), horizon=horizon,
                          lookback=lookback, quantiles=_levels(quantiles), holdout=holdout, max_epochs=max_epochs,
                          seed=seed, date_order=date_order(dayfirst), progress=not quiet).fit(data)
    model.save(out)
    console = stderr()
    console.print(metrics_table("held-out end of every series (coverage after calibration is in-sample)",
                                model.validation_metrics_))
    console.print(f"[green]saved[/] {plain(out)}  ({len(model.series_ids_)} series, {len(model.target_columns_)} "
                  f"target(s), horizon {model.horizon}, {model.train_seconds_:.1f} s)")


@app.command()
@friendly
@on_devices(trains=False)
def backtest(
    model: ModelOpt,
    data: DataOpt,
    start: Annotated[str, typer.Option("--start", help="First origin: a time (or number) of the time column.")],
    out: Annotated[Path, typer.Option("--out", help="Forecast rows, .csv or .parquet: origin, time, target, actual, "
                                      "forecast, quantiles.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics as a flat JSON object.")] = None,
    stride: Annotated[int, typer.Option("--stride", help="Steps between origins.")] = 1,
    refit: Annotated[bool, typer.Option("--refit", help="Train the model again on the rows before START (and before "
                                        "every --refit-every-th origin) instead of using the saved one.")] = False,
    refit_every: Annotated[int, typer.Option("--refit-every", help="With --refit: origins per refit (0: once).")] = 0,
    dayfirst: DayFirstOpt = None,
):
    """Rolling-origin forecasts from START: each origin sees only the rows before it (forecasting models)."""
    import shopfloor
    from shopfloor.data.tables import write_table
    from shopfloor.errors import DataFileError, NotSupported

    refuse_output_over_input(out, "--out", data=data)
    refuse_output_over_input(json_out, "--json", data=data, out=out)
    for path in (out, json_out):  # both files or neither
        if path is not None and not path.parent.is_dir():
            raise DataFileError(f"{path}: the folder {path.parent} does not exist")
    estimator = shopfloor.load(model)
    if not hasattr(estimator, "backtest"):
        raise NotSupported(f"{estimator.described_as or estimator.task_name} has no backtests: they are for "
                           "forecasting models")
    set_date_order(estimator, dayfirst)
    table, metrics = estimator.backtest(data, start, stride=stride, refit=refit, refit_every=refit_every)
    metrics = json_safe(metrics)
    write_table(table, out)
    if json_out is not None:
        write_json(json_out, metrics)
    stdout().print(metrics_table(f"backtest of {data.name} from {start}",
                                 {k: v for k, v in metrics.items() if "/" not in k}))
    stderr().print(f"[green]wrote[/] {plain(out)} ({len(table)} rows, {int(metrics['origins'])} origins)")
