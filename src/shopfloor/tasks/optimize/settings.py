"""Machine settings the optimiser may change, and the fixed context it must respect.

A setting is declared as text, the same on the command line and in Python:

- ``"temp=150:250"``: a number between 150 and 250;
- ``"pressure=1:5:0.5"``: a number on a grid of steps of 0.5 (``"passes=1:8:1"`` is a whole number);
- ``"die=A,B,C"``: one of a few named choices;
- ``"speed"``: a number between the lowest and highest value in the records (or, for a text
  column, one of the values seen there).

`SettingSpace` turns settings into the numbers the surrogate reads: each number scaled to 0..1
by its declared range, each choice one-hot, and the fixed context (product type, material lot)
appended the same way, so that records from other products still teach the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from shopfloor.data.tables import did_you_mean
from shopfloor.data.targets import plain
from shopfloor.errors import BadColumn, BadOption, ColumnMissing


@dataclass(frozen=True)
class Setting:
    name: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def is_choice(self) -> bool:
        return bool(self.choices)

    @property
    def is_whole(self) -> bool:
        return self.step is not None and float(self.step).is_integer() and float(self.low).is_integer()

    @property
    def width(self) -> int:
        return len(self.choices) if self.is_choice else 1

    @classmethod
    def parse(cls, spec: str) -> Setting:
        name, sep, value = spec.rpartition("=") if "=" in spec else (spec, "", "")
        name = name.strip()
        if not name:
            raise BadOption(f"setting '{spec}' has no column name; write it as 'temp=150:250', 'pressure=1:5:0.5' or 'die=A,B,C'")
        if not sep:
            return cls(name)
        if ":" not in value:
            choices = tuple(c.strip() for c in value.split(",") if c.strip())
            if len(choices) < 2:
                raise BadOption(f"setting '{spec}': give a range 'low:high[:step]' or at least two choices 'A,B'")
            return cls(name, choices=choices)
        parts = value.split(":")
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            raise BadOption(f"setting '{spec}': '{value}' is not 'low:high' or 'low:high:step' with numbers") from None
        if len(numbers) not in (2, 3) or not all(math.isfinite(v) for v in numbers):
            raise BadOption(f"setting '{spec}': write the range as 'low:high' or 'low:high:step' with finite numbers")
        return cls(name, *numbers).checked(spec)

    def checked(self, spec: str | None = None) -> Setting:
        spec = spec or self.spec
        if self.is_choice:
            return self
        if self.low >= self.high:
            raise BadOption(f"setting '{spec}': the low end {self.low:g} is not below the high end {self.high:g}; "
                            f"write it as '{self.name}={self.high:g}:{self.low:g}'" if self.low > self.high else
                            f"setting '{spec}': low and high are both {self.low:g}; a fixed value belongs in --fixed")
        if self.step is not None and not (0 < self.step <= self.high - self.low):
            raise BadOption(f"setting '{spec}': the step {self.step:g} must be positive and fit inside "
                            f"{self.low:g}..{self.high:g}")
        return self

    @property
    def spec(self) -> str:
        if self.is_choice:
            return f"{self.name}={','.join(self.choices)}"
        if self.low is None:
            return self.name
        step = f":{self.step:g}" if self.step is not None else ""
        return f"{self.name}={self.low:g}:{self.high:g}{step}"

    def snap(self, values: np.ndarray) -> np.ndarray:
        """Numbers inside the bounds and on the step grid."""
        values = np.clip(values, self.low, self.high)
        if self.step is None:
            return values
        snapped = self.low + np.round((values - self.low) / self.step) * self.step
        return np.where(snapped > self.high + 1e-9, snapped - self.step, snapped)


def from_data(setting: Setting, frame: pd.DataFrame, source: str) -> Setting:
    """The setting with its range or choices filled from the records where it gave none, checked against them."""
    column = frame[setting.name]
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if setting.is_choice or (setting.low is None and not numeric):
        seen = sorted(map(str, column.dropna().unique()))
        choices = setting.choices or tuple(seen)
        if len(set(seen)) < 2:
            only = seen[0] if seen else "missing"
            raise BadColumn(f"setting '{setting.name}' is always '{only}' in {source}: the records cannot "
                            f"show what changing it does; put it in --fixed or drop it")
        return Setting(setting.name, choices=choices)
    if not numeric:
        raise BadColumn(f"setting '{setting.name}' has a numeric range but {source} holds text in it "
                        f"(e.g. {column.dropna().astype(str).iloc[0]!r}); list its choices instead: '{setting.name}=A,B'")
    low, high = float(column.min()), float(column.max())
    if not low < high:
        raise BadColumn(f"setting '{setting.name}' is always {low:g} in {source}: the records cannot show what changing it does; "
                        f"put it in --fixed or drop it")
    if setting.low is None:
        return Setting(setting.name, low, high)
    return setting


@dataclass
class SettingSpace:
    """Settings plus fixed context, and their encoding into the surrogate's inputs (0..1 per number, one-hot per choice)."""

    settings: list[Setting]
    fixed: dict[str, object] = field(default_factory=dict)
    context_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # numeric fixed columns
    context_levels: dict[str, list[str]] = field(default_factory=dict)  # text fixed columns

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.settings]

    @property
    def width(self) -> int:
        return sum(s.width for s in self.settings) + len(self.context_ranges) + sum(map(len, self.context_levels.values()))

    @property
    def setting_width(self) -> int:
        return sum(s.width for s in self.settings)

    def slices(self) -> list[slice]:
        out, start = [], 0
        for s in self.settings:
            out.append(slice(start, start + s.width))
            start += s.width
        return out

    def encode(self, frame: pd.DataFrame) -> torch.Tensor:
        """Records (or candidate settings) -> [N, width] float64; the context comes from the frame's own columns."""
        return torch.cat([self.encode_settings(frame), self.encode_context(frame)], dim=1)

    def encode_settings(self, frame: pd.DataFrame) -> torch.Tensor:
        parts = [self._encode_setting(s, frame[s.name]) for s in self.settings]
        return torch.from_numpy(np.concatenate(parts, axis=1).astype(np.float64))

    @staticmethod
    def _encode_setting(s: Setting, column: pd.Series) -> np.ndarray:
        if s.is_choice:
            return _one_hot(column, list(s.choices))
        return ((column.to_numpy(float) - s.low) / (s.high - s.low))[:, None]

    def context_row(self) -> torch.Tensor:
        """The encoded fixed context, appended to every candidate."""
        return self.encode_context(pd.DataFrame({k: [v] for k, v in self.fixed.items()}, index=[0]))[0]

    def encode_context(self, frame: pd.DataFrame) -> torch.Tensor:
        parts = [((frame[n].to_numpy(float) - lo) / (hi - lo if hi > lo else 1.0))[:, None]
                 for n, (lo, hi) in self.context_ranges.items()]
        parts += [_one_hot(frame[n], levels) for n, levels in self.context_levels.items()]
        if not parts:
            return torch.zeros((len(frame), 0), dtype=torch.float64)
        return torch.from_numpy(np.concatenate(parts, axis=1).astype(np.float64))

    def decode(self, encoded: torch.Tensor | np.ndarray) -> pd.DataFrame:
        """Encoded settings ([N, setting_width]) -> a table in the plant's units, snapped to steps and choices."""
        encoded = np.asarray(encoded, dtype=float)
        columns = {}
        for s, part in zip(self.settings, self.slices(), strict=True):
            if s.is_choice:
                columns[s.name] = np.asarray(s.choices, dtype=object)[encoded[:, part].argmax(1)]
            else:
                values = s.snap(s.low + encoded[:, part.start] * (s.high - s.low))
                columns[s.name] = values.round().astype(np.int64) if s.is_whole else values
        return pd.DataFrame(columns)

    def snap(self, encoded: torch.Tensor) -> torch.Tensor:
        """Encoded settings moved onto their grid (steps, whole numbers, one choice)."""
        return self.encode_settings(self.decode(encoded))

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """`n` encoded settings spread over the whole space (scrambled Sobol for numbers, uniform choices)."""
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        engine = torch.quasirandom.SobolEngine(len(self.settings), scramble=True, seed=seed)
        u = engine.draw(n, dtype=torch.float64)
        parts = []
        for j, s in enumerate(self.settings):
            if s.is_choice:
                k = len(s.choices)
                parts.append(torch.nn.functional.one_hot((u[:, j] * k).long().clamp(max=k - 1), k).double())
            else:
                parts.append(u[:, j : j + 1])
        return torch.cat(parts, dim=1)

    def to_json(self) -> dict:
        return {"settings": [s.spec for s in self.settings], "fixed": {k: plain(v) for k, v in self.fixed.items()},
                "context_ranges": {k: list(v) for k, v in self.context_ranges.items()}, "context_levels": self.context_levels}

    @classmethod
    def from_json(cls, data: dict) -> SettingSpace:
        return cls([Setting.parse(s) for s in data["settings"]], data["fixed"],
                   {k: tuple(v) for k, v in data["context_ranges"].items()}, data["context_levels"])


