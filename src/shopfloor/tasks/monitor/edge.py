"""The sensor monitor's edge hooks (`Estimator.edge_hooks`): int8 export and the robustness report.

Both see the readings as the exported graph takes them (`monitor.export`): each machine's run on the model's
grid, cut into pieces of `PIECE` steps, each with the `reach` steps before it as context (the first reading held
before a run's start, the last after its end; only the piece's own steps with a reading are scored).

The metric, by what the data hold:
- a 0/1 label column (the model's own, or one named by `truth`, as for `evaluate`) with both kinds of step:
  `auroc`, the AUROC of the score against it. Not `evaluate`'s row-wise F1: that counts steps that cross the
  threshold, so an int8 score 0.001 off flips a few steps near it and reads as a loss, and the noise curves
  would mix a ranking lost with a threshold moved;
- no label: `flag_agreement`, the share of steps whose flag (score >= 0.5) is the float model's on the same
  readings. It says how far the alarms moved, not whether they are right. Spearman's rank agreement of the
  scores was tried first and dropped: most steps are normal and their scores differ by noise, so it read 0.88
  for an int8 file whose AUROC against the label rose (0.982 to 0.990) and 0.44 under noise of 0.1 spreads,
  which moves no alarm (generated pump, tests/tasks/monitor/monitor_processes.py). Flag agreement is not
  blind to noise where the noise does move alarms: on the demo pumps it reads 0.32 at noise of 0.1 spreads.

Int8: static (QDQ) or dynamic, `METHOD` below says which and why.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

PIECE = 64  # steps scored per piece (a stream scores its newest step with `reach` before it): a day of minutes is
# 23 pieces, enough to calibrate static ranges (`kits.quantise.MIN_CALIBRATION`)
MAX_PIECES = 4000  # int8: 256,000 steps, spread over every run
PROBE_PIECES = 256  # robustness: 16,384 steps, enough for a stable AUROC, fast enough for 2 minutes
METHOD = "static"
LEARNED_OPS = ["Conv"]  # the autoencoder's layers; standardisation, error windows and the squash stay in float
STATIC_REASON = ("a causal convolutional autoencoder: static ranges calibrated once on real readings; dynamic "
                 "quantisation, which measures each convolution's input range per call, ran slower (benchmarks/int8.py)")


@dataclass
class Pieces:
    readings: np.ndarray  # float32 [pieces, sensors, reach + PIECE], fleet units
    scored: np.ndarray  # bool [pieces, reach + PIECE]: a step of the piece's own with a reading
    label: np.ndarray | None  # 0/1 [pieces, reach + PIECE], None without a label
    label_name: str | None


def label_column(model, truth) -> str | None:
    if truth is not None and not isinstance(truth, str):
        model.refuse_truth(truth)
    return truth if isinstance(truth, str) else model.label_column_


def read_pieces(model, data, truth=None, limit: int = MAX_PIECES) -> Pieces:
    """The readings of `data` as `PIECE`-step pieces with context (at most `limit`, drawn at random, seed 0)."""
    from shopfloor.errors import ColumnMissing
    from shopfloor.kits.sampling import spread_rows
    from shopfloor.tasks.monitor.history import read_history, to_grid

    model._check_fitted()
    label = label_column(model, truth)

    def read(label):
        ignore = [c for c in (model.label_column_, *model.constant_sensors_, *model.drop) if c and c != label]
        return read_history(data, model.time_column_, model.machine_column_, label=label, sensors=model.sensor_columns_,
                            ignore=ignore, date_order=model.new_data_date_order())

    try:
        history = read(label)
    except ColumnMissing:
        if truth is not None or label is None:
            raise
        label, history = None, read(None)  # new readings without the training label: scored unlabelled
    grid = to_grid(model._in_fleet_units(history), model.step_, model.max_gap,
                   fill=model.net_.mean.numpy().astype(np.float64))
    has_row = np.zeros(len(grid.values), bool)
    has_row[grid.row_slot] = True
    slot_label = np.zeros(len(grid.values), np.int64)
    if history.label is not None:
        np.maximum.at(slot_label, grid.row_slot, history.label.astype(np.int64))
    reach = model.net_.reach()
    readings, scored, labels = [], [], []
    for segment in grid.segments():
        values, rows, marks = grid.values[segment], has_row[segment], slot_label[segment]
        padded = np.concatenate([np.repeat(values[:1], reach, 0), values, np.repeat(values[-1:], PIECE, 0)])
        for start in range(0, len(values), PIECE):
            steps = np.arange(start - reach, start + PIECE)
            own = (steps >= start) & (steps < len(values))
            readings.append(padded[steps + reach].T)
            scored.append(own & rows[np.clip(steps, 0, len(values) - 1)])
            labels.append(np.where(own, marks[np.clip(steps, 0, len(values) - 1)], 0))
    keep = spread_rows(len(readings), limit)  # stacked after the draw: a long history is not copied whole

    def kept(pieces: list) -> np.ndarray:
        return np.stack([pieces[k] for k in keep])

    return Pieces(kept(readings).astype(np.float32), kept(scored),
                  kept(labels) if history.label is not None else None, label)


def has_both_kinds(pieces: Pieces) -> bool:
    return pieces.label is not None and 0 < pieces.label[pieces.scored].sum() < pieces.scored.sum()


def flag_agreement(flagged: np.ndarray, reference: np.ndarray) -> float:
    return float(np.mean(flagged == reference))


def float_scores(model, readings: np.ndarray) -> np.ndarray:
    """The float model's 0..1 scores [pieces, steps] of the pieces, as the exported graph computes them."""
    import torch

    with torch.no_grad():
        net = model.net_.eval()
        return np.concatenate([net.squash(net(torch.from_numpy(readings[i:i + 64]))[1]).numpy()
                               for i in range(0, len(readings), 64)])


