"""Settings as engineers declare them: ranges, steps, whole numbers, choices; checked against the records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from shopfloor.errors import BadColumn, BadOption, ColumnMissing
from shopfloor.tasks.optimize.settings import Setting, build_space, parse_fixed

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda v: round(v, 4))


@given(finite, finite, st.one_of(st.none(), st.floats(min_value=1e-3, max_value=0.5)))  # rounded, a share of 1 can overshoot
def test_a_range_reads_back_as_written(low: float, high: float, share: float | None):
    if low == high:
        with pytest.raises(BadOption, match="fixed value belongs in --fixed"):
            Setting.parse(f"temp={low!r}:{high!r}")
        return
    if low > high:
        with pytest.raises(BadOption, match="not below the high end"):
            Setting.parse(f"temp={low!r}:{high!r}")
        return
    step = None if share is None else round((high - low) * share, 6) or None
    spec = f"temp={low!r}:{high!r}" + (f":{step!r}" if step else "")
    setting = Setting.parse(spec)
    assert (setting.low, setting.high, setting.step) == (low, high, step)
    snapped = setting.snap(np.linspace(low - 1, high + 1, 50))
    assert snapped.min() >= low - 1e-9 and snapped.max() <= high + 1e-9
    if step:
        assert np.allclose(np.round((snapped - low) / step), (snapped - low) / step, atol=1e-6)


def test_setting_kinds():
    assert Setting.parse("die=A, B,C").choices == ("A", "B", "C")
    assert Setting.parse("passes=1:8:1").is_whole
    assert not Setting.parse("pressure=1:5:0.5").is_whole
    assert Setting.parse("Air temperature [K]=295:305").name == "Air temperature [K]"
    assert Setting.parse("speed").low is None


@pytest.mark.parametrize("spec, words", [
    ("temp=250:150", "not below the high end"),
    ("temp=a:b", "with numbers"),
    ("temp=1:2:3:4", "'low:high' or 'low:high:step'"),
    ("temp=1:inf", "finite numbers"),
    ("temp=0:10:20", "fit inside"),
    ("temp=0:10:-1", "must be positive"),
    ("die=A", "at least two choices"),
    ("=1:2", "no column name"),
])
def test_bad_settings(spec: str, words: str):
    with pytest.raises(BadOption, match=words):
        Setting.parse(spec)


def _records() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"temp": rng.uniform(150, 250, 40), "pressure": rng.choice([1.0, 1.5, 2.0], 40),
                         "die": rng.choice(["A", "B"], 40), "type": rng.choice(["L", "M"], 40),
                         "lot": rng.uniform(1, 9, 40), "constant": 3.0})


def test_space_encodes_decodes_and_snaps():
    space = build_space([Setting.parse("temp=150:250:5"), Setting.parse("die=A,B,C"), Setting.parse("pressure")],
                        parse_fixed(["type=M", "lot=4"]), _records(), "records.csv")
    assert space.width == 1 + 3 + 1 + 1 + 2  # temp, die one-hot, pressure, lot (numeric), type one-hot
    assert space.settings[2].low == 1.0 and space.settings[2].high == 2.0  # range of the records
    sample = space.sample(64, torch.Generator().manual_seed(0))
    table = space.decode(sample)
    assert set(table["die"]) <= {"A", "B", "C"}
    assert np.allclose(((table["temp"] - 150) / 5).round(), (table["temp"] - 150) / 5)
    assert torch.allclose(space.snap(space.snap(sample)), space.snap(sample))
    assert space.fixed == {"type": "M", "lot": 4.0}
    assert space.context_row().tolist() == pytest.approx([(4 - space.context_ranges["lot"][0]) / np.ptp(_records()["lot"]), 0, 1])


@pytest.mark.parametrize("settings, fixed, error, words", [
    (["speed=1:2"], [], ColumnMissing, "'speed' is not a column of records.csv"),
    (["constant=1:5"], [], BadColumn, "always 3 in records.csv"),
    (["temp=150:250"], ["type=X"], BadOption, "never occurs"),
    (["temp=150:250"], ["temp=200"], BadOption, "both a setting and fixed"),
    (["die=1:2"], [], BadColumn, "holds text"),
    ([], [], BadOption, "at least one setting"),
    (["temp=150:250", "temp=160:200"], [], BadOption, "declared twice"),
])
def test_settings_checked_against_the_records(settings, fixed, error, words):
    with pytest.raises(error, match=words):
        build_space([Setting.parse(s) for s in settings], parse_fixed(fixed), _records(), "records.csv")


def test_fixed_needs_column_equals_value():
    with pytest.raises(BadOption, match="column=value"):
        parse_fixed(["type"])
