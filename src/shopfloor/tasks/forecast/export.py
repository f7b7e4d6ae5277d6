"""ONNX export of a forecasting model: the windows in plant units in, calibrated forecasts in plant units out.

The graph is `forecaster.Forecaster`: per-series standardisation, the network, the conformal offsets, the sorted
quantiles and the way back to plant units. The caller does what `predict` does before it: every series on its
grid of `step`, gaps carried forward, the last `lookback` rows, the calendar features of `calendar`
(`shopfloor.tasks.forecast.calendar.calendar_features`) and the known covariates over look-back and horizon.
The batch axis is dynamic.

    history        float32 [N, lookback, targets + past]    columns in the order of `targets`, then `past`
    known_history  float32 [N, lookback, calendar + known]  the calendar features, then `known`
    known_future   float32 [N, horizon, calendar + known]   the same over the horizon
    series         int64 [N]                                 index into `series_ids`
    forecast       float32 [N, horizon, targets, 1 + quantiles]: the point forecast, then the quantiles

Metadata: the keys every shopfloor file carries, and targets, past, known, calendar (JSON lists), series_ids,
quantiles, time, series, step (the time column's units: seconds for time stamps), lookback and horizon.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from shopfloor.errors import NotAModel
from shopfloor.kits.onnx import (
    check_request,
    export_module,
    file_facts,
    frozen_copy,
    largest_difference,
    onnx_session,
    read_metadata,
    write_onnx,
)
from shopfloor.tasks.forecast.windows import last_windows

INPUTS = ("history", "known_history", "known_future", "series")
OUTPUT = "forecast"
INPUT_CONTRACT = ("history [N, lookback, targets + past], known_history [N, lookback, calendar + known], known_future "
                  "[N, horizon, calendar + known] float32 in plant units on the model's grid; series int64 [N]")


def export_onnx(model, path: str | os.PathLike, opset: int = 18) -> Path:
    path = check_request(model, path, opset)
    module = frozen_copy(model.net_)
    generator = torch.Generator().manual_seed(0)
    targets, past = len(model.target_columns_), len(model.past_columns_)
    known = module.calendar + len(model.known_columns_)
    batch = 3
    center = model.net_.center[:1]
    example = (center[:, None, :targets + past] + torch.randn(batch, model.lookback, targets + past, generator=generator),
               torch.randn(batch, model.lookback, known, generator=generator),
               torch.randn(batch, model.horizon, known, generator=generator),
               torch.zeros(batch, dtype=torch.long))
    proto, exporter = export_module(module, example, opset, list(INPUTS), OUTPUT)
    proto.graph.name = "shopfloor forecasting"
    facts = file_facts(model, exporter, [OUTPUT], INPUT_CONTRACT) | {
        "targets": json.dumps(model.target_columns_), "past": json.dumps(model.past_columns_),
        "known": json.dumps(model.known_columns_), "calendar": json.dumps(model.calendar_cycles_),
        "series_ids": json.dumps(model.series_ids_), "quantiles": json.dumps(list(model.levels)),
        "time": model.time_column_, "series": model.series_column_ or "", "step": repr(float(model.step_)),
        "lookback": str(model.lookback), "horizon": str(model.horizon)}
    return write_onnx(proto, path, facts)


def check_parity(model, onnx_path: str | os.PathLike, data) -> float:
    """The largest difference, relative to the target's spread, between onnxruntime and torch on the window
    ending at every series' last row of `data`."""
    if read_metadata(onnx_path).get("series_ids") != json.dumps(model.series_ids_):
        raise NotAModel(f"{onnx_path} was exported from a model of other series than this one")
    history = model.read(data)
    model.check_lookback(history)
    series = torch.as_tensor(model.series_index(history))
    inputs = last_windows(model, history)
    with torch.inference_mode():
        expected = model.net_(*inputs, series).numpy()
    session = onnx_session(onnx_path)
    feed = dict(zip(INPUTS, [t.numpy().astype(np.float32) for t in inputs] + [series.numpy()], strict=True))
    exported = session.run([OUTPUT], feed)[0]
    largest_difference(onnx_path, exported, expected)  # refuses a file of another shape
    scale = model.net_.scale[series][:, None, :len(model.target_columns_), None].numpy()
    return float(np.max(np.abs(exported - expected) / scale))
