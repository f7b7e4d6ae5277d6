"""The registry of tasks, shared by the CLI, the REST service, the stream and the tests.

Each task is a package `shopfloor.tasks.<task>` whose estimator class follows the contract in
`tasks/base.py`. Entries are import paths, so that `shopfloor --help` does not import torch; a
task defined outside shopfloor (a plug-in, a test) is added with `register`.
"""

from __future__ import annotations

import importlib

from shopfloor.errors import NotAModel

TASKS: dict[str, str | type] = {
    "tabular": "shopfloor.tasks.tabular.model:TabularModel",
    "rul": "shopfloor.tasks.rul.model:RULModel",
    "defects": "shopfloor.tasks.defects.model:DefectModel",
    "anomaly": "shopfloor.tasks.anomaly.model:AnomalyModel",
    "optimize": "shopfloor.tasks.optimize.model:ProcessOptimizer",
    "monitor": "shopfloor.tasks.monitor.model:MonitorModel",
    "diagnose": "shopfloor.tasks.diagnose.model:DiagnoseModel",
    "forecast": "shopfloor.tasks.forecast.model:ForecastModel",
}


def register(estimator: type | str, task: str | None = None) -> None:
    """Make a task known to every face: an estimator class, or its import path "package.module:Class"
    (then `task` names it)."""
    if isinstance(estimator, str):
        if not task:
            raise ValueError("register('module:Class') needs the task's name: register(path, task='...')")
        TASKS[task] = estimator
    else:
        TASKS[task or estimator.task_name] = estimator


def estimator_class(task: str, source: str = "the model"):
    if task not in TASKS:
        raise NotAModel(f"{source} is a '{task}' model, which this shopfloor does not know (known: {', '.join(TASKS)})")
    entry = TASKS[task]
    if not isinstance(entry, str):
        return entry
    module, name = entry.split(":")
    return getattr(importlib.import_module(module), name)
