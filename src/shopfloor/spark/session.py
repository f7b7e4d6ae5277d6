"""A Spark session for the CLI and the benchmarks, and one-line errors when Spark or Java is missing."""

from __future__ import annotations

import os
import shutil

from shopfloor.errors import ShopfloorError

BATCH_ROWS = 100_000  # rows per Arrow batch into a Python worker (see spark_session)


class SparkMissing(ShopfloorError):
    """pyspark or a Java runtime is not installed."""


def require_spark():
    """pyspark, or one line saying how to get it (and Java, which it runs on)."""
    try:
        import pyspark
    except ImportError:
        raise SparkMissing("pyspark is not installed: pip install 'shopfloor[spark]' (it also needs Java 17 or newer)") from None
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise SparkMissing("Spark needs a Java runtime (17 or newer) and none was found: install one (Debian: "
                           "apt-get install openjdk-17-jre-headless) or set JAVA_HOME")
    return pyspark


def spark_session(master: str | None = None, app_name: str = "shopfloor"):
    """The active Spark session, or a new one on `master` (default local[*], every core of this machine).

    Arrow moves the batches between the JVM and Python (mapInPandas needs it). Batches of 100,000 rows (Spark's
    default is 10,000): each batch pays a fixed cost (Arrow to pandas, the model's column checks, building the
    output table, a few small tensors per network layer) that is about 1 us a row at 10,000 rows and under
    0.2 us at 100,000 (benchmarks/scale_spark.py's batch profile), while a batch of AI4I-like rows stays near
    15 MB in pandas. Python workers are reused between tasks (Spark's default, set here so that no cluster
    configuration turns it off): the model is loaded once per worker, not once per task.
    """
    require_spark()
    import sys

    from pyspark.sql import SparkSession

    if (master or "local").startswith("local"):
        # local workers run this interpreter (and its packages), not whatever 'python3' is first on the PATH
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name).master(master or "local[*]")
    builder = (builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(BATCH_ROWS))
               .config("spark.python.worker.reuse", "true")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", os.environ.get("SHOPFLOOR_SPARK_PARTITIONS", "8")))
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")  # Spark's INFO and WARN lines would bury the command's own
    return session
