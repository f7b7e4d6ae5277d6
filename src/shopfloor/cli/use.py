"""The commands that use a saved model: `evaluate`, `predict`, `explain`, `export`, `report` and `info`, and `demo`.

Each one loads the model and asks its estimator (the contract in `shopfloor.tasks.base`); none of them knows
which tasks exist. A capability a task lacks (an optimiser's ONNX file, a table model's true-RUL file) is
refused by the estimator with one line naming the task and the capability, printed as every known error is.
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
    write_json,
)
from shopfloor.display import metrics_table, plain

RUL_TRUTH_HELP = "RUL models: true RUL per test unit (C-MAPSS RUL_FD00x.txt, or CSV unit,rul)."
LABEL_TRUTH_HELP = ("Monitoring models: the 0/1 column of known anomalies in the data (without it, int8 export and "
                    "robustness judge by agreement with the float model's flags, not by AUROC); diagnosis models: a "
                    "long table's label column. Other tasks read their labels from the data and refuse it.")


def one_truth(rul: Path | None, label: str | None) -> Path | str | None:
    """The truth a command passes to the estimator, as `evaluate` takes it: a file of true remaining life (`--rul`)
    or the name of a label column (`--label`), never both."""
    from shopfloor.errors import BadOption

    if rul is not None and label is not None:
        raise BadOption("give the truth once: --rul FILE (remaining useful life) or --label COL (a label column)")
    return rul if rul is not None else label


@app.command()
@friendly
@on_devices(trains=False)
def evaluate(model: ModelOpt, data: DataOpt,
             json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics as a flat JSON object.")] = None,
             rul: Annotated[Path | None, typer.Option(
                 "--rul", help="RUL models: true RUL per test unit (C-MAPSS RUL_FD00x.txt, or CSV unit,rul).")] = None,
             label: Annotated[str | None, typer.Option(
                 "--label", help="Monitoring models: the 0/1 column of known anomalies in the data.")] = None,
             dayfirst: DayFirstOpt = None):
    """Score a model on labelled data."""
    import shopfloor

    refuse_output_over_input(json_out, "--json", data=data, rul=rul)
    truth = one_truth(rul, label)
    estimator = shopfloor.load(model)
    set_date_order(estimator, dayfirst)
    metrics = json_safe(estimator.evaluate(data, truth))
    if json_out is not None:
        write_json(json_out, metrics)
    stdout().print(metrics_table(f"{data.name} ({model.name})", metrics))


@app.command()
@friendly
@on_devices(trains=False)
def predict(model: ModelOpt,
            data: Annotated[Path, typer.Option("--data", help="CSV or Parquet file; for image models an image or a folder.")],
            out: Annotated[Path, typer.Option("--out", help="Output file, .csv or .parquet; image models also write "
                                              "heatmap overlays beside it (or give a folder), monitoring models "
                                              "their events (OUT-events.csv).")],
            chunk_rows: Annotated[int, typer.Option("--chunk-rows", help="Rows per chunk (bounds memory).")] = 200_000,
            future: Annotated[Path | None, typer.Option("--future", help="Forecasting models: the known covariates over "
                                                        "the steps to forecast (time, series, covariates).")] = None,
            dayfirst: DayFirstOpt = None):
    """Predict every row of a file (keeps id and time columns), every unit's remaining useful life, every image's
    verdict, or every series' next steps."""
    import inspect

    import shopfloor
    from shopfloor.errors import BadOption

    refuse_output_over_input(out, "--out", data=data, future=future)
    estimator = shopfloor.load(model)
    set_date_order(estimator, dayfirst)
    takes_future = "future" in inspect.signature(estimator.predict_file).parameters
    if future is not None and not takes_future:
        raise BadOption(f"--future is for forecasting models; this is a {estimator.task_name} model")
    extra = {"future": future} if takes_future else {}
    count = estimator.predict_file(data, out, chunk_rows=chunk_rows, **extra)
    stderr().print(f"[green]wrote[/] {plain(out)} ({count} {estimator.predicted_items})")


@app.command()
@friendly
def explain(model: ModelOpt, data: DataOpt, out: Annotated[Path, typer.Option("--out", help=".csv or .parquet")],
            dayfirst: DayFirstOpt = None):
    """Attributions for every prediction: per feature, per sensor for RUL, heatmap overlays for images."""
    import shopfloor

    refuse_output_over_input(out, "--out", data=data)
    estimator = shopfloor.load(model)
    set_date_order(estimator, dayfirst)
    count = estimator.explain_file(data, out)
    stderr().print(f"[green]wrote[/] {plain(out)} ({count} {estimator.explained_items})")


