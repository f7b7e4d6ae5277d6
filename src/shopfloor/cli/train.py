"""`shopfloor train <task>` and `shopfloor optimize`: the commands that fit a model on the user's data.

Each task keeps its own command in `tasks/<task>/command.py` (its options are the task's parameters);
this module gathers them in the order of the task registry, so a new task's package brings its
command with it. Each command parses its options, builds the task's estimator with them, fits it and
prints what the fit found; the model folder is checked before training starts, so that a long fit
never ends in "folder exists". Only the command modules are imported here: no task's estimator (and
no torch) until a command runs.
"""

from __future__ import annotations

import importlib.util

from shopfloor.tasks import TASKS


def command_module(entry: str | type) -> str:
    """`package.command` beside a task's estimator module (`package.model:Class`, or the class itself)."""
    module = entry.split(":")[0] if isinstance(entry, str) else entry.__module__
    return module.rpartition(".")[0] + ".command"


for _entry in TASKS.values():
    _name = command_module(_entry)
    if importlib.util.find_spec(_name) is not None:  # a task may have no command of its own
        __import__(_name)  # (not importlib.import_module: `python -X importtime` would not list it)
