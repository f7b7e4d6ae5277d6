"""What the stream worker remembers per machine for a sensor-monitoring model: its latest steps, enough to score
the next readings exactly as the batch path scores the machine's whole history.

A monitor model's answer at a step depends on the `reach` steps before it (`MonitorNet.reach()`, about 100 with
the defaults), so a machine's ring holds its last `reach` steps, and a message of k readings is scored as one
sequence of reach + k steps: the answers of its k readings come out of one network pass, with those of every other
machine in the batch. 10,000 machines x 102 steps x 8 sensors of float32 take 33 MB.

The batch path puts a machine's rows on a grid of the model's step (`history.to_grid`); the same is done here,
reading by reading:
- a reading more than `max_gap` steps after the one before ends the machine's history, as a gap ends a segment
  there: the machine starts afresh, and its first readings are scored from what there is, as the first rows of a
  file are (such sequences are scored at their own length, so that no padding changes them);
- a shorter gap is filled with the reading before it (the grid carries the last reading forward);
- a sensor that sends null holds its last value (the training mean before its first: the batch path fills the
  start of a segment from the first later reading, which a stream cannot know yet);
- a reading not later than the newest one of its machine is left out: after a broker restart, QoS 1 may deliver a
  batch twice, and the second copy must not look like a machine that repeated itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from shopfloor.stream.machines import MachineSlots


@dataclass
class Group:
    """Sequences of one length, scored in one pass: inputs [sequences, steps, sensors]; the answers wanted are, for
    reading `rows[i]`, at step `step[i]` of the last `newest` steps of sequence `sequence[i]`."""

    inputs: np.ndarray
    newest: int
    rows: np.ndarray
    sequence: np.ndarray
    step: np.ndarray


class Sequences(MachineSlots):
    """Ring buffers of each machine's latest steps (in one model's sensor order), for many machines."""

    GROWN: ClassVar[dict[str, float]] = {"ring": 0, "seen": 0, "newest": -np.inf}

    def __init__(self, columns: list[str], reach: int, step: float, max_gap: int, fill: np.ndarray, capacity: int = 256):
        self.columns = list(columns)
        self.window = max(int(reach), 1)  # steps kept per machine
        self.baseline = 1  # a new machine's window starts from the store's latest readings only (`Store.histories`)
        self.step, self.max_gap = float(step), int(max_gap)
        self.fill = np.asarray(fill, np.float32)  # a sensor's value before its first reading: its training mean
        self.slots: dict[tuple[str, str], int] = {}
        self.ring = np.zeros((capacity, self.window, len(self.columns)), np.float32)
        self.seen = np.zeros(capacity, np.int64)  # steps since the machine's history (re)started
        self.newest = np.full(capacity, -np.inf)

    @property
    def nbytes(self) -> int:
        return self.ring.nbytes + self.seen.nbytes + self.newest.nbytes

    def restore(self, slot: int, times: np.ndarray, values: np.ndarray) -> None:
        """Start a machine from its stored latest readings (a restarted worker): they go through the ring as live
        ones would, gaps and all, unscored. With `window` readings or the whole history since a gap, the
        machine's next readings score as they would have without the restart."""
        self.take(np.full(len(times), slot), np.asarray(times, np.float64), np.asarray(values, np.float32))

    def take(self, slots: np.ndarray, times: np.ndarray, values: np.ndarray) -> list[Group]:
        """Add readings (any order, several per machine: slots [n], times [n], values [n, sensors]) and return
        them as sequences to score, grouped by length; readings not later than their machine's newest are not in
        any group.

        A running line's usual batch (one reading per step, no nulls) goes through in a few array operations per
        length of history held (`_steady`); machines that leave gaps or send nulls go one by one."""
        order = np.lexsort((times, slots))
        order = order[times[order] > self.newest[slots[order]]]
        if len(order) > 1:  # one reading per machine and time stamp
            s, t = slots[order], times[order]
            order = order[np.concatenate(([True], (s[1:] != s[:-1]) | (t[1:] != t[:-1])))]
        if not len(order):
            return []
        s, t = slots[order], times[order]
        first = np.concatenate(([True], s[1:] != s[:-1]))
        starts = np.flatnonzero(first)
        counts = np.diff(np.append(starts, len(order)))
        before = np.where(first, np.where(self.seen[s] > 0, self.newest[s], np.nan), np.roll(t, 1))
        steps = np.rint((t - before) / self.step)  # NaN before a machine's first reading
        plain = ((steps == 1) | (first & (self.seen[s] == 0))) & ~np.isnan(values[order]).any(1)
        machines = s[starts]
        steady = np.logical_and.reduceat(plain, starts) & (counts <= self.window)
        full, young = [], {}
        for m in np.flatnonzero(~steady).tolist():
            part = slice(starts[m], starts[m] + counts[m])
            self._runs(int(machines[m]), order[part], steps[part], times, values, full, young)
        whole = [self._group(full, pad=True)] if full else []
        exact = {length: [self._group(parts, pad=False)] for length, parts in young.items()}
        held = np.minimum(self.seen[machines], self.window)  # steps before the new ones: a full ring, or all there are
        kind = held * (self.window + 1) + counts
        for key in np.unique(kind[steady]).tolist():
            chosen = np.flatnonzero(steady & (kind == key))
            k, before = int(counts[chosen[0]]), int(held[chosen[0]])
            rows = order[(starts[chosen][:, None] + np.arange(k)).ravel()]
            group = self._steady(machines[chosen], rows, times, values, k, before)
            (whole if before == self.window else exact.setdefault(before + k, [])).append(group)
        # one network pass per length: its fixed cost (about half a millisecond) was most of a small batch's
        return ([merged(whole)] if whole else []) + [merged(same) for same in exact.values()]

    def _steady(self, slots: np.ndarray, rows: np.ndarray, times: np.ndarray, values: np.ndarray, k: int,
                held: int) -> Group:
        """k readings of each machine (rows: machine by machine, in time order) after the `held` steps its ring
        holds (the whole ring, or the machine's whole history): one array, one ring write."""
        seen = self.seen[slots]
        history = self.ring[slots[:, None], (seen[:, None] - held + np.arange(held)) % self.window]
        new = values[rows].reshape(len(slots), k, -1)
        self.ring[slots[:, None], (seen[:, None] + np.arange(k)) % self.window] = new
        self.seen[slots] += k
        self.newest[slots] = times[rows].reshape(len(slots), k)[:, -1]
        return Group(np.concatenate([history, new], axis=1), k, rows, np.repeat(np.arange(len(slots)), k),
                     np.tile(np.arange(k), len(slots)))

    def _runs(self, slot: int, rows: np.ndarray, steps: np.ndarray, times: np.ndarray, values: np.ndarray,
              full: list, young: dict) -> None:
        """One machine's readings as sequences, split where a gap ends its history: `full` takes those after a
        whole ring, `young` (by length) those that start the machine's history or follow a short one."""
        for run in np.split(np.arange(len(rows)), np.flatnonzero(steps[1:] > self.max_gap) + 1):
            fresh = run[0] > 0 or not steps[0] <= self.max_gap  # a gap (or nothing) before the run
            whole = not fresh and self.seen[slot] >= self.window  # the ring holds all the run's answers need
            sequence, ends = self._sequence(slot, values[rows[run]], steps[run], fresh)
            self.newest[slot] = times[rows[run[-1]]]
            if whole:
                full.append((sequence, rows[run], ends))
            else:
                young.setdefault(len(sequence), []).append((sequence, rows[run], ends))

    def _sequence(self, slot: int, values: np.ndarray, steps: np.ndarray, fresh: bool) -> tuple[np.ndarray, np.ndarray]:
        """The steps the run's readings are scored after (the ring's, unless fresh), the run's own steps with short
        gaps filled, and where each reading sits, counted from the end (1 = the last step). Appends to the ring."""
        if fresh:
            self.seen[slot] = 0
        held = self.seen[slot] > 0
        before = self.ring[slot, (self.seen[slot] - 1) % self.window] if held else self.fill
        values = self._held(values.astype(np.float32), before)
        pads = np.maximum(np.nan_to_num(steps, nan=1.0), 1).astype(np.int64) - 1  # missing grid slots before each
        if not held:
            pads[0] = 0
        if pads.any():
            repeats = np.concatenate((pads[:1], 1 + pads[1:], [1]))
            expanded = np.repeat(np.vstack([before[None], values]), repeats, axis=0)
        else:  # readings at every step: nothing to fill
            expanded = values
        where = pads[0] + np.arange(len(values)) + np.cumsum(np.concatenate(([0], pads[1:])))
        history = self._history(slot)
        self._append(slot, expanded)
        return np.vstack([history, expanded]), len(expanded) - where

    def _history(self, slot: int) -> np.ndarray:
        seen = int(self.seen[slot])
        held = min(seen, self.window)
        return self.ring[slot, (seen - held + np.arange(held)) % self.window]

    def _append(self, slot: int, steps: np.ndarray, skipped: int = 0) -> None:
        """Write steps after the ring's newest (`skipped` earlier ones were never seen here: a seeded machine)."""
        self.seen[slot] += skipped
        kept = steps[-self.window:]
        at = (self.seen[slot] + len(steps) - len(kept) + np.arange(len(kept))) % self.window
        self.ring[slot, at] = kept
        self.seen[slot] += len(steps)

    @staticmethod
    def _held(values: np.ndarray, before: np.ndarray) -> np.ndarray:
        """Nulls take the sensor's value at the step before (its fill value before its first)."""
        if not np.isnan(values).any():
            return values
        values = values.copy()
        previous = before
        for i in range(len(values)):
            gaps = np.isnan(values[i])
            values[i, gaps] = previous[gaps]
            previous = values[i]
        return values

    def _group(self, parts: list[tuple], pad: bool) -> Group:
        """One array of the sequences; `pad`: of different lengths, each preceded by copies of its first step (the
        answers wanted there depend only on the steps each holds)."""
        length = max(len(sequence) for sequence, _, _ in parts)
        inputs = np.empty((len(parts), length, len(self.columns)), np.float32)
        for i, (sequence, _, _) in enumerate(parts):
            inputs[i, length - len(sequence):] = sequence
            if pad:
                inputs[i, :length - len(sequence)] = sequence[0]
        newest = max(int(ends.max()) for _, _, ends in parts)
        rows = np.concatenate([rows for _, rows, _ in parts])
        sequence = np.concatenate([np.full(len(r), i) for i, (_, r, _) in enumerate(parts)])
        step = newest - np.concatenate([ends for _, _, ends in parts])
        return Group(inputs, newest, rows, sequence, step)


def merged(groups: list[Group]) -> Group:
    """One group of several: shorter sequences are preceded by copies of their first step, which only sequences
    after a whole ring may be (their answers depend on the steps they hold)."""
    if len(groups) == 1:
        return groups[0]
    length, newest = max(g.inputs.shape[1] for g in groups), max(g.newest for g in groups)
    inputs = np.concatenate([np.concatenate([np.repeat(g.inputs[:, :1], length - g.inputs.shape[1], axis=1), g.inputs],
                                            axis=1) for g in groups])
    offsets = np.cumsum([0] + [len(g.inputs) for g in groups[:-1]])
    return Group(inputs, newest, np.concatenate([g.rows for g in groups]),
                 np.concatenate([g.sequence + offset for g, offset in zip(groups, offsets, strict=True)]),
                 np.concatenate([g.step + newest - g.newest for g in groups]))
