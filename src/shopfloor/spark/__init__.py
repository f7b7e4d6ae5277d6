"""Plant-scale scoring and fleet training on Apache Spark (the optional extra `shopfloor[spark]`).

- `predict(df, model_dir)`: a Spark DataFrame scored by any saved model, as `shopfloor predict` scores a file:
  `mapInPandas` for table rows and images, `applyInPandas` grouped by unit for run histories (RUL) and by
  machine for a monitoring model's readings; the model folder travels to each executor once (a broadcast of
  its two files) and is loaded once per Python worker;
- `train_per_group(df, group, task, options, registry)`: one model per machine (line, plant) trained where the
  group's rows are (`applyInPandas`), each added to a model registry under its group's name; a group too
  small to train is skipped with a warning that lists the groups.

Spark and Java are needed only here: `import shopfloor` never imports pyspark.
"""

from __future__ import annotations

from shopfloor.spark.fleet import train_per_group
from shopfloor.spark.scoring import predict
from shopfloor.spark.session import spark_session

__all__ = ["predict", "spark_session", "train_per_group"]
