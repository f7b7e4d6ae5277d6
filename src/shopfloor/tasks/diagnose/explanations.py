"""Which time span and which frequency band drove a window's verdict, by taking each out in turn (occlusion).

A span is taken out by setting it to the channel's training mean; a band by removing it from the window's
spectrum. The drop in the predicted class's probability is the span's (band's) importance: a bearing fault
shows as its defect band and the spans that hold its impacts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PIECES = 8  # spans of the window, and bands of its spectrum (equal widths up to the Nyquist frequency)


def occluded(windows: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[pieces, n, channels, window] copies with one span at the mean, and with one band removed."""
    n, _, length = windows.shape
    edges = np.linspace(0, length, PIECES + 1).astype(int)
    spans = np.repeat(windows[None], PIECES, axis=0)
    for p in range(PIECES):
        spans[p, :, :, edges[p]:edges[p + 1]] = mean[None, :, None]
    spectrum = np.fft.rfft(windows - mean[None, :, None], axis=-1)
    bins = np.linspace(0, spectrum.shape[-1], PIECES + 1).astype(int)
    bands = np.empty_like(spans)
    for p in range(PIECES):
        cut = spectrum.copy()
        cut[..., bins[p]:bins[p + 1]] = 0
        bands[p] = np.fft.irfft(cut, n=length, axis=-1) + mean[None, :, None]
    return spans, bands


def occlusion_table(model, windows: np.ndarray, table: pd.DataFrame) -> pd.DataFrame:
    """`table` (the window predictions) with span_1..8 and band_1..8 drops, and the top span (s) and band (Hz)."""
    mean = model.net_.mean.numpy()
    index = np.asarray([model.classes_.index(c) for c in table["class"]])
    spans, bands = occluded(windows.astype(np.float32), mean)
    rate = model.sample_rate_ or 1.0
    out = table.copy()
    for kind, copies in (("span", spans), ("band", bands)):
        drops = np.stack([table["probability"].to_numpy()
                          - model.score_windows(copies[p])[0][np.arange(len(index)), index] for p in range(PIECES)], 1)
        for p in range(PIECES):
            out[f"{kind}_{p + 1}"] = drops[:, p]
        top = drops.argmax(1)
        if kind == "span":
            width = model.window / rate / PIECES
            out["top_span_start"] = table["start"].to_numpy() + top * width
            out["top_span_end"] = out["top_span_start"] + width
        else:
            nyquist = rate / 2
            out["top_band_low_hz"] = top * nyquist / PIECES
            out["top_band_high_hz"] = (top + 1) * nyquist / PIECES
    return out
