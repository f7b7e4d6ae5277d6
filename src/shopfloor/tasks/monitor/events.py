"""Anomalous rows grouped into events, the unit an engineer acts on: when it started and ended, how bad
it got, and which sensors carried it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shopfloor.tasks.monitor.history import SensorHistory, machine_rows

TOP_EVENT_SENSORS = 5  # sensors named in an event's ranking


def group_events(history: SensorHistory, contributions: np.ndarray, score: np.ndarray, sensors: list[str],
                 gap: float) -> pd.DataFrame:
    """One row per event: machine, start, end, rows, peak_score, peak_time, and `sensors`: the sensors ranked
    by their share of the event's contributions ("Flow 62%, Pressure 21%, ..."), the first also as
    `top_sensor`. Flagged rows of one machine less than `gap` time units apart make one event."""
    records = []
    for rows in machine_rows(history):
        order = rows[np.argsort(history.seconds[rows], kind="stable")]
        flagged = order[score[order] >= 0.5]
        if not len(flagged):
            continue
        t = history.seconds[flagged]
        breaks = np.flatnonzero(np.diff(t) > gap) + 1
        for event in np.split(flagged, breaks):
            records.append(_event(history, event, contributions, score, sensors))
    columns = ([history.machine] if history.machine else []) + ["start", "end", "rows", "peak_score", "peak_time",
                                                                "top_sensor", "sensors"]
    return pd.DataFrame.from_records(records, columns=columns)


def _event(history: SensorHistory, rows: np.ndarray, contributions: np.ndarray, score: np.ndarray,
           sensors: list[str]) -> dict:
    totals = contributions[rows].sum(0)
    shares = totals / max(float(totals.sum()), 1e-12)
    ranked = np.argsort(-shares, kind="stable")[:TOP_EVENT_SENSORS]
    peak = rows[int(np.argmax(score[rows]))]
    record = {"start": history.stamps.iloc[rows[0]], "end": history.stamps.iloc[rows[-1]], "rows": len(rows),
              "peak_score": float(score[peak]), "peak_time": history.stamps.iloc[peak],
              "top_sensor": sensors[ranked[0]],
              "sensors": ", ".join(f"{sensors[j]} {shares[j]:.0%}" for j in ranked)}
    if history.machine:
        record[history.machine] = history.machines[rows[0]]
    return record
