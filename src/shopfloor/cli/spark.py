"""`shopfloor spark predict` and `shopfloor spark train`: the Spark faces of `predict` and `train`.

Both read and write Parquet folders (what a data lake holds) and run on `--master` (local[*] by default, or a
cluster's URL such as spark://host:7077, yarn or k8s://...). The output is written by Spark under a temporary
name and renamed into place when the job has succeeded, so that a failed job leaves no half-written folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from shopfloor.cli.app import ModelOpt, app, friendly, stderr, stdout
from shopfloor.display import plain

spark_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="Score a data lake and train a model per machine on Apache Spark (pip install 'shopfloor[spark]').")
app.add_typer(spark_app, name="spark")

MasterOpt = Annotated[str | None, typer.Option(
    "--master", help="Spark master: local[*] (this machine, the default), spark://HOST:7077, yarn, k8s://...")]
ParquetOpt = Annotated[str, typer.Option("--data", help="A Parquet file or folder of Parquet files (a local path, "
                                         "or a URL Spark reads: hdfs://, s3a://, abfss://).")]


@spark_app.command("predict")
@friendly
def spark_predict(model: ModelOpt, data: ParquetOpt,
                  out: Annotated[str, typer.Option("--out", help="Parquet folder to write the predictions to (a local "
                                                   "path or a URL Spark writes).")],
                  master: MasterOpt = None):
    """Score every row (every unit's history, every machine's readings, every image) of a Parquet data set."""
    import shopfloor.spark as on_spark

    refuse_existing(out)
    session = on_spark.spark_session(master)
    scored = on_spark.predict(read_parquet(session, data), model)
    rows = write_parquet(scored, out)
    stderr().print(f"[green]wrote[/] {plain(out)} ({rows} rows)")


@spark_app.command("train")
@friendly
def spark_train(data: ParquetOpt,
                task: Annotated[str, typer.Option("--task", help="The task of every group's model: tabular, monitor, rul, ...")],
                group: Annotated[str, typer.Option("--group", help="The column naming each model's group (machine, line).")],
                registry: Annotated[Path, typer.Option("--models", help="The model registry (created if absent); each "
                                                       "group's model becomes the next version of the group's name.")],
                option: Annotated[list[str] | None, typer.Option(
                    "--set", help="An estimator option NAME=VALUE (VALUE in JSON when it parses, else text); repeat. "
                    "E.g. --set target=failure --set 'drop=[\"UDI\"]'.")] = None,
                min_rows: Annotated[int, typer.Option("--min-rows", help="Groups with fewer rows are skipped.")] = 20,
                master: MasterOpt = None):
    """Train one model per group (machine, line, plant) where the data is, into a model registry."""
    import shopfloor.spark as on_spark

    options = parse_options(option or [])
    session = on_spark.spark_session(master)
    summary = on_spark.train_per_group(read_parquet(session, data), group, task, options, registry, min_rows=min_rows)
    trained = int((summary["status"] == "trained").sum())
    stdout().print(summary.drop(columns=["seconds"]).to_string(index=False))
    stderr().print(f"[green]trained[/] {trained} of {len(summary)} groups into {plain(registry)}")


def parse_options(pairs: list[str]) -> dict:
    from shopfloor.errors import BadOption

    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise BadOption(f"--set {pair}: give NAME=VALUE, e.g. --set target=failure")
        try:
            options[name.strip()] = json.loads(value)
        except ValueError:
            options[name.strip()] = value
    return options


def is_local(location: str) -> bool:
    return "://" not in location


def read_parquet(session, data: str):
    from shopfloor.errors import DataFileError

    if is_local(data) and not Path(data).exists():
        raise DataFileError(f"{data}: no such Parquet file or folder")
    return session.read.parquet(str(data))


def refuse_existing(out: str) -> None:
    from shopfloor.errors import BadOption

    if is_local(out) and Path(out).exists():
        raise BadOption(f"--out {out} exists: give a new folder (Spark writes a folder of Parquet parts)")


def write_parquet(frame, out: str) -> int:
    """Spark writes under a temporary name beside a local `out`, renamed once the job succeeded (on a cluster's
    storage, Spark's own commit protocol does that); the row count after."""
    import os
    import shutil

    if not is_local(out):
        frame.write.mode("errorifexists").parquet(out)
        return frame.sparkSession.read.parquet(out).count()
    out = Path(out)
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        frame.write.mode("overwrite").parquet(str(temporary))
        os.replace(temporary, out)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return frame.sparkSession.read.parquet(str(out)).count()