@app.command()
@friendly
def export(model: ModelOpt, out: Annotated[Path, typer.Option("--out", help="ONNX file to write.")],
           format: Annotated[str, typer.Option("--format", help="Only 'onnx' for now.")] = "onnx",
           data: Annotated[Path | None, typer.Option("--data", help="Rows to check ONNX against torch on; with --int8 "
                                                     "the labelled calibration set.")] = None,
           int8: Annotated[bool, typer.Option("--int8", help="Also write OUT's int8 twin (OUT.int8.onnx) when the metric "
                                              "on --data stays within tolerance; report size, speed, metric.")] = False,
           rul: Annotated[Path | None, typer.Option("--rul", help=RUL_TRUTH_HELP)] = None,
           label: Annotated[str | None, typer.Option("--label", help=LABEL_TRUTH_HELP)] = None):
    """Export a model for edge devices (ONNX, preprocessing inside the graph)."""
    import shopfloor
    from shopfloor.errors import BadOption

    if format.lower() != "onnx":
        raise BadOption(f"unknown export format '{format}'; supported: onnx")
    if int8 and data is None:
        raise BadOption("--int8 needs --data: labelled data to calibrate on and to check the metric against float")
    truth = one_truth(rul, label)
    if truth is not None and not int8:
        raise BadOption("--rul and --label are for --int8 (the truth its metric is checked against); the float "
                        "export's check against torch needs none")
    estimator = shopfloor.load(model)
    if int8:
        from shopfloor.kits.quantise import export_int8, report_lines

        refuse_output_over_input(out, "--out", data=data, rul=rul)
        for line in report_lines(export_int8(estimator, out, data, truth)):
            stderr().print(plain(line))
        return
    estimator.export_onnx(out)
    message = f"[green]wrote[/] {plain(out)}"
    if data is not None:
        difference = estimator.onnx_parity(out, data)
        message += f"; ONNX Runtime vs torch max abs difference {difference:.2e}"
    stderr().print(message)


@app.command()
@friendly
def report(model: ModelOpt, out: Annotated[Path, typer.Option("--out", help="HTML file to write.")],
           data: Annotated[Path | None, typer.Option("--data", help="Labelled data (or test histories) to evaluate on.")] = None,
           rul: Annotated[Path | None, typer.Option("--rul", help="RUL models: true RUL per test unit.")] = None,
           label: Annotated[str | None, typer.Option(
               "--label", help="Monitoring models: the 0/1 column of known anomalies in the data.")] = None,
           dayfirst: DayFirstOpt = None):
    """One self-contained HTML page: metrics, curves, feature importance (RUL: intervals, degradation curves;
    monitoring: sensors and score over time, events)."""
    import shopfloor

    refuse_output_over_input(out, "--out", data=data, rul=rul)
    truth = one_truth(rul, label)
    estimator = shopfloor.load(model)
    set_date_order(estimator, dayfirst)
    estimator.write_report(out, data, truth)
    stderr().print(f"[green]wrote[/] {plain(out)}")


@app.command()
@friendly
def info(model: ModelOpt):
    """What a model folder holds: task, targets, features, metrics."""
    from shopfloor.artifacts import read_manifest
    from shopfloor.tasks import estimator_class

    manifest = read_manifest(model)
    cls = estimator_class(manifest.get("task", "?"), source=str(model))
    try:
        summary = cls.summary(manifest)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as err:  # a state of the wrong shape
        from shopfloor.errors import NotAModel

        raise NotAModel(f"{model}'s manifest.json lacks what a {manifest['task']} model records ({type(err).__name__}: "
                        f"{err}); the folder is damaged") from None
    console = stdout()
    console.print(f"[bold]{plain(model)}[/]: {plain(summary['headline'])}, shopfloor {summary['shopfloor_version']}, "
                  f"saved {summary['created']}")
    for line in summary["lines"]:
        console.print(plain(line))
    console.print(metrics_table(cls.validated_on, summary["metrics"]["validation"] or {}))


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
    from shopfloor.demo import run_demo

    run_demo(out, stdout(), quick=quick, line=line, port=port, serve_seconds=serve_seconds)
