"""`shopfloor train monitor`: learn a machine's normal sensor behaviour from its unlabelled history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopfloor.cli.app import DataOpt, DayFirstOpt, friendly, on_devices, stderr, train_app
from shopfloor.display import metrics_table, plain


@train_app.command("monitor")
@friendly
@on_devices(trains=True)
def train_monitor(
    data: DataOpt,
    time: Annotated[str, typer.Option("--time", help="Time column (one row per time step, per machine).")],
    out: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    machine: Annotated[str | None, typer.Option("--machine", help="Machine id column: one model for a fleet of "
                                                "like machines.")] = None,
    drop: Annotated[list[str] | None, typer.Option("--drop", help="Column that is not a sensor.")] = None,
    label: Annotated[str | None, typer.Option("--label", help="Optional 0/1 column of known anomalies: kept out of "
                                              "normal, and used to set the threshold.")] = None,
    false_alarm_rate: Annotated[str, typer.Option("--false-alarm-rate", help="Target false alarms on held-out normal "
                                                  "rows: a share of rows (0.01) or alarms per day ('2/day').")] = "0.01",
    window: Annotated[int, typer.Option("--window", help="Time steps the model looks at for each row.")] = 32,
    levels: Annotated[str, typer.Option("--levels", help="With --machine: 'machine' judges each machine against its own "
                                        "normal level where the machines read a sensor at different levels; 'fleet' "
                                        "judges every machine against the fleet's.")] = "machine",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    dayfirst: DayFirstOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
):
    """Train a sensor-monitoring model on a history of normal operation (CSV or Parquet): scores 0..1 per row, the
    sensors behind each score, and events."""
    from shopfloor.artifacts import check_destination
    from shopfloor.data.tables import column_name, column_names
    from shopfloor.data.times import date_order
    from shopfloor.tasks.monitor.model import MonitorModel

    check_destination(out)  # before training, not after it
    rate: float | str = false_alarm_rate
    try:
        rate = float(false_alarm_rate)
    except ValueError:
        pass  # alarms per day, read by the model
    model = MonitorModel(time=column_name(time), machine=None if machine is None else column_name(machine),
                         drop=column_names(drop), label=None if label is None else column_name(label),
                         window=window, levels=levels, false_alarm_rate=rate, seed=seed, date_order=date_order(dayfirst),
                         progress=not quiet).fit(data)
    model.save(out)
    console = stderr()
    if model.validation_metrics_:
        console.print(metrics_table("held-out rows of the history", model.validation_metrics_))
    console.print(f"[green]saved[/] {plain(out)}  ({len(model.sensor_columns_)} sensors; threshold: "
                  f"{plain(model.threshold_rule_)}; {model.train_seconds_:.1f} s)")
