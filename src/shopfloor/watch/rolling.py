"""The line's rolling profile: the last `window` readings of every input and output of one model, in fixed rings.

The stream worker keeps one per live model and `benchmarks/drift.py` feeds the same class. Memory is fixed at
creation (`window` x columns, 8 bytes a number, one reference a category) however long the line runs; `report()`
compares the ring with the model's reference profile exactly as `shopfloor drift` compares a file
(`compare.compare_view`), readings in arrival order so that a stuck sensor shows as one value repeated.
"""

from __future__ import annotations

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
        self._numbers = np.full((window, len(self.numeric) + len(self.outputs)), np.nan)
        self._levels = np.full((window, len(self.categories)), None, dtype=object)
        self.seen = 0  # readings ever added; the ring holds the last min(seen, window)

    @property
    def nbytes(self) -> int:
        return int(self._numbers.nbytes + self._levels.nbytes)

    def add(self, inputs: pd.DataFrame, outputs: pd.DataFrame | None = None) -> None:
        """Readings (one row each, the model's input columns; a missing column reads as missing) and the
        model's outputs for them (optional: a ring of outputs without them stays missing)."""
        n = len(inputs)
        if n == 0:
            return
        numbers = np.full((n, self._numbers.shape[1]), np.nan)
        for j, name in enumerate(self.numeric):
            if name in inputs:
                numbers[:, j] = pd.to_numeric(inputs[name], errors="coerce").to_numpy(np.float64)
        if outputs is not None:
            for j, name in enumerate(self.outputs, start=len(self.numeric)):
                if name in outputs:
                    numbers[:, j] = np.asarray(outputs[name], dtype=np.float64)
        levels = np.full((n, len(self.categories)), None, dtype=object)
        for j, name in enumerate(self.categories):
            if name in inputs:
                levels[:, j] = inputs[name].to_numpy(object)
        if n >= self.window:  # only the last `window` readings can stay
            numbers, levels, self.seen = numbers[-self.window:], levels[-self.window:], self.seen + n - self.window
            n = self.window
        slots = (self.seen + np.arange(n)) % self.window
        self._numbers[slots], self._levels[slots] = numbers, levels
        self.seen += n

    def _ordered(self) -> np.ndarray:
        """Ring slots of the held readings, oldest first."""
        held = min(self.seen, self.window)
        return (self.seen - held + np.arange(held)) % self.window

    def view(self) -> ModelView:
        order = self._ordered()
        numbers, levels = self._numbers[order], self._levels[order]
        inputs = pd.DataFrame({name: numbers[:, j] for j, name in enumerate(self.numeric)})
        for j, name in enumerate(self.categories):
            inputs[name] = pd.Series(levels[:, j], dtype=object)
        outputs = pd.DataFrame({name: numbers[:, j] for j, name in enumerate(self.outputs, start=len(self.numeric))})
        return ModelView(inputs=inputs[list(self.profile["inputs"])], outputs=outputs.dropna(how="all"))

    def report(self) -> dict:
        """The drift report on the readings held now (see `compare.compare_view`)."""
        return compare_view(self.profile, self.view())
