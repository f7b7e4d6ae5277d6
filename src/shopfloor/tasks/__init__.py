"""The registry of estimators, shared by the CLI, the REST service and the tests.

Entries are import paths so that `shopfloor --help` does not import torch.
"""

from __future__ import annotations

import importlib

from shopfloor.errors import NotAModel

TASKS: dict[str, str] = {
    "tabular": "shopfloor.tasks.tabular.model:TabularModel",
    "rul": "shopfloor.tasks.rul.model:RULModel",
    "defects": "shopfloor.tasks.defects.model:DefectModel",
    "anomaly": "shopfloor.tasks.anomaly.model:AnomalyModel",
    "optimize": "shopfloor.tasks.optimize.model:ProcessOptimizer",
}


def estimator_class(task: str, source: str = "the model"):
    if task not in TASKS:
        raise NotAModel(f"{source} is a '{task}' model, which this shopfloor does not know (known: {', '.join(TASKS)})")
    module, name = TASKS[task].split(":")
    return getattr(importlib.import_module(module), name)
