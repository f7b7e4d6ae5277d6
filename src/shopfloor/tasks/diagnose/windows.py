"""Where windows come from: the honest splits of recordings, and windows cut from them.

Windows of one recording never sit on both sides of a split (overlapping windows of one signal on both sides
made CWRU look solved: Hendriks et al. 2022, Abburi et al. 2023). A class with recordings of two or more runs
keeps every (1/holdout)-th of its runs apart (whole runs, spread over the class's time: on the hydraulic rig the
last runs of a class ran under other conditions, and their loss rose from the third epoch on, stopping a network
that had not learnt the class); a class with one run (CWRU has one recording per class) keeps the last part of each
recording apart, in time order: the first part trains, the last part tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from shopfloor.devices import LossTensors
from shopfloor.errors import BadTarget
from shopfloor.tasks.diagnose.signals import Recording


@dataclass
class Segment:
    """Samples [start, stop) of recording `recording` (an index into a list of recordings)."""

    recording: int
    start: int
    stop: int


def holdout_segments(recordings: list[Recording], holdout: float, window: int) -> tuple[list[Segment], list[Segment]]:
    """(training, held-out) segments: per class, every (1/holdout)-th run when it has two or more, else the last
    `holdout` share of each of its recordings."""
    train, held = [], []
    for label in dict.fromkeys(r.label for r in recordings):
        members = [i for i, r in enumerate(recordings) if r.label == label]
        runs = list(dict.fromkeys(recordings[i].run for i in members))
        if len(runs) >= 2:
            share = max(holdout, 1 / len(runs))  # every (1/holdout)-th run, so that held-out runs span the class's time
            kept = {run for i, run in enumerate(runs) if np.floor((i + 1) * share) > np.floor(i * share)}
            for i in members:
                (held if recordings[i].run in kept else train).append(Segment(i, 0, recordings[i].samples))
            continue
        for i in members:
            cut = int(math.floor(recordings[i].samples * (1 - holdout)))
            train.append(Segment(i, 0, cut))
            held.append(Segment(i, cut, recordings[i].samples))
    for segment in train + held:
        if segment.stop - segment.start < window:
            recording = recordings[segment.recording]
            raise BadTarget(f"{recording.source} (class '{recording.label}') leaves {segment.stop - segment.start} samples "
                            f"for {'training' if segment in train else 'validation'}, less than one window of {window}; "
                            "give longer or more recordings of the class, or a smaller --window")
    return train, held


def time_split(recordings: list[Recording], share: float) -> tuple[list[Recording], list[Recording]]:
    """The first `share` of every recording, and the rest: the protocol for data with one recording per class."""
    first, last = [], []
    for r in recordings:
        cut = int(round(r.samples * share))
        for part, (a, b) in ((first, (0, cut)), (last, (cut, r.samples))):
            part.append(Recording(name=r.name, values=r.values[:, a:b], rate=r.rate, channels=r.channels, label=r.label,
                                  run=r.run, start=r.start + a / (r.rate or 1.0), source=r.source))
    return first, last


def window_starts(samples: int, window: int, hop: int) -> np.ndarray:
    return np.arange(0, samples - window + 1, max(1, hop))


def cut_windows(values: np.ndarray, window: int, hop: int | None = None) -> np.ndarray:
    """Windows [n, channels, window] of one recording's samples [channels, samples], `hop` apart (non-overlapping
    by default)."""
    starts = window_starts(values.shape[1], window, hop or window)
    return np.stack([values[:, s:s + window] for s in starts]) if len(starts) else np.empty((0, values.shape[0], window),
                                                                                              values.dtype)


class WindowSampler:
    """Training windows drawn afresh every epoch: each item is a place in the concatenated training samples, and
    the window starts up to `hop` samples after it (the shift augmentation), never across a segment's end."""

    def __init__(self, recordings: list[Recording], segments: list[Segment], labels: list[int], window: int, hop: int):
        pieces, base, limit, target, offset = [], [], [], [], 0
        for segment, label in zip(segments, labels, strict=True):
            values = recordings[segment.recording].values[:, segment.start:segment.stop]
            starts = window_starts(values.shape[1], window, hop)
            base.append(offset + starts)
            limit.append(np.full(len(starts), offset + values.shape[1] - window))
            target.append(np.full(len(starts), label))
            pieces.append(values)
            offset += values.shape[1]
        self.signal = torch.as_tensor(np.concatenate(pieces, axis=1))
        self.base = torch.as_tensor(np.concatenate(base))
        self.limit = torch.as_tensor(np.concatenate(limit))
        self.labels = torch.as_tensor(np.concatenate(target), dtype=torch.long)
        self.window, self.hop = window, hop
        self.offsets = torch.arange(window)
        self.placed = LossTensors(signal=self.signal, base=self.base, limit=self.limit, labels=self.labels,
                                  offsets=self.offsets)

    def windows(self, items: torch.Tensor, shift: bool = True) -> torch.Tensor:
        """Windows [batch, channels, window] on the device `items` are on (the training loop's)."""
        held = self.placed.on(items.device)
        starts = held.base[items]
        if shift:
            starts = starts + torch.randint(0, self.hop, starts.shape, device=items.device)
        starts = torch.minimum(starts, held.limit[items])
        return held.signal[:, starts[:, None] + held.offsets].permute(1, 0, 2)
