"""`shopfloor.spark.train_per_group`: one model per machine (line, plant), trained on Spark, kept in a registry.

Each group's rows meet in one Python worker (`applyInPandas`), which fits the task's estimator on them with
the given options and hands back the model folder's two files as bytes. The driver adds them to the registry
one group at a time (the registry's lock makes that safe, and the executors need not see its folder). A group
with fewer than `min_rows` rows, or whose data the estimator refuses (one class only, a constant sensor),
is skipped: one warning lists every skipped group and why, and the other groups' models are kept.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from shopfloor.artifacts import MANIFEST, WEIGHTS
from shopfloor.errors import ColumnMissing, warn
from shopfloor.spark.session import require_spark
from shopfloor.spark.shipping import model_files, write_model_files

RESULT_SCHEMA = "`group` string, status string, reason string, seconds double, manifest binary, weights binary"


def train_per_group(df, group: str, task: str, options: dict, registry: str | os.PathLike, *, min_rows: int = 20,
                    promote: bool = True) -> pd.DataFrame:
    """Train `task` with `options` on each `group` of `df`; returns one row per group: group, status ('trained'
    or 'skipped'), reason, seconds, version (in the registry, under the group's name)."""
    require_spark()
    from shopfloor.errors import BadOption
    from shopfloor.registry import Registry
    from shopfloor.tasks import TASKS, estimator_class

    if task not in TASKS:
        raise BadOption(f"unknown task '{task}' (known: {', '.join(TASKS)})")
    estimator_class(task)().set_params(**options)  # an unknown option: one line before any Spark job
    if group not in df.columns:
        raise ColumnMissing(f"the Spark DataFrame has no group column '{group}' (its columns: {', '.join(df.columns)})")
    store = Registry(registry, create=True)
    options = dict(options)

    def train_group(frame: pd.DataFrame) -> pd.DataFrame:
        return fit_one(frame, group, task, options, min_rows)

    trained = df.groupBy(group).applyInPandas(train_group, RESULT_SCHEMA)
    rows = []
    for row in trained.toLocalIterator():  # one model at a time on the driver
        version = None
        if row["status"] == "trained":
            version, reason = add_to_registry(store, row, promote)
            row = {**row.asDict(), "status": "trained" if version else "skipped", "reason": reason}
        else:
            row = row.asDict()
        rows.append({"group": row["group"], "status": row["status"], "reason": row["reason"],
                     "seconds": row["seconds"], "version": version})
    summary = pd.DataFrame(rows, columns=["group", "status", "reason", "seconds", "version"]).sort_values("group")
    skipped = summary[summary["status"] == "skipped"]
    if len(skipped):
        warn(f"{len(skipped)} of {len(summary)} groups were not trained: "
             + "; ".join(f"{g} ({r})" for g, r in zip(skipped["group"], skipped["reason"], strict=True)))
    return summary.reset_index(drop=True)


def fit_one(frame: pd.DataFrame, group: str, task: str, options: dict, min_rows: int) -> pd.DataFrame:
    """One group's model, in a Python worker: its files as bytes, or why it was skipped."""
    import time

    import torch

    from shopfloor.errors import ShopfloorError
    from shopfloor.tasks import estimator_class

    torch.set_num_threads(1)
    name = str(frame[group].iloc[0])
    started = time.perf_counter()
    if len(frame) < min_rows:
        return result(name, "skipped", f"{len(frame)} rows, fewer than {min_rows}", started)
    try:
        model = estimator_class(task)(**{"progress": False, **options}).fit(frame.drop(columns=[group]))
    except ShopfloorError as err:
        return result(name, "skipped", " ".join(str(err).split()), started)
    with tempfile.TemporaryDirectory(prefix="shopfloor-fleet-") as scratch:
        files = model_files(model.save(Path(scratch) / "model"))
        return result(name, "trained", "", started, files[MANIFEST], files[WEIGHTS])


def result(name: str, status: str, reason: str, started: float, manifest: bytes | None = None,
           weights: bytes | None = None) -> pd.DataFrame:
    import time

    return pd.DataFrame({"group": [name], "status": [status], "reason": [reason],
                         "seconds": [time.perf_counter() - started], "manifest": [manifest], "weights": [weights]})


def add_to_registry(store, row, promote: bool) -> tuple[int | None, str]:
    """The group's model added as the next version of the group's name; (None, why) when the name or the
    model is refused."""
    from shopfloor.errors import ShopfloorError

    with tempfile.TemporaryDirectory(prefix="shopfloor-fleet-") as scratch:
        folder = write_model_files({MANIFEST: bytes(row["manifest"]), WEIGHTS: bytes(row["weights"])},
                                   Path(scratch) / "model")
        try:
            return store.add(row["group"], folder, promote=promote), ""
        except ShopfloorError as err:
            return None, " ".join(str(err).split())
