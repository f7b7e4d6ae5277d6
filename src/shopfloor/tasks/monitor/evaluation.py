"""A monitor model's flags against known anomalies, per machine in time order, pooled over machines."""

from __future__ import annotations

import numpy as np

from shopfloor.tasks.monitor.history import SensorHistory, machine_rows
from shopfloor.tasks.monitor.metrics import changepoints, counts, event_counts, event_metrics, nab_parts, nab_score, row_metrics


def evaluate_history(history: SensorHistory, flagged: np.ndarray, nab_window: float) -> dict[str, float]:
    """Row-wise metrics with their counts, event_f1, detection_delay (median) and NAB scores. The true
    changepoints are where the label turns on or off, the detected ones where the flag does, with a window
    of `nab_window` (time units) after every true changepoint."""
    truth = history.label.astype(bool)
    totals = counts(truth, flagged)
    out = {**row_metrics(**totals), **{k: float(v) for k, v in totals.items()}}
    events, nab = [], []
    for rows in machine_rows(history):
        order = rows[np.argsort(history.seconds[rows], kind="stable")]
        t, y, f = history.seconds[order], truth[order], flagged[order]
        events.append(event_counts(y, f, t))
        if y.any():
            nab.append(nab_parts(changepoints(y), changepoints(f), t, nab_window))
    out.update(event_metrics(events))
    if nab:
        out.update(nab_score(nab))
    return out
