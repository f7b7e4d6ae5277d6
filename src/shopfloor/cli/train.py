"""`shopfloor train ...` and `shopfloor optimize`: the commands that fit a model on the user's data.

Each command parses its options, builds the task's estimator with them, fits it and prints what the fit
found; the model folder is checked before training starts, so that a long fit never ends in "folder exists".
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from shopfloor.cli.app import DataOpt, DayFirstOpt, app, friendly, refuse_output_over_input, stderr, write_json
from shopfloor.display import metrics_table, plain

train_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Train a model on your data.")
app.add_typer(train_app, name="train")


@train_app.command("tabular")
@friendly
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


@train_app.command("rul")
@friendly
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


ImagesOpt = Annotated[Path, typer.Option("--data", help="Image folder: one sub-folder per defect class.")]


@train_app.command("defects")
@friendly
def train_defects(
    data: ImagesOpt,
    out: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    backbone: Annotated[str, typer.Option("--backbone", help="auto (lite0 when its weights are installed, else "
                                          "scratch), scratch (a CNN learned here) or lite0 (ImageNet "
                                          "EfficientNet-Lite0, needs shopfloor[pretrained]).")] = "auto",
    image_size: Annotated[int | None, typer.Option("--image-size", help="Pixels a side the network sees "
                                                   "(default 128 scratch, 224 lite0).")] = None,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="No flips, turns, brightness or crops.")] = False,
    max_epochs: Annotated[int | None, typer.Option("--max-epochs")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
):
    """Train a defect classifier on labelled images (DIR/<class>/*.png|jpg|bmp|tif)."""
    from shopfloor.artifacts import check_destination
    from shopfloor.tasks.defects.model import DefectModel

    check_destination(out)
    model = DefectModel(backbone=backbone, image_size=image_size, augment=not no_augment, max_epochs=max_epochs,
                        seed=seed, progress=not quiet)
    model.fit(data)
    model.save(out)
    console = stderr()
    console.print(metrics_table("validation (images held out in training)", model.validation_metrics_))
    console.print(f"[green]saved[/] {plain(out)}  ({len(model.classes_)} classes, {model.fingerprint_['images']} images, "
                  f"backbone {model.backbone_}, {model.train_seconds_:.1f} s)")


@train_app.command("anomaly")
@friendly
def train_anomaly(
    data: Annotated[Path, typer.Option("--data", help="Folder in the MVTec layout; only DIR/train/good is learned.")],
    out: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    validation: Annotated[Path | None, typer.Option("--validation", help="MVTec-layout folder whose test/ images "
                                                    "(good and defective) choose an F1-optimal threshold.")] = None,
    false_alarm_rate: Annotated[float, typer.Option("--false-alarm-rate", help="Without --validation: share of good "
                                                    "parts the threshold may flag.")] = 0.05,
    image_size: Annotated[int, typer.Option("--image-size", help="Pixels a side the network sees.")] = 256,
    tile: Annotated[int | None, typer.Option("--tile", help="Cut large images into tiles of this many pixels "
                                             "(native resolution) instead of shrinking them.")] = None,
    keep_aspect: Annotated[bool, typer.Option("--keep-aspect/--squash", help="Scale images to --image-size across "
                                              "their shorter side, in tiles along the longer (default), or squash "
                                              "every image into a square as models saved before this option.")] = True,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
):
    """Train an anomaly detector on good images only: a score and a heatmap per image."""
    from shopfloor.artifacts import check_destination
    from shopfloor.tasks.anomaly.model import AnomalyModel

    check_destination(out)
    model = AnomalyModel(image_size=image_size, tile=tile, keep_aspect=keep_aspect, false_alarm_rate=false_alarm_rate,
                         seed=seed, progress=not quiet)
    model.fit(data, validation=validation)
    model.save(out)
    console = stderr()
    if model.validation_metrics_:
        console.print(metrics_table("validation (--validation images)", model.validation_metrics_))
    console.print(f"[green]saved[/] {plain(out)}  ({model.fingerprint_['good_images']} good images; threshold "
                  f"{float(model.net_.threshold):.4g}: {plain(model.threshold_rule_)}; {model.train_seconds_:.1f} s)")


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

