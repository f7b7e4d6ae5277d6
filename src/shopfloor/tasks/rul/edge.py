"""The RUL model's edge hooks (`Estimator.edge_hooks`): int8 export and the robustness report.

Int8: quantised dynamically. The network is recurrent and linear (matrix products over a window of
readings), which ONNX Runtime's dynamic mode covers; its activations follow the unit's age and operating
condition, a range a per-batch measurement tracks better than a calibration set fixed once.
"""

from __future__ import annotations

import numpy as np

from shopfloor.tasks.rul.export import INPUTS

DYNAMIC_REASON = ("a recurrent and linear net: dynamic quantisation covers its matrix products and measures the "
                  "activations' range per batch, which follows the units' ages and operating conditions")
MAX_WINDOWS = 4000  # run-to-failure histories: windows spread over every unit, enough for a stable RMSE


def edge_data(model, data, truth=None):
    """RMSE of the estimate. With `truth` (each test unit's true remaining life): at each unit's last cycle, as
    `evaluate` scores it; without: the histories are runs to failure, scored at every cycle (at most MAX_WINDOWS,
    spread at random, seed 0) against the remaining life capped as in training."""
    from shopfloor.data.runs import read_rul
    from shopfloor.kits.quantise import EdgeData

    if truth is not None:
        inputs, units = model.last_windows(data)
        rul = read_rul(truth, list(units), source_units=str(data))
    else:
        runs = model._checked_runs(data)
        inputs, remaining, _, _ = model._windows(runs)
        rows = np.sort(np.random.default_rng(0).permutation(len(remaining))[:MAX_WINDOWS])
        inputs, rul = tuple(x[rows] for x in inputs), np.minimum(remaining[rows], model.rul_cap)
    feeds = {name: x.numpy() for name, x in zip(INPUTS, inputs, strict=True)}

    def rmse(outputs: dict[str, np.ndarray]) -> float:
        return float(np.sqrt(np.mean((outputs["rul"][:, 0] - rul) ** 2)))

    return EdgeData(feeds, rmse, "rmse", "dynamic", DYNAMIC_REASON, items="windows" if truth is None else "units",
                    speed_batch=64)
