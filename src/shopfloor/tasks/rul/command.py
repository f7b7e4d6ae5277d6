"""`shopfloor train rul`: a remaining-useful-life model from run-to-failure histories."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopfloor.cli.app import DayFirstOpt, friendly, on_devices, stderr, train_app
from shopfloor.display import metrics_table, plain


@train_app.command("rul")
@friendly
@on_devices(trains=True)
def train_rul(
    data: Annotated[Path, typer.Option("--data", help="Run-to-failure histories: C-MAPSS text, CSV or Parquet.")],
    out: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    unit: Annotated[str | None, typer.Option("--unit", help="Unit (machine, engine) id column; C-MAPSS: none.")] = None,
    time: Annotated[str | None, typer.Option("--time", help="Time or cycle column; not for C-MAPSS files.")] = None,
    settings: Annotated[list[str] | None, typer.Option("--settings", help="Operating-setting column(s): a,b or repeat.")] = None,
    drop: Annotated[list[str] | None, typer.Option("--drop", help="Column that is not a sensor; repeat for several.")] = None,
    window: Annotated[int, typer.Option("--window", help="Cycles the network looks back.")] = 40,
    rul_cap: Annotated[float, typer.Option("--rul-cap", help="Training cap: a healthy unit's RUL is at most this.")] = 125.0,
    members: Annotated[int, typer.Option("--members", help="Cross-fitted networks in the ensemble.")] = 5,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    max_epochs: Annotated[int, typer.Option("--max-epochs")] = 60,
    dayfirst: DayFirstOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
):
    """Train a remaining-useful-life model on run-to-failure histories (every run ends in failure)."""
    from shopfloor.artifacts import check_destination
    from shopfloor.data.times import date_order
    from shopfloor.tasks.rul.model import RULModel

    check_destination(out)
    settings = [name.strip() for option in settings or [] for name in option.split(",") if name.strip()]
    drop = [name.strip() for option in drop or [] for name in option.split(",") if name.strip()]
    model = RULModel(unit=unit, time=time, settings=settings, drop=drop, window=window, rul_cap=rul_cap,
                     members=members, seed=seed, max_epochs=max_epochs, date_order=date_order(dayfirst),
                     progress=not quiet).fit(data)
    model.save(out)
    console = stderr()
    console.print(metrics_table("out-of-fold validation (every cycle of units no network trained on)",
                                model.validation_metrics_))
    console.print(f"[green]saved[/] {plain(out)}  ({model.fingerprint_['units']} units, {len(model.sensor_columns_)} "
                  f"sensors, {model.net_.conditions.n_conditions} operating condition(s), {model.train_seconds_:.1f} s)")