def _one_hot(column: pd.Series, levels: list[str]) -> np.ndarray:
    codes = pd.Categorical(column.astype(str), categories=levels).codes
    out = np.zeros((len(column), len(levels)))
    known = codes >= 0
    out[np.flatnonzero(known), codes[known]] = 1.0
    return out


def parse_fixed(specs: list[str]) -> dict[str, object]:
    """``["type=M", "lot=42"]`` -> ``{"type": "M", "lot": 42.0}`` (numbers where the value reads as one)."""
    fixed = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise BadOption(f"fixed context '{spec}' must read 'column=value', e.g. 'type=M'")
        try:
            fixed[name.strip()] = float(value)
        except ValueError:
            fixed[name.strip()] = value.strip()
    return fixed


def build_space(settings: list[Setting], fixed: dict[str, object], frame: pd.DataFrame, source: str) -> SettingSpace:
    """Check the declared settings and context against the records and learn what the encoding needs."""
    names = [s.name for s in settings]
    if not settings:
        raise BadOption("declare at least one setting the optimiser may change, e.g. --setting 'temp=150:250'")
    if len(set(names)) < len(names):
        raise BadOption(f"a setting is declared twice: {sorted({n for n in names if names.count(n) > 1})}")
    for name in [*names, *fixed]:
        if name not in frame.columns:
            raise ColumnMissing(f"'{name}' is not a column of {source} (columns found: {', '.join(map(str, frame.columns))})"
                                f"{did_you_mean(name, frame.columns)}")
    clash = set(names) & set(fixed)
    if clash:
        raise BadOption(f"{sorted(clash)} is both a setting and fixed context; it can be one or the other")
    settings = [from_data(s, frame, source) for s in settings]
    ranges, levels = {}, {}
    for name, value in fixed.items():
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column) and isinstance(value, float):
            ranges[name] = (float(column.min()), float(column.max()))
        else:
            seen = sorted(map(str, column.dropna().unique()))
            if str(_as_text(value)) not in seen:
                raise BadOption(f"fixed context {name}={value} never occurs in {source} (values there: {', '.join(seen[:12])}): "
                                f"the records say nothing about it")
            levels[name] = seen
    fixed = {k: (_as_text(v) if k in levels else v) for k, v in fixed.items()}
    return SettingSpace(settings, fixed, ranges, levels)


def _as_text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
