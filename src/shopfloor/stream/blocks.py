"""Blocks of high-rate samples on the line: each machine's samples cut into a fault-diagnosis model's windows as they
arrive, every complete window scored, as `predict` scores the machine's samples joined into one recording.

A vibration gateway sends what its sensors read since its last message (`stream.payload`: one block per message,
the time of its first sample, its rate, its channels). A block may be shorter or longer than the model's window:
per machine, the samples that do not fill a window yet wait here (at most window - 1 per channel, so memory is
bounded: 10,000 machines x 2 channels x 2,048 samples of float32 take 164 MB), and windows are cut back to back,
without overlap (hop = window), from the machine's first sample, as `predict` cuts a recording from its first. The
windows of a whole batch, every machine's, go through the network in one forward pass per `BATCH` windows
(`DiagnoseModel.score_windows`). A window's verdict is stamped with the time of its last sample.

- A block stamped at or before the machine's newest block is a redelivery (MQTT QoS 1) and is not cut again.
- A block that does not follow on from the one before (its first sample more than one window's time away from where
  the samples before it end) starts the machine afresh: the waiting samples are dropped, as a window joined across a
  gap would mix two moments of the machine.
- A block whose rate differs from the model's is refused (`refusal`: one line in the log, the message counted and
  sent to the dead letters), not resampled: resampling block by block filters each block's edges on its own, which
  does not give `predict`'s answers for the recording resampled whole.
- The waiting samples are stored with the batch (`tails`, the store's block_tails table, at most one window per
  machine and model), so a restarted worker cuts the same windows as one that ran on.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from shopfloor.stream.machines import MachineSlots


class Blocks(MachineSlots):
    """Each machine's samples that wait for a full window of one model (its channels, window and rate)."""

    GROWN: ClassVar[dict[str, float]] = {"waiting": 0, "seen": 0, "next_time": np.nan, "newest": -np.inf}

    def __init__(self, columns: list[str], window: int, rate: float | None, capacity: int = 64):
        self.columns, self.window, self.rate = list(columns), int(window), rate
        self.baseline = 0  # nothing of a machine's start is kept (`Models.refresh` compares it with a new version's)
        self.slots: dict[tuple[str, str], int] = {}
        self.waiting = np.zeros((capacity, len(self.columns), self.window), np.float32)
        self.seen = np.zeros(capacity, np.int64)  # samples since the machine's samples (re)started
        self.next_time = np.full(capacity, np.nan)  # where the samples so far end: the time of the next one
        self.newest = np.full(capacity, -np.inf)  # the newest block's time
        self.dirty: set[int] = set()  # slots whose waiting samples changed since they were last stored
        self.watched = False  # the drift watch reads each batch's windows (`watch.signals`): keep them till it does
        self.scored: tuple[np.ndarray, dict] | None = None  # the last batch's windows and verdicts, when watched

    @property
    def nbytes(self) -> int:
        return self.waiting.nbytes + self.seen.nbytes + self.next_time.nbytes + self.newest.nbytes

    def take(self, slot: int, time: float, samples: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
        """Add a block [channels, samples] stamped `time` (its first sample); returns the windows it completes
        [n, channels, window] and the time of each one's last sample [n]."""
        if time <= self.newest[slot]:
            return np.empty((0, len(self.columns), self.window), np.float32), np.empty(0)
        if self.seen[slot] and not abs(time - self.next_time[slot]) <= self.window / rate:
            self.seen[slot] = 0  # a gap (or an overlap): the samples before it never join this block's
        count = int(self.seen[slot] % self.window)
        joined = np.concatenate([self.waiting[slot, :, :count], samples], axis=1) if count else samples
        whole = joined.shape[1] // self.window
        windows = joined[:, :whole * self.window].reshape(len(self.columns), whole, self.window).transpose(1, 0, 2)
        rest = joined.shape[1] - whole * self.window
        self.waiting[slot, :, :rest] = joined[:, whole * self.window:]
        ends = time + (np.arange(1, whole + 1) * self.window - count - 1) / rate
        self.seen[slot] += samples.shape[1]
        self.next_time[slot], self.newest[slot] = time + samples.shape[1] / rate, time
        self.dirty.add(slot)
        return windows, ends

    def tail(self, slot: int) -> dict:
        """What the store keeps of a machine: its waiting samples and where they stand."""
        count = int(self.seen[slot] % self.window)
        return {"window": self.window, "rate": self.rate, "channels": ",".join(self.columns), "seen": int(self.seen[slot]),
                "next_time": float(self.next_time[slot]), "newest": float(self.newest[slot]),
                "samples": self.waiting[slot, :, :count].tobytes()}

    def restore(self, slot: int, stored: dict) -> bool:
        """Start a machine from its stored tail (a restarted worker); False when it was stored for other windows."""
        if (stored["window"], stored["rate"], stored["channels"]) != (self.window, self.rate, ",".join(self.columns)):
            return False
        samples = np.frombuffer(stored["samples"], np.float32).reshape(len(self.columns), -1)
        if samples.shape[1] != stored["seen"] % self.window:
            return False
        self.waiting[slot, :, :samples.shape[1]] = samples
        self.seen[slot], self.next_time[slot], self.newest[slot] = stored["seen"], stored["next_time"], stored["newest"]
        return True

    def dirty_tails(self, model: str, keys: dict[int, tuple[str, str]]) -> list[dict]:
        """The tails changed since the last call, as the store's rows (line, machine, model and `tail`)."""
        rows = [{"line": keys[s][0], "machine": keys[s][1], "model": model, **self.tail(s)} for s in sorted(self.dirty)]
        self.dirty.clear()
        return rows


def refusal(rate: float, model_rate: float | None, model: str, version: int) -> str | None:
    """Why a block at `rate` Hz cannot go to a model that works at `model_rate` Hz (None: it can)."""
    if model_rate is None or abs(rate - model_rate) <= 1e-9 * model_rate:
        return None
    return (f"the block's rate is {rate:g} Hz but model {model} v{version} works at {model_rate:g} Hz: send blocks at "
            "the model's rate (the stream does not resample a block on its own: its edges would not give predict's "
            "answers)")


def score_blocks(scorer, readings: list[dict], tails=None) -> tuple[list[dict], dict]:
    """The windows the blocks complete, each machine's in time order, and their verdicts (`records.window_verdicts`:
    class, probability, runner-up, novelty, unknown) from one pass for the whole batch.

    Returns one dict per window (the block's line, machine, sent_at; the window's time: its last sample) and the
    verdicts as arrays. `tails(machines, model)`: the store's waiting samples of machines first heard of."""
    from shopfloor.tasks.diagnose.records import window_verdicts

    blocks: Blocks = scorer.windows
    new = {(r["line"], r["machine"]) for r in readings} - blocks.slots.keys()
    if tails is not None and new:
        for key, stored in tails(new, scorer.name).items():
            blocks.restore(blocks.slot_of(key), stored)
    order = sorted(range(len(readings)), key=lambda i: (readings[i]["line"], readings[i]["machine"], readings[i]["time"]))
    windows, places = [], []
    model = scorer.estimator
    for i in order:
        reading, block = readings[i], readings[i]["block"]
        if refusal(block["rate"], model.sample_rate_, scorer.name, scorer.version):
            continue  # the worker sent it to the dead letters already (`Models.refusal`)
        pick = [block["channels"].index(c) for c in blocks.columns]
        cut, ends = blocks.take(blocks.slot_of((reading["line"], reading["machine"])), reading["time"],
                                block["samples"][pick], block["rate"])
        windows.append(cut)
        places += [{"line": reading["line"], "machine": reading["machine"], "time": float(t),
                    "sent_at": reading["sent_at"]} for t in ends.tolist()]
    if not places:
        return [], {}
    cut = np.concatenate(windows)
    verdicts = window_verdicts(model, cut)
    blocks.scored = (cut, verdicts) if blocks.watched else None
    return places, verdicts
