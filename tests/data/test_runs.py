"""Run-to-failure histories: C-MAPSS text, generic tables, sorting, gaps, and true RUL files."""

from __future__ import annotations

import gzip
import warnings

import numpy as np
import pandas as pd
import pytest

from shopfloor.data.runs import CMAPSS_COLUMNS, RunHistory, is_cmapss_file, read_rul, read_runs
from shopfloor.errors import BadColumn, BadOption, BadTarget, ColumnMissing, DataFileError, ShopfloorWarning


def runs_table(units: int = 3, cycles: int = 5, seed: int = 0) -> pd.DataFrame:
    """A small fleet: `cycles` rows per unit, one setting, two sensors that drift with wear."""
    rng = np.random.default_rng(seed)
    rows = units * cycles
    return pd.DataFrame({
        "engine": np.repeat(np.arange(1, units + 1), cycles),
        "cycle": np.tile(np.arange(1, cycles + 1), units),
        "altitude": rng.uniform(0, 1, rows).round(3),
        "temp": (500 + np.tile(np.arange(cycles), units) + rng.normal(0, 0.1, rows)).round(2),
        "vibration": rng.normal(1, 0.1, rows).round(3),
    })


def cmapss_text(frame: pd.DataFrame) -> str:
    """C-MAPSS layout: no header, single spaces, two trailing spaces on every line."""
    return "".join(" ".join(str(v) for v in row) + "  \n" for row in frame.itertuples(index=False))


def read_quietly(*args, **kwargs) -> RunHistory:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShopfloorWarning)
        return read_runs(*args, **kwargs)


def test_cmapss_train_fd001(shared_data):
    path = shared_data / "cmapss" / "train_FD001.txt"
    assert is_cmapss_file(path)
    runs = read_quietly(path)
    assert (len(runs), len(runs.frame), len(runs.sensors), len(runs.settings)) == (100, 20_631, 21, 3)
    assert (runs.unit, runs.time, runs.source) == ("unit", "cycle", "train_FD001.txt")
    assert runs.units == list(range(1, 101))
    assert list(runs.frame.columns) == CMAPSS_COLUMNS
    assert runs.frame.index.equals(pd.RangeIndex(len(runs.frame)))


def test_generic_csv_gives_the_same_frame_as_cmapss(shared_data, tmp_path):
    cmapss = read_quietly(shared_data / "cmapss" / "train_FD001.txt")
    csv = tmp_path / "train.csv"
    cmapss.frame.sample(frac=1, random_state=0).to_csv(csv, index=False)  # shuffled, with a header
    with pytest.warns(ShopfloorWarning, match="not in order within 100 units"):
        generic = read_runs(csv, unit="unit", time="cycle", settings=["setting_1", "setting_2", "setting_3"])
    assert (generic.settings, generic.sensors) == (cmapss.settings, cmapss.sensors)
    pd.testing.assert_frame_equal(generic.frame, cmapss.frame)


def test_gzipped_cmapss_and_rul_txt(tmp_path):
    frame = runs_table(units=4, cycles=3)
    full = pd.DataFrame({name: frame.iloc[:, i % 5] for i, name in enumerate(CMAPSS_COLUMNS)})
    full["unit"], full["cycle"] = frame["engine"], frame["cycle"]
    path = tmp_path / "test_FD009.txt.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(cmapss_text(full))
    assert is_cmapss_file(path)
    runs = read_quietly(path)
    assert (len(runs), runs.settings, len(runs.sensors)) == (4, CMAPSS_COLUMNS[2:5], 21)
    rul = tmp_path / "RUL_FD009.txt"
    rul.write_text("112  \n98  \n\n69  \n7  \n")
    got = read_rul(rul, runs.units)
    assert got.dtype == np.float64 and got.tolist() == [112, 98, 69, 7]


def test_rul_txt_count_must_match_units(tmp_path):
    rul = tmp_path / "RUL_FD001.txt"
    rul.write_text("".join(f"{v}\n" for v in range(99)))
    with pytest.raises(BadTarget, match=r"RUL_FD001.txt has 99 values but the test data has 100 units"):
        read_rul(rul, list(range(1, 101)))


def test_rul_csv_in_any_order_and_a_missing_unit(tmp_path):
    path = tmp_path / "rul.csv"
    pd.DataFrame({"Unit": [3.0, 1.0, 2.0, 9.0], "RUL": [30, 10, 20, 90]}).to_csv(path, index=False)
    with pytest.warns(ShopfloorWarning, match="ignored 1 units"):
        assert read_rul(path, [1, 2, 3]).tolist() == [10, 20, 30]
    pd.DataFrame({"unit": ["1", "2"], "rul": [10, 20]}).to_csv(path, index=False)
    with pytest.raises(BadTarget, match=r"rul.csv has no RUL for 2 units .*unit 3, 4"):
        read_rul(path, [1, 2, 3, 4])
    pd.DataFrame({"unit": [1], "life": [10]}).to_csv(path, index=False)
    with pytest.raises(ColumnMissing, match="'unit' and 'rul'"):
        read_rul(path, [1])
    with pytest.raises(BadTarget, match="negative"):
        read_rul(pd.DataFrame({"unit": [1], "rul": [-1]}), [1])


