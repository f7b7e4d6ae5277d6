"""The diagnose model's drift view: what `shopfloor drift` and the watch compare for a model of machine signals.

A window of raw samples is too long to compare sample by sample, and what goes wrong on a line shows in a few
condition indicators per channel, in plant units: the RMS (a sensor's gain, a loose mount or a louder machine
moves it), the kurtosis (impacts: a new fault, or clipping) and the crest factor (peak over RMS). Beside them,
the model's outputs: the predicted class with its confidence, each class's probability and the novelty, as the
defects model does for images. The reference is every non-overlapping window of the recordings fitted on for
the inputs (what the line gave) and the held-out windows for the outputs (where the network had not learned the
answers by heart: its confidence on training windows would make every new window look less sure).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shopfloor.watch.profile import ModelView, build_profile

INDICATORS = ("rms", "kurtosis", "crest factor")


def window_statistics(windows: np.ndarray, channels: list[str]) -> pd.DataFrame:
    """Per window [n, channels, samples]: '<channel> rms', '<channel> kurtosis', '<channel> crest factor'."""
    # one float64 copy, worked in place: the stream summarises windows it scores (`watch.signals`), and `** 4` and
    # the temporaries of the plain formulas cost 20 times what these lines do (page faults of fresh arrays)
    values = np.array(windows, dtype=np.float64)
    samples = values.shape[2]
    rms = np.sqrt(np.einsum("ijk,ijk->ij", values, values) / samples)
    peak = np.maximum(values.max(axis=2), -values.min(axis=2))
    values -= values.mean(axis=2, keepdims=True)
    squared = np.square(values, out=values)
    power = squared.mean(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):  # a flat window: kurtosis and crest factor unknown
        kurtosis = np.where(power > 0, np.einsum("ijk,ijk->ij", squared, squared) / samples / power ** 2, np.nan)
        crest = np.where(rms > 0, peak / rms, np.nan)
    columns = {}
    for j, channel in enumerate(channels):
        for name, stat in zip(INDICATORS, (rms, kurtosis, crest), strict=True):
            columns[f"{channel} {name}"] = stat[:, j]
    return pd.DataFrame(columns)


def output_frame(classes: list[str], probability: np.ndarray, novelty: np.ndarray) -> pd.DataFrame:
    """The model's answers per window: 'fault' (most likely class), 'confidence', 'p_<class>', 'novelty'."""
    probability = np.asarray(probability, dtype=np.float64).reshape(len(probability), len(classes))
    return pd.DataFrame({"fault": np.asarray(classes, dtype=object)[probability.argmax(1)],
                         "confidence": probability.max(1),
                         **{f"p_{name}": probability[:, k] for k, name in enumerate(classes)},
                         "novelty": np.asarray(novelty, dtype=np.float64)})


def signal_view(model, windows: np.ndarray) -> ModelView:
    """The view of windows [n, channels, window] in plant units: indicators in, answers out."""
    probability, novelty = model.score_windows(windows)
    return ModelView(window_statistics(windows, model.channels_), output_frame(model.classes_, probability, novelty))


def signal_profile(model, recordings: list, held_out_windows: np.ndarray) -> dict:
    """The reference profile (see the module docstring for which windows describe what). Each recording is a group:
    two recordings of one machine differ more than two stretches of one (on generated bearings, an unchanged
    recording's crest factor was 'drift' at PSI 0.32 against six training recordings taken as one sample), so a
    new recording must differ from the training ones by more than they differ among themselves; recordings are
    halved within each fault class (halving across classes made a x1.5 gain only 'watch', RMS PSI 3.7)."""
    from shopfloor.tasks.diagnose.windows import cut_windows  # torch: at fit time only, not on the line

    cut = [cut_windows(r.values, model.window) for r in recordings]
    probability, novelty = model.score_windows(held_out_windows)
    return build_profile(window_statistics(np.concatenate(cut), model.channels_),
                         output_frame(model.classes_, probability, novelty),
                         groups=np.concatenate([np.full(len(w), i) for i, w in enumerate(cut)]),
                         strata=np.concatenate([np.full(len(w), str(r.label), dtype=object)
                                                for r, w in zip(recordings, cut, strict=True)]), seed=model.seed)
