"""The `shopfloor` command line (Typer): parse, ask the estimator, print with rich.

- `app.py`: the Typer app, one-line errors (exit 2), the options and output helpers the commands share;
- `train.py`: `train tabular|rul|defects|anomaly` and `optimize`, the commands that fit a model;
- `use.py`: `evaluate`, `predict`, `explain`, `export`, `report`, `info` (they ask the saved model's
  estimator and never switch on its task) and `demo`;
- `robust.py`: `robustness` (the metric as the inputs are perturbed);
- `line.py`: `serve`, `stream`, `replay`, `models ...` and `token ...`, the commands for the line;
- `watch.py`: `drift`, new data against the profile a model wrote in training;
- `spark.py`: `spark predict` and `spark train`, scoring and per-group training on Apache Spark.

Each command module registers its commands on `app` when imported; they are imported here in the
order `shopfloor --help` lists them. `app.py` imports none of them, so there is no import cycle.
"""

# isort: off
from shopfloor.cli.app import app, main
from shopfloor.cli import train, use, robust, line, watch, spark  # noqa: F401  (registers the commands, in this order)
# isort: on

__all__ = ["app", "main"]