def test_shuffled_rows_are_sorted_with_one_warning(tmp_path):
    frame = runs_table()
    shuffled = frame.iloc[[14, 0, 3, 1, 2, 4, 13, 12, 11, 10, 5, 6, 7, 8, 9]]
    with pytest.warns(ShopfloorWarning, match=r"not in order within 2 units \(e.g. unit 1\); sorted") as seen:
        runs = read_runs(shuffled, unit="engine", time="cycle", settings=["altitude"])
    assert len([w for w in seen if "sorted" in str(w.message)]) == 1
    pd.testing.assert_frame_equal(runs.frame.astype("float64"), frame.astype("float64"))
    assert shuffled.index[0] == 14  # the caller's frame is not touched


def test_duplicate_time_stamps_name_unit_and_time():
    frame = runs_table()
    frame.loc[8, "cycle"] = 3  # unit 2 now has cycle 3 twice
    with pytest.raises(BadColumn, match=r"unit 2 has two rows at cycle 3 in the data"):
        read_runs(frame, unit="engine", time="cycle")


def test_gaps_are_interpolated_within_each_unit(tmp_path):
    frame = runs_table()
    frame.loc[[1, 2], "temp"] = np.nan  # inside unit 1
    frame.loc[5, "vibration"] = np.nan  # first row of unit 2
    frame.loc[10:14, "altitude"] = np.nan  # the whole of unit 3
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    with pytest.warns(ShopfloorWarning) as seen:
        runs = read_runs(path, unit="engine", time="cycle", settings=["altitude"])
    messages = " | ".join(str(w.message) for w in seen)
    assert "filled 3 missing values in runs.csv" in messages
    assert "'altitude' has no values in 1 units of runs.csv (e.g. unit 3)" in messages
    temp = runs.frame["temp"]
    assert temp[1] == pytest.approx(temp[0] + (temp[3] - temp[0]) / 3)
    assert runs.frame.loc[5, "vibration"] == runs.frame.loc[6, "vibration"]
    assert runs.frame.loc[10:14, "altitude"].isna().all()


def test_an_empty_sensor_is_an_error():
    frame = runs_table().assign(broken=np.nan)
    with pytest.raises(BadColumn, match="sensor 'broken' in the data has no values at all; drop it with --drop broken"):
        read_runs(frame, unit="engine", time="cycle")
    assert read_quietly(frame, unit="engine", time="cycle", drop=["broken"]).sensors == ["altitude", "temp", "vibration"]


def test_unit_and_time_are_required_for_generic_data(tmp_path):
    path = tmp_path / "runs.csv"
    runs_table().to_csv(path, index=False)
    assert not is_cmapss_file(path)
    with pytest.raises(BadOption, match="pass --unit COL --time COL"):
        read_runs(path)


def test_unknown_columns_are_named(tmp_path):
    path = tmp_path / "runs.csv"
    runs_table().to_csv(path, index=False)
    with pytest.raises(ColumnMissing, match=r"the time column 'time' is not in runs.csv \(columns found: 'engine'"):
        read_runs(path, unit="engine", time="time")
    with pytest.raises(ColumnMissing, match="the dropped column 'nope'"):
        read_runs(path, unit="engine", time="cycle", drop=["nope"])


def test_text_columns_are_ignored_and_text_settings_refused():
    frame = runs_table().assign(operator="Ann")
    with pytest.warns(ShopfloorWarning, match="ignored 1 non-numeric columns of the data: 'operator'"):
        runs = read_runs(frame, unit="engine", time="cycle")
    assert "operator" not in runs.frame.columns
    with pytest.raises(BadColumn, match="setting 'operator'.*not numeric"):
        read_runs(frame, unit="engine", time="cycle", settings=["operator"])
    with pytest.raises(BadColumn, match="no numeric sensor columns"), pytest.warns(ShopfloorWarning):
        read_runs(frame[["engine", "cycle", "operator"]], unit="engine", time="cycle")


def test_missing_unit_or_time_and_empty_data():
    frame = runs_table()
    frame.loc[[4, 7], "cycle"] = np.nan
    with pytest.raises(BadColumn, match=r"2 rows of the data have no engine or no cycle \(first: data row 5\)"):
        read_runs(frame, unit="engine", time="cycle")
    with pytest.raises(DataFileError, match="no rows"):
        read_runs(runs_table().iloc[:0], unit="engine", time="cycle")


def test_a_unit_with_one_row_and_text_ids_and_time_stamps():
    frame = runs_table(units=2).iloc[:6]  # unit 2 has a single row
    runs = read_quietly(frame, unit="engine", time="cycle")
    assert runs.units == [1, 2] and len(runs) == 2 and len(runs.frame) == 6
    frame = frame.assign(engine=["b"] * 5 + ["a"], cycle=pd.date_range("2024-01-01", periods=6, freq="h"))
    runs = read_quietly(frame, unit="engine", time="cycle")
    assert runs.units == ["a", "b"]
    assert runs.frame["cycle"].diff().iloc[2] == 3600.0
