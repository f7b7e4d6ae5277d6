"""The table model's edge hooks (`Estimator.edge_hooks`): int8 export and the robustness report.

Int8: quantised dynamically. The network is an MLP (with category embeddings): matrix products that ONNX
Runtime's dynamic mode quantises, with activation ranges measured per batch; the graph's table preparation
(text categories, missing values) stays in float and text.
"""

from __future__ import annotations

import numpy as np

DYNAMIC_REASON = ("an MLP: dynamic quantisation covers its matrix products and measures the activations' range "
                  "per batch; the table preparation in the graph stays as it is")
MAX_ROWS = 20_000


def labelled_rows(model, data):
    """The labelled rows of `data` (at most MAX_ROWS, the first ones) and their encoded targets."""
    from shopfloor.data.targets import encode_labels
    from shopfloor.errors import ColumnMissing
    from shopfloor.tasks.base import as_frame

    frame, source = as_frame(data)
    missing = [t for t in model.targets if t not in frame.columns]
    if missing:
        raise ColumnMissing(f"{source} lacks the target column(s) {missing} that the metric is measured on")
    frame = frame[~frame[model.targets].isna().any(axis=1)].head(MAX_ROWS)
    return frame, encode_labels(frame, model.targets, model.kind_, model.classes_)


def edge_data(model, data, truth=None):
    """F1 of the first yes/no target's decision, accuracy of a multiclass decision, RMSE of a regression's first
    target."""
    from shopfloor.kits.quantise import EdgeData
    from shopfloor.tasks.tabular.export import onnx_inputs

    model._check_fitted()
    model.refuse_truth(truth)
    frame, y = labelled_rows(model, data)
    kind = model.kind_

    def score(outputs: dict[str, np.ndarray]) -> float:
        if kind == "regression":
            return float(np.sqrt(np.mean((outputs["values"][:, 0] - y.reshape(len(y), -1)[:, 0]) ** 2)))
        decision = outputs["decision"].reshape(len(y), -1)[:, 0]
        truth = y.reshape(len(y), -1)[:, 0]
        if kind == "multiclass":
            return float(np.mean(decision == truth))
        from sklearn.metrics import f1_score

        return float(f1_score(truth.astype(int), decision.astype(int), zero_division=0))

    metric = {"regression": "rmse", "multiclass": "accuracy"}.get(kind, "f1")
    return EdgeData(onnx_inputs(model, frame), score, metric, "dynamic", DYNAMIC_REASON, speed_batch=256)


def robustness_probe(model, data, truth=None):
    """The numeric and date inputs as raw numbers (categories held as they came); loss: the training loss of the
    first target (cross-entropy, or squared error for a regression); metric as for int8 export."""
    import torch

    from shopfloor.kits.sampling import spread_rows
    from shopfloor.robustness.probe import MAX_ROWS, Probe, per_input

    model._check_fitted()
    model.refuse_truth(truth)
    frame, y = labelled_rows(model, data)
    rows = spread_rows(len(frame), MAX_ROWS)
    frame, y = frame.iloc[rows], y[rows]
    numbers, codes = model.schema_.to_arrays(frame)
    codes = torch.from_numpy(codes)
    truth = torch.from_numpy(np.asarray(y).reshape(len(y), -1)[:, 0].astype(np.float32))
    net = model.net_.eval()
    kind, threshold = model.kind_, (model.thresholds_ or [0.5])[0] if model.kind_ == "binary" else None

    def loss(outputs, rows: slice):
        if kind == "regression":
            return torch.mean((outputs[:, 0] - truth[rows]) ** 2)
        if kind == "multiclass":
            return torch.nn.functional.nll_loss(torch.log(outputs.clamp_min(1e-7)), truth[rows].long())
        return torch.nn.functional.binary_cross_entropy(outputs[:, 0].clamp(1e-7, 1 - 1e-7), truth[rows])

    def metric(outputs) -> float:
        if kind == "regression":
            return float(torch.sqrt(torch.mean((outputs[:, 0] - truth) ** 2)))
        if kind == "multiclass":
            return float(torch.mean((outputs.argmax(1) == truth.long()).float()))
        from sklearn.metrics import f1_score

        return float(f1_score(truth.numpy().astype(int), (outputs[:, 0] >= threshold).numpy().astype(int), zero_division=0))

    spread, typical = per_input(numbers, 1)
    return Probe(torch.from_numpy(numbers), lambda raw: net(raw, codes),
                 loss, metric, {"regression": "rmse", "multiclass": "accuracy"}.get(kind, "f1"),
                 kind != "regression", "table", spread, list(model.schema_.numeric + model.schema_.dates), 1, typical)
