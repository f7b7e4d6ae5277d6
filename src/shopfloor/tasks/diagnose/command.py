"""`shopfloor train diagnose`: learn which fault a window of a machine's signals shows, from labelled recordings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopfloor.cli.app import friendly, on_devices, stderr, train_app
from shopfloor.display import metrics_table, plain


def parse_rate_options(values: list[str] | None) -> tuple[float | None, dict[str, float] | None]:
    """--rate 12000 (files without their own rate) and --rate 'normal*=48000' (files or class folders by pattern)."""
    from shopfloor.errors import BadOption

    rate, rates = None, {}
    for value in values or []:
        pattern, _, number = value.rpartition("=")
        try:
            hz = float(number)
        except ValueError:
            raise BadOption(f"--rate '{value}' is neither samples per second (12000) nor PATTERN=HZ ('normal*=48000')") from None
        if pattern:
            rates[pattern] = hz
        elif rate is not None:
            raise BadOption("give --rate HZ once; other rates as --rate PATTERN=HZ")
        else:
            rate = hz
    return rate, rates or None


@train_app.command("diagnose")
@friendly
@on_devices(trains=True)
def train_diagnose(
    data: Annotated[Path, typer.Option("--data", help="A folder of class folders (normal/, inner_race/, ...) of "
                                       "recordings (CSV, .npy, WAV, .mat), or a long table with --time and --label.")],
    out: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    rate: Annotated[list[str] | None, typer.Option("--rate", help="Sample rate (Hz) of files that carry none; "
                                                   "PATTERN=HZ for some files or class folders ('normal*=48000').")] = None,
    channels: Annotated[str | None, typer.Option("--channels", help="Channels to read, comma-separated: CSV columns, "
                                                 ".mat variables or their ends (DE_time); by default all, or *_DE_time.")] = None,
    window: Annotated[int, typer.Option("--window", help="Samples per window.")] = 2048,
    time: Annotated[str | None, typer.Option("--time", help="Long table: the time column.")] = None,
    label: Annotated[str | None, typer.Option("--label", help="Long table: the fault type of each row.")] = None,
    run: Annotated[str | None, typer.Option("--run", help="Long table: the recording (run, cycle) of each row.")] = None,
    machine: Annotated[str | None, typer.Option("--machine", help="Long table: the machine of each row.")] = None,
    mixed_runs: Annotated[bool, typer.Option("--mixed-runs", help="Long table: a run may change fault type; each "
                                             "stretch of one type is a recording.")] = False,
    front: Annotated[str, typer.Option("--front", help="Front end: raw, spectrum or both.")] = "both",
    cv: Annotated[int, typer.Option("--cv", help="Long table: also report K-fold cross-validation by whole runs.")] = 0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
):
    """Train a fault-diagnosis model: the fault class of every window of a recording, its probability, and unknown for
    windows like no class seen in training."""
    from shopfloor.artifacts import check_destination
    from shopfloor.data.tables import column_name
    from shopfloor.errors import BadOption
    from shopfloor.tasks.diagnose.model import DiagnoseModel

    check_destination(out)  # before training, not after it
    if (label or run or machine or mixed_runs) and not time:
        raise BadOption("--label, --run, --machine and --mixed-runs are for a long table: give its --time column too")
    hz, rates = parse_rate_options(rate)
    names = [c.strip() for c in channels.split(",") if c.strip()] if channels else None
    model = DiagnoseModel(window=window, rate=hz, rates=rates, channels=names, front=front, seed=seed,
                          time=None if time is None else column_name(time),
                          label=None if label is None else column_name(label),
                          run=None if run is None else column_name(run),
                          machine=None if machine is None else column_name(machine), mixed_runs=mixed_runs,
                          progress=not quiet)
    console = stderr()
    if cv:
        result = model.cross_validate(data, cv)
        console.print(metrics_table(f"{cv}-fold cross-validation ({result['split']})", result["mean"], result["std"]))
    else:
        model.fit(data)
    model.save(out)
    console.print(metrics_table("held-out windows", model.validation_metrics_))
    console.print(f"[green]saved[/] {plain(out)}  ({len(model.classes_)} classes: {plain(', '.join(model.classes_))}; "
                  f"{model.train_seconds_:.1f} s)")
