"""The report page of a remaining-useful-life model: the kit's self-contained page, in cycles.

With test run histories and their true RUL the page scores the last cycle of every test unit;
with histories alone it draws their degradation curves; with neither it shows the out-of-fold
validation the model keeps from training. The pieces of the page (CSS, inline PNG figures, tables,
escaping, the atomic write) are the kit's, `shopfloor.kits.page`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from shopfloor.errors import NotFitted
from shopfloor.kits.page import (
    escape,
    figure_to_img,
    importance_section,
    label,
    new_figure,
    number,
    page_header,
    plots,
    section,
    table,
    write_page,
)

CURVE_UNITS = 8  # more lines than this on one plot cannot be told apart
COUNTS = ("units", "cycles")
INSIDE, OUTSIDE, CAP = "#2680c2", "#d64545", "#f0b429"
VALIDATION = ("out-of-fold validation: every cycle of units no network trained on, RUL capped at the training cap "
              "for rmse/mae/nasa_score; coverage against the true RUL")
METRIC_WORDS = {
    "rmse": "root mean squared error of the estimate, in cycles; large misses weigh more",
    "mae": "mean absolute error of the estimate, in cycles",
    "nasa_score": "PHM08 score: late estimates (more life than is left) cost more than early ones; "
                  "summed over units, so it grows with their number; lower is better",
    "coverage": "share of true RUL inside the interval; should be near the nominal {nominal}",
    "interval_width": "mean width of the interval (high - low), in cycles",
    "units": "test units scored",
    "cycles": "cycles scored",
}


def write_report(model, path: str | os.PathLike, data=None, truth=None, source: str | None = None) -> Path:
    """Write the HTML report of a fitted RULModel to `path` and return the path.

    `data`: test run histories, already read (a RunHistory); `truth`: their true RUL per unit (a
    C-MAPSS RUL text file, a CSV or a DataFrame with unit,rul). Both are optional; `source` names
    the histories on the page (their own name when absent).
    """
    if getattr(model, "fingerprint_", None) is None:
        raise NotFitted("the report needs a fitted model: call fit() first or load a saved model")
    runs = data  # read by the model's own reader (RULModel.write_report), once for every section
    name = source or (runs.source if runs is not None else "")
    predictions = model.predict(runs) if runs is not None else None
    actual = None
    if runs is not None and truth is not None:
        from shopfloor.data.runs import read_rul

        actual = read_rul(truth, list(predictions["unit"]), source_units=name)
    notes = []
    if actual is not None:
        metrics = model.evaluate(runs, truth)
        origin = f"{name}: last cycle of each test unit, true RUL as given"
    else:
        metrics, origin = dict(model.validation_metrics_), VALIDATION
        if runs is None and truth is not None:
            notes.append("True RUL was given without the test histories it belongs to, so it is not used.")
        elif runs is not None:
            notes.append(f"No true RUL was given for {name}, so the metrics come from the model's own validation; "
                         "pass the true RUL per unit to score the test units.")
    body = "".join([
        _header(model, origin),
        section("Metrics", f'<p class="note">Computed on {escape(origin)}.</p>'
                + "".join(f'<p class="warning">{escape(n)}</p>' for n in notes)
                + _metrics_table(metrics, model.interval_coverage)),
        _predictions_section(model, predictions, actual),
        _interval_section(model),
        _degradation_section(model, runs, predictions, actual),
        importance_section(model.importance_, "Sensor importance", "sensors",
                           "Attribution in cycles of RUL, averaged in absolute value over a sample of training "
                           "windows: how many cycles of the estimate each sensor accounts for, against the unit as "
                           "it read when new."),
        _training_log_section(model),
    ])
    return write_page(path, "shopfloor report: remaining useful life", body)


def _header(model, origin: str) -> str:
    fingerprint, sensors = model.fingerprint_, model.sensor_columns_
    return page_header("Remaining useful life", {
        "Task": "remaining useful life (cycles left before failure)",
        "Trained on": f"{fingerprint['units']:,} units, {fingerprint['rows']:,} rows from {fingerprint['source']}",
        "Sensors used": f"{len(sensors)}: {', '.join(map(str, sensors))}",
        "Dropped as constant": ", ".join(map(str, model.dropped_sensors_)) or "none",
        "Operating conditions": model.net_.conditions.n_conditions,
        "Window": f"{model.window} cycles",
        "Training cap": f"{model.rul_cap:g} cycles",
        "Ensemble members": model.members,
        "Nominal interval coverage": f"{model.interval_coverage:.0%}",
    }, model.train_seconds_, origin)


def _metrics_table(metrics: dict[str, float], nominal: float) -> str:
    rows = [[escape(name), f"{int(value):,}" if name in COUNTS else number(value),
             escape(METRIC_WORDS.get(name, "").format(nominal=f"{nominal:.0%}"))] for name, value in metrics.items()]
    return table(["metric", "value", "meaning"], rows, ["", "number", "words"])


# -- estimates against the truth ------------------------------------------------------------
def _predictions_section(model, predictions: pd.DataFrame | None, truth: np.ndarray | None) -> str:
    cap = float(model.rul_cap)
    if truth is not None:
        figures = [_units_scatter_figure(predictions, truth, cap), _units_sorted_figure(predictions, truth, cap)]
        return section("Predicted vs true with intervals", plots(figures))
    figures = [_validation_figure(model)]
    if predictions is not None:
        figures.append(_units_sorted_figure(predictions, None, cap))
    return section("Predicted vs true with intervals", plots(figures))


def _columns(predictions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(predictions[c].to_numpy(dtype=float) for c in ("rul", "rul_low", "rul_high"))


def _units_scatter_figure(predictions: pd.DataFrame, truth: np.ndarray, cap: float) -> str:
    estimate, low, high = _columns(predictions)
    inside = (low <= truth) & (truth <= high)
    fig, ax = new_figure(4.6, 3.8)
    for mask, colour, legend in [(inside, INSIDE, f"truth inside the interval ({inside.sum()})"),
                                (~inside, OUTSIDE, f"truth outside ({(~inside).sum()})")]:
        if mask.any():
            ax.vlines(truth[mask], low[mask], high[mask], color=colour, alpha=.4, lw=1.2)
            ax.scatter(truth[mask], estimate[mask], s=16, color=colour, label=legend, zorder=3)
    top = 1.05 * float(max(truth.max(), high.max(), cap))
    ax.plot([0, top], [0, top], "--", color="grey", lw=1, label="estimate = truth")
    ax.axhline(cap, color=CAP, ls=":", lw=1.4, label=f"training cap ({cap:g} cycles)")
    ax.set(xlim=(0, top), ylim=(min(0.0, float(low.min())), top), title="Test units: estimate vs truth",
           xlabel="true remaining useful life (cycles)", ylabel="estimated remaining useful life (cycles)")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=.3)
    return figure_to_img(fig, "One point per test unit at its last cycle, its interval as a bar. A unit with more "
                              "life left than the cap is estimated near the cap by design.")


def _units_sorted_figure(predictions: pd.DataFrame, truth: np.ndarray | None, cap: float) -> str:
    estimate, low, high = _columns(predictions)
    order = np.argsort(truth if truth is not None else estimate, kind="stable")
    x = np.arange(1, len(order) + 1)
    fig, ax = new_figure(4.6, 3.8)
    ax.fill_between(x, low[order], high[order], color=INSIDE, alpha=.18, step="mid", label="interval")
    ax.plot(x, estimate[order], "o-", ms=3, lw=1, color=INSIDE, label="estimate")
    if truth is not None:
        ax.plot(x, truth[order], "o", ms=3.5, color="#1f2933", label="true RUL")
    ax.axhline(cap, color=CAP, ls=":", lw=1.4, label="training cap")
    by = "true RUL" if truth is not None else "estimate"
    ax.set(xlabel=f"test unit, sorted by {by}", ylabel="remaining useful life (cycles)", title="Test units")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=.3)
    return figure_to_img(fig, f"Every test unit at its last cycle, sorted by {by}, with its interval as a band.")


def _validation_figure(model) -> str:
    estimate, low, high = model.validation_outputs_.numpy().astype(float).T
    truth = model.validation_targets_.numpy().astype(float)
    cap = float(model.rul_cap)
    band = pd.DataFrame({"truth": truth, "low": low, "high": high}).groupby("truth").median()
    fig, ax = new_figure(4.6, 3.8)
    ax.fill_between(band.index, band["low"], band["high"], color=INSIDE, alpha=.18, label="interval (median)")
    ax.scatter(truth, estimate, s=5, alpha=.3, color=INSIDE, linewidths=0, label="estimate")
    right = max(float(truth.max()), cap)
    ax.plot([0, cap, right], [0, cap, cap], "--", color=OUTSIDE, lw=1.2, label="truth, capped at the training cap")
    ax.set(xlabel="true remaining useful life (cycles)", ylabel="estimated remaining useful life (cycles)",
           title="Out-of-fold validation")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=.3)
    total = int(model.validation_metrics_.get("cycles", len(truth)))
    return figure_to_img(fig, f"A sample of {len(truth):,} of {total:,} cycles of units no network trained on; "
                              "the band is the median interval at each true RUL.")


def _interval_section(model) -> str:
    """The interval by band of the estimate, on the out-of-fold sample the model keeps: how far it reaches
    and how wide it is near failure and far from it."""
    from shopfloor.tasks.rul.interval import by_band

    bands = model.interval_bands_
    estimate, low, high = model.validation_outputs_.numpy().astype(float).T
    truth = model.validation_targets_.numpy().astype(float)
    rows = []
    for row, below, above in zip(by_band(estimate, truth, low, high, bands["edges"]), bands["below"], bands["above"],
                                 strict=True):
        reach = (f"estimate - {below:.1f} to estimate + {above:.1f}" if bands["around"] == "estimate"
                 else f"P10 - {below:.1f} to P90 + {above:.1f}")
        rows.append([escape(row["band"]), escape(reach), f"{row['count']:,}", number(row["coverage"]),
                     number(row["interval_width"])])
    text = ('<p class="note">Each band of the estimate has its own conformal margins, from cycles of units no '
            "network trained on; a unit near failure gets the margins that units estimated near failure needed. "
            f"Coverage and width on the stored sample of those cycles; nominal coverage {model.interval_coverage:.0%}."
            "</p>")
    by_band = table(["estimate (cycles)", "interval (bounds at least 0)", "cycles", "coverage", "mean width"], rows,
                    ["", "words", "number", "number", "number"])
    return section("Interval by estimate", text + by_band)


# -- degradation over the life of a unit ----------------------------------------------------
def _degradation_section(model, runs, predictions: pd.DataFrame | None, truth: np.ndarray | None) -> str:
    if runs is None:
        return section("Degradation curves", '<p class="note">Pass test run histories (and their true RUL) to '
                                             "draw the estimate and health index of each unit over its cycles.</p>")
    health = model.health(runs)
    # units spread over the range of the truth (or of the estimate), not the first few
    key = truth if truth is not None else predictions["rul"].to_numpy(dtype=float)
    order = np.argsort(key, kind="stable")
    picks = order[np.unique(np.linspace(0, len(order) - 1, min(len(order), CURVE_UNITS)).round().astype(int))]
    units = [(predictions["unit"].iloc[i], None if truth is None else float(truth[i])) for i in picks]
    cap = float(model.rul_cap)
    rul_fig, rul_ax = new_figure(4.6, 3.8)
    health_fig, health_ax = new_figure(4.6, 3.8)
    for unit, last_truth in units:
        rows = health.loc[health["unit"] == unit]
        cycle = rows["time"].to_numpy(dtype=float)
        line, = rul_ax.plot(cycle, rows["rul"], lw=1.3, label=label(f"unit {unit}"))
        if last_truth is not None:
            rul_ax.plot(cycle, np.minimum(last_truth + cycle[-1] - cycle, cap), "--", lw=1, color=line.get_color())
        health_ax.plot(cycle, rows["health"], lw=1.3, color=line.get_color(), label=label(f"unit {unit}"))
    if truth is not None:
        rul_ax.plot([], [], "--", color="grey", lw=1, label="true RUL (capped)")
    rul_ax.set(xlabel="cycle", ylabel="remaining useful life (cycles)", title="Estimated RUL over cycles")
    health_ax.set(xlabel="cycle", ylabel="health index (1 as new, 0 at failure)", ylim=(-0.03, 1.03),
                  title="Health index over cycles")
    for ax in (rul_ax, health_ax):
        ax.legend(fontsize=7, loc="lower left")
        ax.grid(alpha=.3)
    chosen = "spread over the range of true RUL" if truth is not None else "spread over the range of the estimate"
    text = (f'<p class="note">{len(units)} of {len(predictions)} units of {escape(runs.source)}, {chosen}. The estimate '
            "at each cycle uses only that cycle and the ones before it; the health index is the estimate over the training "
            f"cap ({cap:g} cycles), clipped to 0..1.</p>")
    figures = [figure_to_img(rul_fig, "Solid: the estimate at each cycle" + ("; dashed: the true RUL, capped."
                                                                            if truth is not None else ".")),
               figure_to_img(health_fig, "Health index of the same units.")]
    return section("Degradation curves", text + plots(figures))


# -- how it was trained ---------------------------------------------------------------------
def _training_log_section(model) -> str:
    log = model.training_log_[-1] if model.training_log_ else {}  # one grouped network: one record
    loss = log.get("valid_loss")
    words = {"best_epoch": "epoch with the lowest validation error, counted from 0; its weights are kept",
             "epochs": f"epochs run, at most {model.max_epochs}; fewer when early stopping ended training",
             "valid_loss": "mean squared error of the capped estimate on held-out units, over the cap squared"}
    rows = [[escape(k), number(v) if isinstance(v, float) else escape(v), escape(words.get(k, ""))] for k, v in log.items()]
    if isinstance(loss, float) and np.isfinite(loss):
        rows.append([escape("valid rmse"), number(float(np.sqrt(loss)) * model.rul_cap),
                     escape("the same error as cycles: sqrt(valid_loss) x training cap")])
    text = ('<p class="note">All ensemble members train at once, each on its own units, and stop together when '
            "their error on the units they did not train on stops improving.</p>")
    return section("Training log", text + table(["entry", "value", "meaning"], rows, ["", "number", "words"]))
