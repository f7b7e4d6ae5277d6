"""The report page of a diagnosis model: metrics, the confusion matrix, each class's average spectrum and explained
examples (which time span and which frequency band drove the verdict), as one self-contained HTML file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from shopfloor.errors import NotFitted
from shopfloor.kits.page import (
    escape,
    figure_to_img,
    label,
    metrics_table,
    new_figure,
    page_header,
    plots,
    section,
    table,
    write_page,
)

EXAMPLES = 1  # explained windows per class


def write_report(model, path: str | os.PathLike, data=None, truth=None) -> Path:
    """With labelled `data` (a folder of class folders, or a long table) the metrics, the confusion matrix, the
    spectra and the examples come from it; without, the page shows what training measured on held-out windows."""
    if not model.is_fitted:
        raise NotFitted("the report needs a fitted model: call fit() first or load a saved model")
    label_column = truth if isinstance(truth, str) else None
    if truth is not None and label_column is None:
        model.refuse_truth(truth)
    rate = model.sample_rate_
    header = page_header("Fault diagnosis report", {
        "Classes": ", ".join(model.classes_), "Channels": ", ".join(model.channels_),
        "Window": f"{model.window} samples" + (f" at {rate:g} Hz ({model.window / rate:.3g} s)" if rate else ""),
        "Front end": model.front, "Unknown when": model.unknown_rule_},
        model.train_seconds_ or 0.0, "held-out windows of the training data" if data is None else str(data))
    parts = [header]
    if data is None:
        parts.append(section("Metrics", metrics_table(model.validation_metrics_ or {})))
        return write_page(path, "shopfloor report: fault diagnosis", "".join(parts))
    recordings, windows, owner, first = model.windows_of(data, label_column)
    predictions = model.window_table(recordings, owner, first, *model.score_windows(windows))
    if "truth" in predictions:
        from shopfloor.tasks.diagnose.evaluation import diagnosis_metrics

        metrics = {k: v for k, v in diagnosis_metrics(predictions, model.classes_).items() if not k.startswith("confusion")}
        parts += [section("Metrics", metrics_table(metrics)),
                  section("Confusion matrix", '<div style="max-width: 640px">' + plots([_confusion(predictions)]) + "</div>")]
    groups = predictions["truth"] if "truth" in predictions else predictions["class"]
    parts.append(section("Average spectrum of each class", plots([_spectra(windows, groups.to_numpy(), rate)], wide=True)))
    parts.append(_examples(model, windows, predictions, groups))
    return write_page(path, f"shopfloor report: fault diagnosis ({', '.join(model.classes_)})", "".join(parts))


def _confusion(predictions: pd.DataFrame) -> str:
    cells = pd.crosstab(predictions["truth"].astype(str), predictions["class"].astype(str))
    fig, ax = new_figure(1.6 + 0.6 * cells.shape[1], 1.2 + 0.55 * cells.shape[0])
    ax.imshow(cells.to_numpy(), cmap="Blues")
    for (i, j), count in np.ndenumerate(cells.to_numpy()):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if count > cells.to_numpy().max() / 2 else "black")
    ax.set_xticks(range(cells.shape[1]), [label(c) for c in cells.columns], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(cells.shape[0]), [label(c) for c in cells.index], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return figure_to_img(fig, "windows; rows: true class, columns: predicted class")


def _spectra(windows: np.ndarray, groups: np.ndarray, rate: float | None) -> str:
    spectrum = np.abs(np.fft.rfft(windows - windows.mean(-1, keepdims=True), axis=-1)).mean(1)  # over channels
    hz = np.fft.rfftfreq(windows.shape[-1], 1 / (rate or 1.0))
    fig, ax = new_figure(10, 3.6)
    for name in sorted(set(groups)):
        ax.semilogy(hz, spectrum[groups == name].mean(0) + 1e-12, lw=0.8, label=label(name))
    ax.set_xlabel("frequency (Hz)" if rate else "frequency (cycles per sample)")
    ax.set_ylabel("mean |spectrum|")
    ax.legend(fontsize=8, ncols=min(5, len(set(groups))))
    ax.grid(alpha=.3)
    return figure_to_img(fig, "the average magnitude spectrum of each class's windows (all channels)")


def _examples(model, windows: np.ndarray, predictions: pd.DataFrame, groups: pd.Series) -> str:
    from shopfloor.tasks.diagnose.explanations import PIECES, occlusion_table

    picked = np.concatenate([np.flatnonzero(groups.to_numpy() == name)[:EXAMPLES] for name in sorted(set(groups))])
    explained = occlusion_table(model, windows[picked], predictions.iloc[picked].reset_index(drop=True))
    rows = [[escape(row["recording"]), escape(row.get("truth", "")), escape(row["class"]), f"{row['probability']:.3f}",
             "yes" if row["unknown"] else "no", f"{row['top_span_start']:.4g}-{row['top_span_end']:.4g} s",
             f"{row['top_band_low_hz']:.4g}-{row['top_band_high_hz']:.4g} Hz"] for _, row in explained.iterrows()]
    fig, ax = new_figure(10, 3.0)
    width = 0.8 / max(len(explained), 1)
    for i, (_, row) in enumerate(explained.iterrows()):
        ax.bar(np.arange(PIECES) + i * width, [row[f"band_{p + 1}"] for p in range(PIECES)], width,
               label=label(f"{row['recording']} -> {row['class']}"))
    nyquist = (model.sample_rate_ or 1.0) / 2
    ax.set_xticks(np.arange(PIECES) + 0.4, [f"{p * nyquist / PIECES:.0f}-{(p + 1) * nyquist / PIECES:.0f}"
                                            for p in range(PIECES)], fontsize=8)
    ax.set_xlabel("frequency band (Hz)")
    ax.set_ylabel("probability lost without it")
    ax.legend(fontsize=7)
    note = ('<p class="note">Each band (and each eighth of the window) is taken out in turn; what the verdict\'s '
            "probability loses says how much it rested on it.</p>")
    return section("Explained examples", note + table(["recording", "true", "verdict", "probability", "unknown",
                                                       "time span that mattered most", "band that mattered most"],
                                                      rows,
                                                      ["", "", "", "number", "", "", ""])
                   + plots([figure_to_img(fig, "probability lost when each frequency band is taken out")], wide=True))
