"""ONNX export of a sensor-monitoring model: a machine's readings in, the 0..1 score and every sensor's
contribution at every time step out, and its parity check.

Everything between the readings and the score is in the graph (standardisation, the slow sensors judged by
their movement, the causal autoencoder, the error's window, the usual-error scale and the threshold's
squash), so an edge box gives Python's scores from the readings themselves. The caller does only what
`history.to_grid` does before the network in Python: one machine's readings in time order, one every
`step` time units, with no gap longer than `max_gap` steps (a longer gap starts a new sequence) and missing
readings carried forward. Both axes are dynamic: any number of sequences of one length in a batch, any
length, also shorter than `window` (the first reading is repeated before the start, as in Python), and
a stream may send its last `reach` readings and keep the score of the newest.

    readings       float32 [N, sensors, time]: in the plant's units, sensors in the order of `sensors`
    score          float32 [N, time]: 0..1, anomaly at 0.5 and above
    contributions  float32 [N, sensors, time]: 1 = the sensor's usual error on normal rows; the score is
                   largest / (largest + threshold)

Metadata: the keys every shopfloor file carries (`shopfloor.kits.onnx`: shopfloor_version, task =
"monitor", exporter, outputs, input_contract) and the model's own:
    sensors          JSON list of the sensors, in the order of the readings' axis 1
    slow_sensors     JSON list of those judged by their movement within the window, not their level
    time, machine    the time and machine columns the model was trained with (machine "" when none)
    step             the grid's step, in the time column's units (seconds for time stamps)
    max_gap          steps a gap may last before it ends a sequence
    window           steps of history the error is averaged over
    reach            earlier steps a step's score depends on (`MonitorNet.reach()`)
    threshold        the raw score at which `score` is 0.5
    threshold_rule   how the threshold was chosen, in words
    machine_levels   only for a fleet model whose machines are judged against their own levels: JSON
                     {"machines": [...], "gain": [[...]], "offset": [[...]]}, one row per machine and a value
                     per sensor; machine m's readings go in as `readings * gain[m] + offset[m]` (a machine not
                     listed goes in unchanged: judged against the fleet's reference level)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from shopfloor.errors import NotAModel
from shopfloor.kits.onnx import (
    EXAMPLE_ROWS,
    check_request,
    export_module,
    file_facts,
    frozen_copy,
    largest_difference,
    onnx_session,
    read_metadata,
    write_onnx,
)

INPUTS = ("readings",)
OUTPUTS = ("score", "contributions")
DYNAMIC = {"readings": {0: "batch", 2: "time"}, "score": {0: "batch", 1: "time"},
           "contributions": {0: "batch", 2: "time"}}
EXAMPLE_STEPS = 37  # a length no exporter mistakes for a constant, and unlike any size of the network
INPUT_CONTRACT = ("readings [N, sensors, time]: one machine's readings per sequence in time order, one every `step`, "
                  "gaps of at most `max_gap` steps filled with the last reading, sensors in the order of `sensors`, "
                  "plant units; any N and any time (also fewer steps than `window`)")


class ScoreModule(nn.Module):
    """The exported graph: readings -> (score 0..1, contributions), as `MonitorModel.predict` computes them."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, readings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        contributions, raw = self.net(readings)
        return self.net.squash(raw), contributions


def export_onnx(model, path: str | os.PathLike, opset: int = 18) -> Path:
    """Write a fitted MonitorModel as one ONNX graph (the input and outputs of the module docstring)."""
    path = check_request(model, path, opset)
    module = ScoreModule(frozen_copy(model.net_))
    generator = torch.Generator().manual_seed(0)
    sensors = len(model.sensor_columns_)
    example = (model.net_.mean[:, None] + model.net_.std[:, None]
               * torch.randn(EXAMPLE_ROWS, sensors, EXAMPLE_STEPS, generator=generator),)
    proto, exporter = export_module(module, example, opset, list(INPUTS), OUTPUTS, dynamic=DYNAMIC)
    proto.graph.name = "shopfloor sensor monitoring"
    facts = file_facts(model, exporter, OUTPUTS, INPUT_CONTRACT) | {
        "sensors": json.dumps(model.sensor_columns_), "slow_sensors": json.dumps(model.slow_sensors_),
        "time": model.time_column_, "machine": model.machine_column_ or "", "step": repr(float(model.step_)),
        "max_gap": str(model.max_gap), "window": str(model.window), "reach": str(model.net_.reach()),
        "threshold": repr(float(model.net_.threshold)), "threshold_rule": model.threshold_rule_}
    if model.machine_levels_ is not None:
        machines = model.machine_levels_.machines
        gain, offset = model.machine_levels(machines)
        facts["machine_levels"] = json.dumps({"machines": machines, "gain": gain.tolist(), "offset": offset.tolist()})
    return write_onnx(proto, path, facts)


def check_parity(model, onnx_path: str | os.PathLike, data) -> float:
    """The largest difference between onnxruntime and `predict`, on every sequence of `data` (a file or a table)
    as the model puts it on its grid: each machine's run between long gaps, whole, in one graph call.

    Over the scores (0..1) it is the absolute difference; over the contributions, which grow without bound
    in an anomaly, the difference relative to the contribution where that is above 1, so that float32's
    rounding of a contribution of 5,000 does not read as a disagreement."""
    from shopfloor.tasks.monitor.history import to_grid

    sensors = read_metadata(onnx_path).get("sensors")
    if sensors != json.dumps(model.sensor_columns_):
        raise NotAModel(f"{onnx_path} reads the sensors {sensors or '(none named)'}, the model "
                        f"{json.dumps(model.sensor_columns_)}: the file was exported from a different model")
    history = model._in_fleet_units(model._history(data))  # as the caller maps each machine by machine_levels
    grid = to_grid(history, model.step_, model.max_gap, fill=model.net_.mean.numpy().astype(np.float64))
    expected_contributions, raw = model._score_grid(grid)
    with torch.no_grad():
        expected_score = model.net_.squash(torch.as_tensor(raw)).numpy()
    session = onnx_session(onnx_path)
    worst = 0.0
    for segment in grid.segments():
        readings = grid.values[segment].T[None].astype(np.float32)
        exported = dict(zip(OUTPUTS, session.run(list(OUTPUTS), {INPUTS[0]: readings}), strict=True))
        score = largest_difference(onnx_path, exported["score"][0], expected_score[segment])
        contributions = exported["contributions"][0].T
        largest_difference(onnx_path, contributions, expected_contributions[segment])  # refuses another model's file
        relative = np.abs(contributions - expected_contributions[segment]) / np.maximum(
            1.0, np.abs(expected_contributions[segment]))
        worst = max(worst, score, float(relative.max(initial=0.0)))
    return worst
