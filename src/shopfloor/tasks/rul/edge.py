"""The RUL model's edge hooks (`Estimator.edge_hooks`): int8 export and the robustness report.

Int8: quantised statically (QDQ, ranges calibrated on the given windows). Dynamic quantisation, which
measures each product's input range per batch, was the first choice for a recurrent and linear net, but on
C-MAPSS FD001 its int8 file ran at 0.38x the float one's speed (one thread): the network's products are
small, so quantising their inputs at run time costs more than it saves. Static ran 1.2x to 2.6x faster
(two runs, other jobs sharing the cores) with RMSE +0.5 % (benchmarks/int8.py; chosen on the scored FD001
test units, see benchmarks/README.md).
"""

from __future__ import annotations

import numpy as np

from shopfloor.kits.sampling import spread_rows
from shopfloor.tasks.rul.export import INPUTS

STATIC_REASON = ("a net of small matrix products: ranges calibrated once on the given windows (static) run faster "
                 "than ranges measured per batch (dynamic), whose run-time quantising costs more than it saves")
MAX_WINDOWS = 4000  # run-to-failure histories: windows spread over every unit, enough for a stable RMSE


def windows_and_truth(model, data, truth=None) -> tuple[tuple, np.ndarray, str]:
    """The network's inputs and the true remaining life they are scored against, and what an item is. With
    `truth` (each test unit's true remaining life): each unit's last cycle, as `evaluate` scores it; without:
    the histories are runs to failure, scored at every cycle (at most MAX_WINDOWS, spread at random, seed 0)
    against the remaining life capped as in training."""
    from shopfloor.data.runs import read_rul

    if truth is not None:
        inputs, units = model.last_windows(data)
        return inputs, read_rul(truth, list(units), source_units=str(data)), "units"
    runs = model._checked_runs(data)
    inputs, remaining, _, _ = model._windows(runs)
    rows = spread_rows(len(remaining), MAX_WINDOWS)
    return tuple(x[rows] for x in inputs), np.minimum(remaining[rows], model.rul_cap), "windows"


def edge_data(model, data, truth=None):
    """RMSE of the estimate on `windows_and_truth`."""
    from shopfloor.kits.quantise import EdgeData

    inputs, rul, items = windows_and_truth(model, data, truth)
    feeds = {name: x.numpy() for name, x in zip(INPUTS, inputs, strict=True)}

    def rmse(outputs: dict[str, np.ndarray]) -> float:
        return float(np.sqrt(np.mean((outputs["rul"][:, 0] - rul) ** 2)))

    return EdgeData(feeds, rmse, "rmse", "static", STATIC_REASON, items=items, speed_batch=64)


def robustness_probe(model, data, truth=None):
    """The windows' settings and sensors as raw readings (the unit's start and age held as they came); loss:
    squared error of the estimate; metric: RMSE on `windows_and_truth` (at most MAX_ROWS windows)."""
    import torch

    from shopfloor.robustness.probe import MAX_ROWS, Probe, per_input

    inputs, rul, _ = windows_and_truth(model, data, truth)  # the same windows and truth as int8 export
    rows = torch.from_numpy(spread_rows(len(rul), MAX_ROWS))
    history, start, age = (x[rows].float() for x in inputs)
    module = model.estimator_module().eval()
    rul = torch.from_numpy(rul[rows.numpy()].astype(np.float32))

    def loss(outputs, part: slice):
        return torch.mean((outputs - rul[part]) ** 2)

    def metric(outputs) -> float:
        return float(torch.sqrt(torch.mean((outputs - rul) ** 2)))

    spread, typical = per_input(history.numpy(), 2)
    return Probe(history, lambda raw: module(raw, start, age)[:, 0], loss, metric, "rmse", False, "windows",
                 spread, model.setting_columns_ + model.sensor_columns_, 2, typical)