def edge_data(model, data, truth=None):
    """AUROC of the score against the label, or its flags' agreement with the float model's (module docstring)."""
    from sklearn.metrics import roc_auc_score

    from shopfloor.kits.quantise import EdgeData

    pieces = read_pieces(model, data, truth)
    scored = pieces.scored
    if has_both_kinds(pieces):
        truth_steps = pieces.label[scored]

        def score(outputs: dict[str, np.ndarray]) -> float:
            return float(roc_auc_score(truth_steps, outputs["score"][scored]))

        metric = "auroc"
    else:
        reference = float_scores(model, pieces.readings)[scored] >= 0.5

        def score(outputs: dict[str, np.ndarray]) -> float:
            return flag_agreement(outputs["score"][scored] >= 0.5, reference)

        metric = "flag_agreement"
    return EdgeData({"readings": pieces.readings}, score, metric, METHOD, STATIC_REASON, items="pieces",
                    speed_batch=8, op_types=LEARNED_OPS)


def robustness_probe(model, data, truth=None):
    """At most PROBE_PIECES pieces as readings in plant units (fleet units for a fleet judged per machine), sensors
    along axis 1 (stuck: a sensor flat at its median; missing readings are filled before the network, so a
    missing sensor is a stuck one); loss: the raw score pushed the wrong way, down on labelled anomalies and up
    on normal steps (without a label: down on the steps the unperturbed model flags, up on the others); metric:
    `auroc`, or `flag_agreement` with the unperturbed model's flags (module docstring)."""
    import torch
    from sklearn.metrics import roc_auc_score

    from shopfloor.robustness.probe import Probe, per_input

    pieces = read_pieces(model, data, truth, PROBE_PIECES)
    scored = torch.from_numpy(pieces.scored)
    net = copy.deepcopy(model.net_).eval().requires_grad_(False)  # attacks need the inputs' gradient only
    labelled = has_both_kinds(pieces)
    clean_flags = float_scores(model, pieces.readings) >= 0.5
    anomalous = torch.from_numpy(pieces.label if labelled else clean_flags).float()
    push = torch.where(scored, 1 - 2 * anomalous, torch.zeros_like(anomalous))  # +1 raise, -1 lower, 0 not scored
    threshold = float(net.threshold)

    def raw_score(readings):
        return net(readings)[1]

    def loss(outputs, part: slice):
        return torch.sum(push[part] * torch.log(outputs + 1e-6)) / scored[part].sum().clamp_min(1)

    def metric(outputs) -> float:
        got = outputs[scored].numpy()
        if labelled:
            return float(roc_auc_score(pieces.label[pieces.scored], got))
        return flag_agreement(got >= threshold, clean_flags[pieces.scored])  # raw >= threshold: score >= 0.5

    spread, typical = per_input(pieces.readings, 1)
    return Probe(torch.from_numpy(pieces.readings), raw_score, loss, metric, "auroc" if labelled else "flag_agreement",
                 True, "windows", spread, list(model.sensor_columns_), 1, typical, reads_missing=False)
