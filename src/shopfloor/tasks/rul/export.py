"""ONNX export of a remaining-useful-life model: raw cycles in, estimate and interval out, and its parity check.

As for a table model, what Python does before the network goes into the graph, so that an edge box
gives Python's answers from the readings themselves: the operating-condition normalisation (each
reading against its condition's mean and spread, a missing sensor read as that mean) and the interval
margins of each band of the estimate are part of the module that `RULModel.estimator_module()` builds.
The caller only cuts each unit's cycles into the graph's three inputs:

    history  float32 [N, window, settings + sensors]: the unit's last cycles, oldest first; a shorter
             history is padded at the front with its first cycle
    start    float32 [N, baseline cycles, same columns]: the unit's first cycles, its as-new readings
             (repeat the last one if there are fewer)
    age      float32 [N]: cycles seen

and gets `rul` float32 [N, 3] = estimate, interval low, interval high, in cycles.

Metadata: the keys every shopfloor file carries (`shopfloor.kits.onnx`: shopfloor_version, task = "rul",
exporter, outputs, input_contract) and the model's own:
    columns            JSON list of the settings and sensors, in the order of the inputs' last axis
    window             cycles in `history`
    baseline_cycles    cycles in `start`
    interval_coverage  the share of true values the interval is meant to cover
    interval_bands     JSON: the bands of the estimate and each band's margins, as `interval_bands_`
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from shopfloor.kits.onnx import (
    EXAMPLE_ROWS,
    check_request,
    export_module,
    file_facts,
    frozen_copy,
    largest_difference,
    run_onnx,
    write_onnx,
)

INPUTS = ("history", "start", "age")
OUTPUTS = ("rul", "rul_low", "rul_high")  # the three columns of the graph's one output, `rul`
INPUT_CONTRACT = ("history [N, window, columns]: last cycles oldest first, padded at the front with the first cycle; "
                  "start [N, baseline_cycles, columns]: the first cycles (repeat the last one if fewer); age [N]: "
                  "cycles seen; NaN sensors read as their condition's mean")


def export_onnx(model, path: str | os.PathLike, opset: int = 18) -> Path:
    """Write a fitted RULModel as one ONNX graph (the inputs and output of the module docstring); returns its path."""
    path = check_request(model, path, opset)
    module = frozen_copy(model.estimator_module())
    columns = model.setting_columns_ + model.sensor_columns_
    baseline = max(model.baseline_cycles, 1)
    example = (torch.zeros(EXAMPLE_ROWS, model.window, len(columns)),
               torch.zeros(EXAMPLE_ROWS, baseline, len(columns)),
               torch.full((EXAMPLE_ROWS,), 50.0))
    proto, exporter = export_module(module, example, opset, list(INPUTS), "rul")
    proto.graph.name = "shopfloor remaining useful life"
    facts = file_facts(model, exporter, OUTPUTS, INPUT_CONTRACT) | {
        "columns": json.dumps(columns), "window": str(model.window), "baseline_cycles": str(baseline),
        "interval_coverage": str(model.interval_coverage), "interval_bands": json.dumps(model.interval_bands_)}
    return write_onnx(proto, path, facts)


def check_parity(model, onnx_path: str | os.PathLike, runs) -> float:
    """Largest absolute difference between onnxruntime and torch on each unit's last window of `runs`
    (run histories, a table or a file)."""
    inputs, _ = model.last_windows(runs)
    exported = run_onnx(onnx_path, dict(zip(INPUTS, (x.numpy() for x in inputs), strict=True)))["rul"]
    with torch.no_grad():
        expected = model.estimator_module()(*inputs).numpy()
    return largest_difference(onnx_path, exported, expected)
