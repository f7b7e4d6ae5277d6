"""ONNX export of a diagnosis model: raw windows in, class probabilities and novelty out, and its parity check.

The per-channel normalisation, both front ends, the temperature and the unknown verdict's distances are in the
graph, so an edge box gives Python's answers from the samples themselves:

    windows       float32 [N, channels, window]: samples in plant units at the model's rate (resample first)

and gets `probabilities` float32 [N, classes] (in the order of the `classes` metadata) and `novelty` float32 [N]
(a window is unknown when its novelty is above 1).

Metadata: the keys every shopfloor file carries (`shopfloor.kits.onnx`) and the model's own: `classes`,
`channels` (JSON lists), `window` and `rate` (Hz, empty when the model was trained without rates).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
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

OUTPUTS = ("probabilities", "novelty")
INPUT_CONTRACT = "windows [N, channels, window]: samples in plant units at the model's rate"


def export_onnx(model, path: str | os.PathLike, opset: int = 18) -> Path:
    """Write a fitted DiagnoseModel as one ONNX graph; returns its path."""
    path = check_request(model, path, opset)
    net = frozen_copy(model.net_).use_matrices()  # ONNX has no complex numbers: spectra as matrix products
    example = (torch.randn(EXAMPLE_ROWS, len(model.channels_), model.window),)
    proto, exporter = export_module(net, example, opset, ["windows"], list(OUTPUTS))
    proto.graph.name = "shopfloor fault diagnosis"
    facts = file_facts(model, exporter, OUTPUTS, INPUT_CONTRACT) | {
        "classes": json.dumps(model.classes_), "channels": json.dumps(model.channels_), "window": str(model.window),
        "rate": "" if model.sample_rate_ is None else f"{model.sample_rate_:g}"}
    return write_onnx(proto, path, facts)


def check_parity(model, onnx_path: str | os.PathLike, data) -> float:
    """Largest absolute difference between onnxruntime and torch, over both outputs, on the windows of `data`."""
    windows = model.windows_of(data)[1].astype(np.float32)
    got = run_onnx(onnx_path, {"windows": windows})
    probabilities, novelty = model.score_windows(windows)
    return max(largest_difference(onnx_path, got["probabilities"], probabilities),
               largest_difference(onnx_path, got["novelty"], novelty))
