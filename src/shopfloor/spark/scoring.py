"""`shopfloor.spark.predict`: a Spark DataFrame scored by a saved model, row for row what `shopfloor predict` gives.

How the rows reach the model follows what the model reads (its `accepts`), never its task's name:
- table rows: `mapInPandas`, each Arrow batch scored on its own (rows are independent);
- images: `mapInPandas` over a DataFrame with a `path` column (and, from Spark's `binaryFile` source, the
  image bytes in `content`, so executors need not see the files);
- run histories (RUL), a monitoring model's readings and a forecasting model's series (`reads_windows`):
  `applyInPandas` grouped by the model's `group_column` (its unit, machine or series column), since a unit's
  estimate needs its whole history, a reading's score the readings before it and a forecast its series'
  recent steps.

The output's schema comes from scoring a small sample on the driver first: one group, or a few hundred rows.
That also turns a DataFrame that cannot be scored into one line before any Spark job starts. The driver never
collects the data: its memory does not grow with the data's size.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from shopfloor.errors import ColumnMissing
from shopfloor.spark.session import require_spark
from shopfloor.spark.shipping import model_files, model_id, worker_model

SAMPLE_ROWS = 200
IMAGE_COLUMNS = ("path",)


def predict(df, model_dir: str | os.PathLike, *, group: str | None = None):
    """`df` scored by the model in `model_dir`: a Spark DataFrame with the columns `shopfloor predict` writes.

    `group` overrides the column that histories are grouped by (the model's `group_column` by default).
    """
    require_spark()
    import shopfloor

    estimator = shopfloor.load(model_dir)  # on the driver: the columns it needs and the output's schema
    how, group = scoring_plan(estimator, group)
    order = getattr(estimator, "time_column_", None) or ""
    check_columns(df, estimator, how, group, model_dir)
    files = model_files(model_dir)
    shipped, key = df.sparkSession.sparkContext.broadcast(files), model_id(files)
    sample = sample_rows(df, how, group)
    answer = score(estimator, how, in_time_order(sample, order))
    schema, dtypes = output_schema(df.sparkSession, answer)
    if how == "rows":
        df = df.select(*read_columns(df, estimator, answer))

    def score_batches(batches):
        model = worker_model(shipped.value, key)
        for batch in batches:
            yield conform(score(model, how, batch), dtypes)

    def score_group(frame: pd.DataFrame) -> pd.DataFrame:
        return conform(score(worker_model(shipped.value, key), how, in_time_order(frame, order)), dtypes)

    if how == "groups":
        grouped = df.groupBy(group) if group else df.groupBy()
        return grouped.applyInPandas(score_group, schema)
    return df.mapInPandas(score_batches, schema)


def scoring_plan(estimator, group: str | None) -> tuple[str, str | None]:
    """('rows' | 'images' | 'groups', the grouping column) for this model."""
    if estimator.accepts == "images":
        return "images", None
    if estimator.accepts == "runs" or estimator.reads_windows:
        return "groups", group or estimator.group_column
    if estimator.accepts != "rows":
        from shopfloor.errors import NotSupported

        raise NotSupported(f"{estimator.described_as or estimator.task_name} does not score rows of data "
                           f"(it takes {estimator.accepts or 'no input'}); Spark scoring is for table rows, images "
                           "and run histories")
    return "rows", None


def check_columns(df, estimator, how: str, group: str | None, source) -> None:
    """One line naming every column the model needs that the DataFrame lacks."""
    needed = list(IMAGE_COLUMNS) if how == "images" else [*([group] if group else []), *estimator.input_columns]
    missing = [c for c in dict.fromkeys(needed) if c not in df.columns]
    if missing:
        raise ColumnMissing(f"the Spark DataFrame lacks {', '.join(repr(c) for c in missing)}, which the model "
                            f"{source} needs (its columns: {', '.join(df.columns)})")


def read_columns(df, estimator, answer: pd.DataFrame) -> list[str]:
    """The columns a table model reads or hands back (its inputs, and the ids its answers keep): the only ones
    worth moving from the JVM to Python. The AI4I-like rows carry 14 columns, of which the model reads 6."""
    wanted = set(estimator.input_columns) | set(answer.columns)
    if not estimator.input_columns:  # a model that checks its rows itself: send it everything
        return list(df.columns)
    return [c for c in df.columns if c in wanted]


def sample_rows(df, how: str, group: str | None) -> pd.DataFrame:
    """A few rows to score on the driver: one whole group for histories."""
    if how == "groups" and group:
        first = df.select(group).limit(1).collect()
        if first:
            return df.where(df[group] == first[0][0]).toPandas()
    return df.limit(2 if how == "images" else SAMPLE_ROWS).toPandas()


def in_time_order(frame: pd.DataFrame, order: str) -> pd.DataFrame:
    """A unit's readings in time order: Spark's shuffle does not keep the order they were written in."""
    return frame.sort_values(order, kind="stable") if order in frame.columns else frame


def score(estimator, how: str, frame: pd.DataFrame) -> pd.DataFrame:
    if how == "images":
        return score_images(estimator, frame)
    return estimator.predict(frame)


def score_images(estimator, frame: pd.DataFrame) -> pd.DataFrame:
    """Images named by `path` (a local path or a file: URI), or carried in `content` (Spark's binaryFile)."""
    from shopfloor.vision.folders import ImageSet

    names = [str(p) for p in frame["path"]]
    with tempfile.TemporaryDirectory(prefix="shopfloor-images-") as scratch:
        if "content" in frame.columns:
            paths = []
            for i, (name, content) in enumerate(zip(names, frame["content"], strict=True)):
                paths.append(Path(scratch) / f"{i}{Path(name).suffix}")
                paths[-1].write_bytes(bytes(content))
        else:
            paths = [Path(name.removeprefix("file://").removeprefix("file:")) for name in names]
        images = ImageSet(paths=paths, labels=[""] * len(paths), masks=[None] * len(paths), root=Path(scratch))
        table = estimator.predict(images)
    if "file" in table.columns and len(table) == len(names):
        table["file"] = names  # the image's own name, not the worker's temporary copy
    return table


def output_schema(spark, sample: pd.DataFrame):
    """The Spark schema of the predictions, and the pandas dtypes every batch is cast to (a batch whose column
    happens to hold only whole numbers must not turn a float column into an integer one)."""
    return spark.createDataFrame(sample).schema, sample.dtypes.to_dict()


def conform(table: pd.DataFrame, dtypes: dict) -> pd.DataFrame:
    table = table[list(dtypes)]
    return table.astype({c: t for c, t in dtypes.items() if table[c].dtype != t})
