"""The report page of a sensor-monitoring model: each sensor over time with the anomaly bands, the score with
its threshold, the sensors behind every event, and the metrics when the data says where the anomalies were.

The page must stay light on a year of one-minute readings (525,600 rows): every machine's rows are drawn in
at most `MAX_BUCKETS` time buckets, each bucket as the band from its lowest to its highest reading (a spike
of one row stays visible), the score as its highest value, and a bucket is banded when any of its rows is.
The page says when it drew buckets rather than rows. The pieces of the page (CSS, inline PNG figures, tables,
escaping, the atomic write) are the kit's, `shopfloor.kits.page`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from shopfloor.errors import BadOption, ColumnMissing
from shopfloor.kits.page import (
    escape,
    figure_to_img,
    label,
    new_figure,
    number,
    page_header,
    plots,
    section,
    table,
    write_page,
)
from shopfloor.tasks.monitor.events import group_events
from shopfloor.tasks.monitor.history import SensorHistory, machine_rows, read_history

MAX_BUCKETS = 1_500  # time buckets drawn per machine; more rows than this are drawn as each bucket's range
MAX_MACHINES = 4  # machines drawn, those with the most flagged rows first
MAX_PANELS = 12  # sensors drawn per machine, those that carry the most of its events first
MAX_EVENTS = 12  # events with contribution bars, the highest peaks first
EVENT_BARS = 8  # sensors per event's bars
WIDEN = 2  # buckets added on each side of a band drawn from buckets, so that a short event is seen
LINE, FLAGGED, LABELLED, THRESHOLD = "#2680c2", "#d64545", "#f0b429", "#1f2933"
METRIC_WORDS = {
    "f1": "TP / (TP + (FP + FN) / 2), row by row, without point adjustment",
    "precision": "of the rows flagged, the share labelled anomalous",
    "recall": "of the rows labelled anomalous, the share flagged",
    "far": "false alarm rate: of the normal rows, the share flagged",
    "mar": "missed alarm rate: of the anomalous rows, the share not flagged",
    "tp": "anomalous rows flagged", "fp": "normal rows flagged", "fn": "anomalous rows missed",
    "tn": "normal rows left alone",
    "event_f1": "F1 over events: a labelled event is found when one of its rows is flagged",
    "events_true": "labelled events", "events_found": "labelled events with a flagged row",
    "detection_delay": "median time from a labelled event's start to its first flag",
    "nab_standard": "NAB score (standard profile): 100 = every changepoint found at once, 0 = nothing found",
    "nab_low_fp": "NAB score, false alarms weigh double", "nab_low_fn": "NAB score, misses weigh double",
    "nab_missed": "labelled changepoints with no detection in their window",
    "nab_false": "detected changepoints outside every window",
    "held_out_false_alarm_rate": "share of held-out normal training rows above the threshold",
}
COUNTS = {"tp", "fp", "fn", "tn", "events_true", "events_found", "nab_missed", "nab_false"}


def write_report(model, path: str | os.PathLike, data=None, truth=None) -> Path:
    """Write the HTML report of a fitted MonitorModel to `path` and return the path.

    `data`: a history to score (a CSV/Parquet file or a table); `truth`: the name of its 0/1 column of known
    anomalies (the model's own label column when it was trained with one and the data has it). Without data
    the page shows the model and what its training measured.
    """
    model._check_fitted()
    if truth is not None and not isinstance(truth, str):
        model.refuse_truth(truth)
    if data is None:
        if truth is not None:
            raise BadOption(f"--label {truth} names a column of the data: give the data too (--data FILE)")
        origin = "held-out rows of the training history"
        body = _header(model, origin, None) + _metrics_section(model.validation_metrics_ or {}, origin) + \
            section("Sensors over time", '<p class="note">Give a history (--data FILE, and --label COL when it says '
                                         "where the anomalies were) to draw its sensors, scores and events.</p>")
        return write_page(path, "shopfloor report: sensor monitoring", body + _training_section(model))
    history = _read(model, data, truth)
    contributions, score = model._rows(history)
    gap = model.window if model.event_gap is None else model.event_gap
    events = group_events(history, contributions, score, model.sensor_columns_, gap * model.step_)
    if history.label is not None:
        from shopfloor.tasks.monitor.evaluation import evaluate_history

        origin = f"{history.source}, against its label column"
        metrics = evaluate_history(history, score >= 0.5, nab_window=model.window * model.step_)
    else:
        origin = "held-out rows of the training history (the data has no label column)"
        metrics = model.validation_metrics_ or {}
    stamped = pd.api.types.is_datetime64_any_dtype(history.stamps)
    body = "".join([_header(model, origin, history), _metrics_section(metrics, origin, stamped),
                    _timeline_section(model, history, contributions, score),
                    _events_section(model, history, contributions, score, events), _training_section(model)])
    return write_page(path, "shopfloor report: sensor monitoring", body)


def _read(model, data, truth: str | None) -> SensorHistory:
    """The history with its labels: the column named, or the model's own label column when the data has it."""
    if truth is None and model.label_column_:
        try:
            return _read(model, data, model.label_column_)
        except ColumnMissing:  # no labels in this data (or a sensor missing, which the plain reading names again)
            return model._history(data)
    if truth is None:
        return model._history(data)
    ignore = [c for c in (model.label_column_, *model.constant_sensors_, *model.drop) if c and c != truth]
    return read_history(data, model.time_column_, model.machine_column_, label=truth, sensors=model.sensor_columns_,
                        ignore=ignore, date_order=model.new_data_date_order())


# -- what the model is ----------------------------------------------------------------------
def _header(model, origin: str, history: SensorHistory | None) -> str:
    fingerprint = model.fingerprint_ or {}
    stamped = history is not None and pd.api.types.is_datetime64_any_dtype(history.stamps)
    machines = fingerprint.get("machines", 1)
    facts = {
        "Task": "sensor monitoring: a score 0..1 per row (anomaly at 0.5) and the sensors behind it",
        "Trained on": f"{fingerprint.get('rows', 0):,} rows of {machines} machine{'s' if machines != 1 else ''} "
                      f"from {fingerprint.get('source', '?')}, taken as normal",
        "Sensors": f"{len(model.sensor_columns_)}: {', '.join(map(str, model.sensor_columns_))}",
        "Judged by their movement": ", ".join(map(str, model.slow_sensors_)) or "none (every sensor by its level)",
        "Left out as constant": ", ".join(map(str, model.constant_sensors_)) or "none",
        "Time": f"{model.time_column_}, one reading every {_duration(model.step_, stamped)} (median step)"
                + (f"; machine: {model.machine_column_}" if model.machine_column_ else ""),
        "Window": f"{model.window} steps ({_duration(model.window * model.step_, stamped)}); gaps over "
                  f"{model.max_gap} steps start a new sequence",
        "Threshold": f"raw {float(model.net_.threshold):.4g} = score 0.5: {model.threshold_rule_}",
    }
    if history is not None:
        facts["Scored"] = f"{len(history):,} rows of {history.source}"
    return page_header("Sensor monitoring", facts, model.train_seconds_ or 0.0, origin)


def _duration(seconds: float, stamped: bool) -> str:
    """A time in the time column's units for people: seconds as min, h or days when the column holds dates."""
    if not stamped:
        return f"{seconds:g} time units"
    for unit, size in (("day", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def _metrics_section(metrics: dict, origin: str, stamped: bool = False) -> str:
    def shown(name: str, value) -> str:
        if value is None or value != value:
            return "n/a"
        if name in COUNTS:
            return f"{int(value):,}"
        return escape(_duration(value, stamped)) if name == "detection_delay" and stamped else number(value)

    rows = [[escape(name), shown(name, value), escape(METRIC_WORDS.get(name, ""))] for name, value in metrics.items()]
    note = f'<p class="note">Measured on {escape(origin)}; a row is anomalous when its score is at least 0.5.</p>'
    return section("Metrics", note + (table(["metric", "value", "meaning"], rows, ["", "number", "words"])
                                      if rows else '<p class="note">None recorded.</p>'))


# -- sensors and score over time ------------------------------------------------------------
def _timeline_section(model, history: SensorHistory, contributions: np.ndarray, score: np.ndarray) -> str:
    flagged = score >= 0.5
    machines = sorted(machine_rows(history), key=lambda rows: -int(flagged[rows].sum()))
    figures, bucketed = [], False
    for rows in machines[:MAX_MACHINES]:
        order = rows[np.argsort(history.seconds[rows], kind="stable")]
        carried = contributions[order][flagged[order]].sum(0) if flagged[order].any() else np.zeros(len(model.sensor_columns_))
        panels = sorted(range(len(model.sensor_columns_)), key=lambda j: -carried[j])[:MAX_PANELS]
        panels.sort()  # the model's order, among the sensors drawn
        figure, buckets = _timeline_figure(model, history, order, panels, score, flagged)
        figures.append(figure)
        bucketed |= buckets < len(order)
    notes = ["The anomaly bands are the rows scored 0.5 or more (red)"
             + (" and the rows labelled anomalous (hatched yellow)" if history.label is not None else "") + "."]
    if bucketed:
        notes.append(f"Long histories are drawn in at most {MAX_BUCKETS:,} time buckets per machine: each sensor as the "
                     "range of its readings in a bucket, the score as its highest value; a bucket is banded when any of "
                     f"its rows is, and every band is widened by {WIDEN} buckets on each side to be seen.")
    if len(machines) > MAX_MACHINES:
        notes.append(f"{MAX_MACHINES} of {len(machines)} machines are drawn, those with the most flagged rows.")
    if len(model.sensor_columns_) > MAX_PANELS:
        notes.append(f"{MAX_PANELS} of {len(model.sensor_columns_)} sensors are drawn per machine, those that carry "
                     "the most of its flagged rows.")
    text = "".join(f'<p class="note">{escape(n)}</p>' for n in notes)
    return section("Sensors and score over time", text + plots(figures, wide=True))


def _timeline_figure(model, history: SensorHistory, order: np.ndarray, panels: list[int], score: np.ndarray,
                     flagged: np.ndarray) -> tuple[str, int]:
    """One machine: a panel per sensor, the score below with its threshold; bands where rows are flagged."""
    from matplotlib.figure import Figure

    starts = _bucket_starts(len(order))
    times = history.stamps.iloc[order].to_numpy()[starts]
    fig = Figure(figsize=(10, 0.95 * (len(panels) + 1) + 0.7), dpi=110, layout="constrained")
    axes = fig.subplots(len(panels) + 1, 1, sharex=True, squeeze=False)[:, 0]
    bands = [(_bucket_any(flagged[order], starts), dict(facecolor=FLAGGED, alpha=0.25, linewidth=0))]
    if history.label is not None:
        bands.append((_bucket_any(history.label[order] == 1, starts),
                      dict(facecolor="none", hatch="///", edgecolor=LABELLED, linewidth=0)))
    for ax, j in zip(axes, panels, strict=False):
        readings = history.values[order, j]
        low, high = _bucket_range(readings, starts)
        if len(starts) < len(order):
            ax.fill_between(times, low, high, step="post", color=LINE, alpha=0.6, linewidth=0.6)
        else:
            ax.plot(times, readings, color=LINE, lw=0.9)
        ax.set_ylabel(label(model.sensor_columns_[j]), rotation=0, ha="right", va="center", fontsize=8)
    score_ax = axes[-1]
    score_ax.plot(times, _bucket_range(score[order], starts)[1], color=THRESHOLD, lw=0.9, drawstyle="steps-post")
    score_ax.axhline(0.5, color=FLAGGED, ls="--", lw=1)
    score_ax.set(ylim=(0, 1.02))
    score_ax.set_ylabel("score", rotation=0, ha="right", va="center", fontsize=8)
    for ax in axes:
        for flags, style in bands:
            ax.fill_between(times, 0, 1, where=flags, step="post", transform=ax.get_xaxis_transform(), **style)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    machine = "" if history.machines is None else f"machine {history.machines[order[0]]}: "
    flagged_rows = int(flagged[order].sum())
    caption = (f"{machine}{len(order):,} rows, {flagged_rows:,} scored 0.5 or more; the dashed line is the threshold")
    return figure_to_img(fig, caption), len(starts)


def _bucket_starts(rows: int) -> np.ndarray:
    return np.unique(np.linspace(0, rows, min(rows, MAX_BUCKETS), endpoint=False).astype(np.int64))


def _bucket_range(values: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    present = np.where(np.isnan(values), np.nanmean(values) if (~np.isnan(values)).any() else 0.0, values)
    return np.minimum.reduceat(present, starts), np.maximum.reduceat(present, starts)


def _bucket_any(flags: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Whether any row of each bucket is flagged; when rows were bucketed, a band is widened by `WIDEN` buckets
    on each side, or an event of a few hours in a year would be narrower than a pixel."""
    flags = np.asarray(flags, bool)
    found = np.logical_or.reduceat(flags, starts)
    if len(starts) < len(flags):
        found = np.convolve(found, np.ones(2 * WIDEN + 1), mode="same") > 0
    return found


# -- events ---------------------------------------------------------------------------------
def _events_section(model, history: SensorHistory, contributions: np.ndarray, score: np.ndarray,
                    events: pd.DataFrame) -> str:
    if events.empty:
        return section("Events", '<p class="note">No row scored 0.5 or more: no event.</p>')
    shown = events.sort_values("peak_score", ascending=False, kind="stable").head(MAX_EVENTS)
    figures = [_event_figure(model, history, contributions, score, event) for _, event in shown.iterrows()]
    machine = [history.machine] if history.machine else []
    rows = [[escape(event[c]) for c in machine] + [escape(event["start"]), escape(event["end"]), f"{event['rows']:,}",
             number(event["peak_score"]), escape(event["sensors"])] for _, event in events.head(200).iterrows()]
    listing = table([*machine, "start", "end", "rows", "peak score", "sensors by share of the contributions"], rows,
                    [""] * len(machine) + ["", "", "number", "number", "words"])
    more = f" The first 200 of {len(events):,} are listed." if len(events) > 200 else ""
    note = (f'<p class="note">Flagged rows closer than {model.window if model.event_gap is None else model.event_gap} '
            f"steps make one event. Bars: each sensor's share of the event's contributions (1 = a sensor's usual error "
            f"on normal rows), for the {len(shown)} events with the highest peaks.{more}</p>")
    return section(f"Events ({len(events):,})", note + plots(figures) + listing)


def _event_figure(model, history: SensorHistory, contributions: np.ndarray, score: np.ndarray, event) -> str:
    stamps = history.stamps.reset_index(drop=True)
    rows = ((stamps >= event["start"]) & (stamps <= event["end"])).to_numpy() & (score >= 0.5)
    if history.machine:
        rows &= history.machines == event[history.machine]
    totals = contributions[rows].sum(0)
    shares = totals / max(float(totals.sum()), 1e-12)
    ranked = np.argsort(-shares, kind="stable")[:EVENT_BARS]
    fig, ax = new_figure(4.2, 0.7 + 0.28 * len(ranked))
    ax.barh(range(len(ranked)), shares[ranked][::-1], color=FLAGGED)
    ax.set_yticks(range(len(ranked)), [label(model.sensor_columns_[j]) for j in ranked][::-1], fontsize=8)
    ax.xaxis.set_major_formatter(lambda x, _: f"{x:.0%}")
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3, axis="x")
    machine = f"machine {event[history.machine]}, " if history.machine else ""
    return figure_to_img(fig, f"{machine}{event['start']} to {event['end']}: {event['rows']:,} rows, peak score "
                              f"{event['peak_score']:.2f}")


# -- how it was trained ---------------------------------------------------------------------
def _training_section(model) -> str:
    log = model.training_log_[-1] if model.training_log_ else {}
    history = log.get("history") or []
    rows = [[escape("epochs run"), f"{log.get('epochs', len(history))}", escape(f"at most {model.max_epochs}")],
            [escape("best epoch"), f"{log.get('best_epoch', '')}", escape("its weights are kept (counted from 0)")]]
    if history:
        rows.append([escape("last training loss"), number(history[-1].get("train_loss")),
                     escape("squared reconstruction error of normal crops, in standardised units")])
    text = ('<p class="note">The autoencoder learns crops of the normal rows before the held-out share of every '
            "machine's history and stops when the loss on a sample of its own crops no longer falls; the held-out rows "
            "set the usual error of every sensor and the threshold.</p>")
    return section("Training", text + table(["entry", "value", "meaning"], rows, ["", "number", "words"]))

