"""A gateway's block of samples as JSON rows (the service's predict route), scored per window and per block.

A gateway on a machine sends what its sensors read since its last message: one JSON object per sample with the
model's channels as keys, and optionally the recording each sample belongs to, under the model's run column (a
model trained from a long table with `--run`) or `recording`; rows without it are one block. Samples are taken in
the order sent (or in the order of the model's time column, when every row carries it) and at the model's sample
rate: the service cannot resample a block whose rate it is not told. Each block is cut into non-overlapping windows
from its first sample, as `predict` cuts a recording; the samples after its last whole window are not scored (the
service keeps no state between requests: `unscored_samples` says how many, so a gateway sends whole windows).

The answer holds one object per window (`level` "window": recording, start and end as `predict` gives them,
counted from the block's first time stamp when the rows carry the time column, class, probability, runner-up,
novelty, unknown) and then one per block (`level` "block": the majority class of its windows, that class's share
and mean probability, the share of unknown windows, unknown when most are). Bad blocks are refused in one line
before any scoring: a channel missing (named, with the channels the model takes), a sample that is not a number,
a block shorter than one window.

The stream's face (`stream.blocks`) is at the end: a batch of windows' verdicts as `predict` gives them, and which
class is the machine's normal state (the alarm counts the windows in a row that are not).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shopfloor.errors import BadColumn, ColumnMissing
from shopfloor.tasks.diagnose.evaluation import by_recording
from shopfloor.tasks.diagnose.signals import Recording
from shopfloor.tasks.diagnose.windows import cut_windows

RECORDING_KEY = "recording"  # the block's name when the model has no run column of its own
NORMAL_NAMES = ("normal", "healthy", "good", "ok", "no_fault", "nofault", "no fault", "none", "baseline")


def block_answers(model, rows: list[dict]) -> list[dict]:
    """The window and block answers (module docstring) for the rows of one request."""
    blocks = read_blocks(model, rows)
    cut = [cut_windows(b.values, model.window) for b in blocks]
    owner = np.concatenate([np.full(len(w), i) for i, w in enumerate(cut)])
    first = np.concatenate([np.arange(len(w)) * model.window for w in cut])
    table = model.window_table(blocks, owner, first, *model.score_windows(np.concatenate(cut)))
    table.insert(0, "level", "window")
    table.insert(2, "window", first // model.window)
    summary = by_recording(table.drop(columns="level"))
    summary.insert(0, "level", "block")
    summary["unscored_samples"] = [b.samples % model.window for b in blocks]
    return _plain(table) + _plain(summary)


def read_blocks(model, rows: list[dict]) -> list[Recording]:
    """The rows as one `Recording` per block, in the order first seen, each at least a window long."""
    channels = list(model.channels_)
    for i, row in enumerate(rows):
        absent = [c for c in channels if c not in row]
        if absent:
            raise ColumnMissing(f"row {i + 1} lacks {', '.join(repr(c) for c in absent)}; the model takes one row per "
                                f"sample with every channel it was trained on: {', '.join(channels)}")
    frame = pd.DataFrame.from_records(rows)
    values = _numbers(frame, channels)
    key = model.run if model.run and model.run in frame.columns else RECORDING_KEY
    if key in frame.columns:
        if frame[key].isna().any():
            row = int(np.flatnonzero(frame[key].isna().to_numpy())[0]) + 1
            raise BadColumn(f"row {row} has no '{key}' while other rows name theirs; give every sample its recording "
                            "(or none, for one block)")
        names = frame[key].astype(str).to_numpy()
    else:
        names = np.full(len(frame), "block", dtype=object)
    times = _numbers(frame, [model.time])[:, 0] if model.time and model.time in frame.columns else None
    blocks = []
    for name in pd.unique(names):
        at = np.flatnonzero(names == name)
        if times is not None:
            at = at[np.argsort(times[at], kind="stable")]
        if len(at) < model.window:
            raise BadColumn(f"block '{name}' has {len(at)} samples, shorter than one window of {model.window}: send at "
                            f"least {model.window} rows (samples) per block")
        start = float(times[at[0]]) if times is not None else 0.0
        blocks.append(Recording(str(name), values[at].T.copy(), model.sample_rate_, channels, start=start))
    return blocks


def _numbers(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The columns as float32 [rows, columns]; refuses a missing or non-numeric sample, naming its row."""
    out = np.empty((len(frame), len(columns)), np.float32)
    for j, column in enumerate(columns):
        numbers = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(numbers)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise BadColumn(f"row {row + 1} has {frame[column].iloc[row]!r} for '{column}', not a number; a window "
                            "needs every sample of every channel")
        out[:, j] = numbers
    return out


def _plain(table: pd.DataFrame) -> list[dict]:
    """Records of JSON's own types (numpy scalars are not JSON)."""
    return [{k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}
            for row in table.to_dict(orient="records")]


def window_verdicts(model, windows: np.ndarray) -> dict[str, np.ndarray]:
    """Windows [n, channels, window] in plant units scored in one pass: class, probability, runner_up,
    runner_up_probability, novelty and unknown per window, from `window_table` itself, so the stream answers what
    `predict` answers."""
    probability, novelty = model.score_windows(windows)
    place = Recording("stream", np.empty((len(model.channels_), 0), np.float32), model.sample_rate_, model.channels_)
    zeros = np.zeros(len(windows), np.int64)
    table = model.window_table([place], zeros, zeros, probability, novelty)
    return {c: table[c].to_numpy() for c in ("class", "probability", "runner_up", "runner_up_probability", "novelty",
                                             "unknown") if c in table.columns}


def normal_class(model) -> str | None:
    """The class that is the machine's normal state: one named normal, healthy, good, ok, ... (case aside), else
    None (then only unknown windows count as faults on the line: no class can be told to be the healthy one)."""
    return next((name for name in model.classes_ if is_normal(name)), None)


def is_normal(name) -> bool:
    """Whether a class name says the machine is healthy: normal, healthy, good, ok, ... or normal_<anything>."""
    text = str(name).strip().lower()
    return text in NORMAL_NAMES or text.startswith("normal")
