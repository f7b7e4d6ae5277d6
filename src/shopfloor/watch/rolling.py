"""The line's rolling profile: the last `window` readings of every input and output of one model, in fixed rings.

The stream worker keeps one per live model and `benchmarks/drift.py` feeds the same class. Memory is fixed at
creation (`window` x columns, 8 bytes a number, one reference a category) however long the line runs; `report()`
compares the ring with the model's reference profile exactly as `shopfloor drift` compares a file
(`compare.compare_view`), readings in arrival order so that a stuck sensor shows as one value repeated. Where the
profile has life-stage bands (a RUL model's), a ring of each reading's age goes alongside; a reading fed without
one reads as of unknown age, and a window holding any such is compared with the whole profile, as before.
"""

from __future__ import annotations

from operator import itemgetter

import numpy as np
import pandas as pd

from shopfloor.watch.compare import compare_view
from shopfloor.watch.profile import ModelView

DEFAULT_WINDOW = 500


class RollingProfile:
    def __init__(self, profile: dict, window: int = DEFAULT_WINDOW):
        self.profile = profile
        self.window = window
        self.numeric = [n for n, r in profile["inputs"].items() if r["kind"] == "numeric"]
        self.categories = [n for n, r in profile["inputs"].items() if r["kind"] != "numeric"]
        self.outputs = [n for n, r in profile["outputs"].items() if r["kind"] == "numeric"]
        self.columns = frozenset(profile["inputs"])  # what a reading must carry to be fed
        self._numbers = np.full((window, len(self.numeric)), np.nan)
        self._levels = np.full((window, len(self.categories)), None, dtype=object)
        self._outputs = np.full((window, len(self.outputs)), np.nan)
        self._ages = np.full((window, 1), np.nan)  # cycles since the reading's unit was first seen
        self.seen = 0  # readings ever added; the ring holds the last min(seen, window)
        self.seen_outputs = 0  # outputs ever added: a RUL model gives one per message, not one per reading

    @property
    def nbytes(self) -> int:
        return int(self._numbers.nbytes + self._levels.nbytes + self._outputs.nbytes + self._ages.nbytes)

    def add(self, inputs: pd.DataFrame, outputs: pd.DataFrame | None = None, ages=None) -> None:
        """Readings (one row each, the model's input columns; a missing column reads as missing) and the model's
        outputs (any number of rows: per reading, or per message for a RUL model); `ages`: each reading's."""
        n = len(inputs)
        numbers = np.full((n, len(self.numeric)), np.nan)
        for j, name in enumerate(self.numeric):
            if name in inputs:
                numbers[:, j] = pd.to_numeric(inputs[name], errors="coerce").to_numpy(np.float64)
        levels = np.full((n, len(self.categories)), None, dtype=object)
        for j, name in enumerate(self.categories):
            if name in inputs:
                levels[:, j] = inputs[name].to_numpy(object)
        self.seen = self._write((self._numbers, self._levels, self._ages), (numbers, levels, self._aged(ages, n)),
                                self.seen)
        if outputs is not None and len(outputs):
            values = np.full((len(outputs), len(self.outputs)), np.nan)
            for j, name in enumerate(self.outputs):
                if name in outputs:
                    values[:, j] = np.asarray(outputs[name], dtype=np.float64)
            self.seen_outputs = self._write((self._outputs,), (values,), self.seen_outputs)

    def add_records(self, records: list[dict], outputs: np.ndarray | None = None, ages=None) -> None:
        """Readings as the stream parsed them (dicts holding every input column) and outputs [n, outputs] in
        `self.outputs` order: the line's fast path, which builds no DataFrame (building them was most of the cost
        of watching 20,000 readings a second); `ages`: each reading's, where known."""
        if not records or not self.numeric:
            self.add(pd.DataFrame.from_records(records, columns=self.numeric + self.categories), ages=ages)
        else:
            take = itemgetter(*self.numeric)
            try:
                numbers = np.array([take(r) for r in records], dtype=np.float64).reshape(len(records), -1)
            except (TypeError, ValueError, KeyError):  # text where a number belongs, or none: read as missing
                self.add(pd.DataFrame.from_records(records, columns=self.numeric + self.categories), ages=ages)
            else:
                levels = np.empty((len(records), len(self.categories)), dtype=object)
                for j, name in enumerate(self.categories):
                    levels[:, j] = [r.get(name) for r in records]
                self.seen = self._write((self._numbers, self._levels, self._ages),
                                        (numbers, levels, self._aged(ages, len(records))), self.seen)
        if outputs is not None and len(outputs):
            self.seen_outputs = self._write((self._outputs,), (np.asarray(outputs, dtype=np.float64),), self.seen_outputs)

    @staticmethod
    def _aged(ages, n: int) -> np.ndarray:
        """[n, 1] ages of `n` readings (NaN: unknown)."""
        return np.full((n, 1), np.nan) if ages is None else np.asarray(ages, dtype=np.float64).reshape(n, 1)

    def _write(self, rings: tuple[np.ndarray, ...], rows: tuple[np.ndarray, ...], seen: int) -> int:
        """Put `rows` into `rings` after `seen` earlier rows; returns the new count."""
        n = len(rows[0])
        if n >= self.window:  # only the last `window` rows can stay
            rows, seen, n = tuple(r[-self.window:] for r in rows), seen + n - self.window, self.window
        slots = (seen + np.arange(n)) % self.window
        for ring, part in zip(rings, rows, strict=True):
            ring[slots] = part
        return seen + n

    def _ordered(self, seen: int) -> np.ndarray:
        """Ring slots of the held rows, oldest first."""
        held = min(seen, self.window)
        return (seen - held + np.arange(held)) % self.window

    def view(self) -> ModelView:
        order = self._ordered(self.seen)
        numbers, levels = self._numbers[order], self._levels[order]
        inputs = pd.DataFrame({name: numbers[:, j] for j, name in enumerate(self.numeric)})
        for j, name in enumerate(self.categories):
            inputs[name] = pd.Series(levels[:, j], dtype=object)
        held = self._outputs[self._ordered(self.seen_outputs)]
        outputs = pd.DataFrame({name: held[:, j] for j, name in enumerate(self.outputs)})
        return ModelView(inputs=inputs[list(self.profile["inputs"])], outputs=outputs,
                         ages=self._ages[order, 0] if "stages" in self.profile else None)

    def report(self) -> dict:
        """The drift report on the readings held now (see `compare.compare_view`)."""
        return compare_view(self.profile, self.view())
