"""The diagnosis model's edge hooks (`Estimator.edge_hooks`): int8 export and the robustness report.

Both judge the model as `evaluate` does: accuracy of the most likely class over the non-overlapping windows of
labelled recordings (class sub-folders, or a long table's label column named by `truth`), windows of classes the
model never saw left out.

Int8: the 1-D CNN's convolutions (`LEARNED_OPS`) quantised statically (QDQ, ranges calibrated on the given
windows), as the other CNNs are; everything else stays in float: the spectra (products with the fixed DFT and
Hilbert matrices), the perceptrons and the unknown verdict's distances (`unround_float_readers` keeps the CNN's
rounded input from them). Measured on CWRU (benchmarks/int8.py; accuracy 1.000 in float): without that fix-up
the int8 file kept accuracy 1.000 but turned the unknown verdict of 92 % of the windows; every operator
quantised (per tensor: per channel, ONNX Runtime 1.32 writes a graph it then refuses to run) made the file 3.3x
smaller and took accuracy to 0.28-0.32 (two runs), since the log spectra read small magnitudes that 8 bits cannot hold. The DFT
and Hilbert matrices are most of the file, so this int8 file is hardly smaller than the float one: its gain is
the convolutions' speed.
"""

from __future__ import annotations

import copy

import numpy as np

STATIC_REASON = ("a 1-D CNN over windows of raw samples: static ranges calibrated once on real windows, as for the "
                 "image CNNs; the spectra, the perceptrons and the unknown verdict stay in float")
MAX_WINDOWS = 4000  # int8: windows spread over every recording, enough for a 0.5-point accuracy check
LEARNED_OPS = ["Conv"]  # the 1-D CNN; the spectra, the perceptrons and the distances stay in float
PROBE_WINDOWS = 512  # robustness: an attack's forward and backward passes over every window are its slowest part


def labelled_windows(model, data, truth=None, limit: int = MAX_WINDOWS) -> tuple[np.ndarray, np.ndarray]:
    """Windows [n, channels, window] of the recordings of `data` whose class the model knows (at most `limit`,
    drawn at random, seed 0) and each one's class index. `truth` names a long table's label column."""
    from shopfloor.errors import BadTarget
    from shopfloor.kits.sampling import spread_rows

    label = truth if isinstance(truth, str) else None
    if truth is not None and label is None:
        model.refuse_truth(truth)
    recordings, windows, owner, _ = model.windows_of(data, label)
    source = recordings[0].source if recordings else str(data)
    if label is not None and any(r.label is None for r in recordings):
        raise BadTarget(f"{source}: --label '{label}' gave no fault class to every recording: name the long "
                        "table's label column (a column with the class of every row)")
    if any(r.label is None for r in recordings):
        raise BadTarget(f"{source}: the metric is the accuracy of the fault class, which needs the class of every "
                        "recording: class sub-folders, or a long table's label column")
    known = {name: k for k, name in enumerate(model.classes_)}
    labels = np.array([known.get(str(recordings[i].label), -1) for i in owner])
    if not (labels >= 0).any():
        raise BadTarget(f"{source}: no recording is of a class the model knows ({', '.join(model.classes_)}); "
                        "accuracy cannot be measured")
    rows = np.flatnonzero(labels >= 0)
    rows = rows[spread_rows(len(rows), limit)]
    return windows[rows].astype(np.float32), labels[rows]


def edge_data(model, data, truth=None):
    """Accuracy of the most likely class on `labelled_windows` (at most MAX_WINDOWS)."""
    from shopfloor.kits.quantise import EdgeData

    windows, labels = labelled_windows(model, data, truth)

    def accuracy(outputs: dict[str, np.ndarray]) -> float:
        return float(np.mean(outputs["probabilities"].argmax(1) == labels))

    return EdgeData({"windows": windows}, accuracy, "accuracy", "static", STATIC_REASON, items="windows",
                    speed_batch=32, op_types=LEARNED_OPS, rewrite=unround_float_readers)


def unround_float_readers(graph_file):
    """Give the nodes left in float the tensors their quantised neighbours read, unrounded.

    ONNX Runtime's QDQ quantiser rounds a quantised node's input for every node that reads it: the CNN's input,
    the normalised window, is also what the spectra and the unknown verdict's distances read, and rounded to 8
    bits it turned the verdict of 92 % of CWRU's windows (ONNX Runtime's `DedicatedQDQPair` option did not
    change it). Here every reader of a rounded activation that is not itself quantised reads the original (the
    ONNX model is changed in place and returned, as `EdgeData.rewrite` expects)."""
    graph = graph_file.graph
    constants = {t.name for t in graph.initializer}
    quantised_from = {n.output[0]: n.input[0] for n in graph.node
                      if n.op_type == "QuantizeLinear" and n.input[0] not in constants}
    original = {n.output[0]: quantised_from[n.input[0]] for n in graph.node
                if n.op_type == "DequantizeLinear" and n.input[0] in quantised_from}
    # only a quantised node's inputs: a quantised node's output goes on rounded, as ONNX Runtime fuses it
    inputs_of_quantised = {name for n in graph.node if n.op_type in LEARNED_OPS for name in n.input if name in original}
    for node in graph.node:
        if node.op_type in LEARNED_OPS:
            continue
        for k, name in enumerate(node.input):
            if name in inputs_of_quantised:
                node.input[k] = original[name]
    return graph_file


def robustness_probe(model, data, truth=None):
    """At most PROBE_WINDOWS of `labelled_windows` as samples in plant units, channels along axis 1 (stuck: a
    channel flat at its median, a dead sensor; the network reads no missing samples); loss: cross-entropy of the
    true class; metric: accuracy."""
    import torch

    from shopfloor.robustness.probe import Probe, per_input

    windows, labels = labelled_windows(model, data, truth, PROBE_WINDOWS)
    truth_t = torch.from_numpy(labels)
    net = copy.deepcopy(model.net_).eval().requires_grad_(False)  # attacks need the inputs' gradient only

    def probabilities(raw):  # as the network's forward gives them, without the novelty the metric does not read
        return torch.softmax(net.logits(raw)[0] / net.temperature, dim=1)

    def loss(outputs, part: slice):
        return torch.nn.functional.nll_loss(torch.log(outputs.clamp_min(1e-7)), truth_t[part])

    def metric(outputs) -> float:
        return float(torch.mean((outputs.argmax(1) == truth_t).float()))

    spread, typical = per_input(windows, 1)
    return Probe(torch.from_numpy(windows), probabilities, loss, metric, "accuracy", True, "signals", spread,
                 list(model.channels_), 1, typical, reads_missing=False)
