"""The report page of a forecasting model: history and forecast fan, backtest errors by horizon, coverage.

With data (a history), the page forecasts the end of every series (the fan: the point forecast and the widest
central interval, after the last part of the history) and backtests the data's last fifth (`evaluate`'s
backtest): its metrics, MAE by horizon step and the coverage of every interval against its nominal level.
Without data it shows what the model keeps from training: the held-out coverage before and after the
conformal calibration, and the training log. A model with known covariates draws its fan with the known
covariates held at their last values (the page takes no future file), which the caption says.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from shopfloor.kits.page import (
    escape,
    figure_to_img,
    label,
    metrics_table,
    new_figure,
    number,
    page_header,
    plots,
    section,
    table,
    training_log_section,
    write_page,
)
from shopfloor.tasks.forecast.conformal import intervals
from shopfloor.tasks.forecast.history import step_words

FANS = 6  # series x targets drawn; more cannot be read on one page
WORDS = {
    "mase": "mean absolute error over the naive one-step error of each series' history before the backtest",
    "mae": "mean absolute error, in the target's units", "rmse": "root mean squared error, in the target's units",
    "smape": "symmetric mean absolute percentage error (0-200)",
    "quantile_loss": "mean pinball loss over the quantiles, in the target's units; lower is better",
    "coverage_error": "mean gap between every interval's coverage and its nominal level",
}


def write_report(model, path: str | os.PathLike, data=None) -> Path:
    model._check_fitted()  # noqa: SLF001 - the estimator's own check
    facts = {"Targets": ", ".join(model.target_columns_), "Series": f"{len(model.series_ids_)}"
             + (f" ({model.series_column_})" if model.series_column_ else ""),
             "Step": step_words(model.step_, model.stamped_), "Look-back / horizon": f"{model.lookback} / {model.horizon} steps",
             "Quantiles": ", ".join(f"{q:g}" for q in model.levels),
             "Known covariates": ", ".join(model.known_columns_) or "none",
             "Past-only covariates": ", ".join(model.past_columns_) or "none"}
    parts = []
    if data is not None:
        history = model.read(data)
        origin = f"backtest of the last fifth of {history.source}"
        parts.append(_fan_section(model, history, data))
        parts.append(_backtest_sections(model, data))
    else:
        origin = "the held-out end of the training history"
    parts.append(section("Held-out calibration", '<p class="note">Coverage of the held-out windows before and after '
                         "the conformal offsets (after: in-sample, the offsets were set on these windows).</p>"
                         + metrics_table(model.validation_metrics_ or {}, WORDS)))
    parts.append(training_log_section([{k: v for k, v in e.items() if k != "history"} for e in model.training_log_],
                                      '<p class="note">Early stopping on the held-out windows\' loss.</p>'))
    body = page_header(f"Forecasting: {', '.join(model.target_columns_)}", facts, model.train_seconds_ or 0.0, origin)
    return write_page(path, f"shopfloor forecast report: {', '.join(model.target_columns_)}", body + "".join(parts))


def _fan_section(model, history, data) -> str:
    import torch

    from shopfloor.tasks.forecast.windows import last_windows

    model.check_lookback(history)
    series = torch.as_tensor(model.series_index(history))
    with torch.inference_mode():
        out = model.net_(*last_windows(model, history), series).numpy()
    low, high, nominal = (intervals(model.levels) or [(0, len(model.levels) - 1, 0.0)])[0]
    images = []
    shown = history.lengths()
    for s in range(len(history.ids)):
        for k, target in enumerate(model.target_columns_):
            if len(images) >= FANS:
                break
            fig, ax = new_figure(5, 3)
            past = min(int(shown[s]), 3 * model.lookback)
            t = np.arange(-past + 1, 1)
            ax.plot(t, history.values[s][-past:, k], color="#334e68", lw=1, label="history")
            ahead = np.arange(1, model.horizon + 1)
            ax.fill_between(ahead, out[s, :, k, 1 + low], out[s, :, k, 1 + high], color="#2680c2", alpha=.25,
                            label=f"{nominal:.0%} interval")
            ax.plot(ahead, out[s, :, k, 0], color="#2680c2", lw=1.5, label="forecast")
            ax.set_xlabel(f"steps of {step_words(model.step_, model.stamped_)} from the last row")
            ax.legend(fontsize=7)
            ax.grid(alpha=.3)
            name = f"{history.ids[s]}: " if model.series_column_ else ""
            images.append(figure_to_img(fig, label(f"{name}{target}")))
    note = ("The next forecast of every series (at most six series and targets drawn)"
            + ("; known covariates held at their last values" if model.known_columns_ else "") + ".")
    return section("History and forecast fan", f'<p class="note">{escape(note)}</p>' + plots(images))


def _backtest_sections(model, data) -> str:
    from shopfloor.tasks.forecast.backtest import errors_by_horizon, evaluation_start

    rows, metrics = model.backtest(data, evaluation_start(model, data))
    overall = {k: v for k, v in metrics.items() if "/" not in k}
    steps = errors_by_horizon(model, rows)
    fig, ax = new_figure(6, 3)
    ax.plot(list(steps), [v["mae"] for v in steps.values()], marker="o", ms=2, label="MAE")
    ax.plot(list(steps), [v["rmse"] for v in steps.values()], marker="o", ms=2, label="RMSE")
    ax.set_xlabel("horizon step")
    ax.legend(fontsize=8)
    ax.grid(alpha=.3)
    coverage = [[escape(f"{n:.0%}"), number(metrics.get(f"coverage_{n * 100:g}")),
                 escape(f"q{model.levels[lo]:g} .. q{model.levels[hi]:g}")] for lo, hi, n in intervals(model.levels)]
    return (section("Backtest", f'<p class="note">Every origin of the last fifth of the data, '
                    f'{int(metrics["origins"])} origins.</p>' + metrics_table(overall, WORDS))
            + section("Errors by horizon", plots([figure_to_img(fig, "error by steps ahead")], wide=True))
            + section("Interval coverage", table(["nominal", "covered", "between"], coverage, ["number", "number", ""])))

