"""Time columns: the order of day and month is decided once per column, from the data or the user."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.data.runs import read_runs
from shopfloor.data.times import parse_times
from shopfloor.errors import BadColumn, BadOption
from shopfloor.tasks.rul.model import RULModel
from shopfloor.tasks.tabular.schema import EPOCH, TableSchema, infer_schema

YEAR = pd.date_range("2018-01-01", "2018-12-31 23:45", freq="15min")


def readings(stamps: pd.DatetimeIndex, fmt: str) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"time": stamps.strftime(fmt), "spindle load": rng.normal(50, 5, len(stamps)),
                         "failure": rng.integers(0, 2, len(stamps))})


def days(stamps) -> np.ndarray:
    return ((pd.DatetimeIndex(stamps) - EPOCH) / pd.Timedelta(days=1)).to_numpy(dtype=np.float32)


def test_a_year_of_day_first_readings_is_read_day_first():
    """Issue 13.1: '02-01-2018 00:15' is 2 January; every day <= 12 was read as a month before."""
    frame = readings(YEAR, "%d-%m-%Y %H:%M")
    schema = infer_schema(frame, targets=["failure"])
    assert schema.dates == ["time"] and schema.date_orders == {"time": "dayfirst"}
    numbers, _ = schema.to_arrays(frame)
    np.testing.assert_array_equal(numbers[:, schema.numeric_inputs.index("time")], days(YEAR))


@pytest.mark.parametrize("fmt, order", [("%d-%m-%Y %H:%M", "dayfirst"), ("%m/%d/%Y %H:%M", "monthfirst"),
                                        ("%d.%m.%y %H:%M", "dayfirst")])
def test_readings_of_the_first_twelve_days_are_read_the_way_that_keeps_a_steady_pace(fmt, order):
    """No field above 12; read the other way, 15-minute readings leap a month at every midnight."""
    stamps = YEAR[: 96 * 10]
    parsed, used = parse_times(pd.Series(stamps.strftime(fmt)), "time")
    assert used == order
    assert (parsed.to_numpy() == stamps.to_numpy()).all()


def test_run_histories_are_read_the_way_that_keeps_time_running_forward_in_each_unit():
    # one reading a day on days 1-12 of January and February: month-first, each unit runs backwards
    stamps = pd.DatetimeIndex([*pd.date_range("2018-01-01", periods=12), *pd.date_range("2018-02-01", periods=12)])
    frame = pd.DataFrame({"engine": [1] * 24 + [2] * 24, "time": list(stamps.strftime("%d/%m/%Y")) * 2,
                          "temperature": np.arange(48.0)})
    runs = read_runs(frame, unit="engine", time="time")
    assert runs.time_order == "dayfirst" and runs.time_is_stamp
    assert (runs.times(runs.frame["time"].to_numpy()[:24]) == stamps).all()


def test_a_column_readable_both_ways_is_refused_until_the_user_says():
    frame = pd.DataFrame({"time": ["01-02-2018", "05-06-2018", "03-04-2018", "02-03-2018"] * 6,
                          "spindle load": np.arange(24.0), "failure": [0, 1] * 12})
    with pytest.raises(BadColumn, match=r"'time' .* day-first or month-first .*'01-02-2018'.*--dayfirst or --monthfirst"):
        infer_schema(frame, targets=["failure"])
    schema = infer_schema(frame, targets=["failure"], date_order="monthfirst")
    assert schema.date_orders == {"time": "monthfirst"}
    assert schema.to_arrays(frame)[0][0, schema.numeric_inputs.index("time")] == days(["2018-01-02"])[0]
    with pytest.raises(BadOption, match="date order 'yearfirst' is unknown"):
        infer_schema(frame, targets=["failure"], date_order="yearfirst")


def test_one_column_never_mixes_the_two_orders():
    with pytest.raises(BadColumn, match=r"mixes date orders: row 2 \('25-01-2018'\) can only be day-first, "
                                        r"row 3 \('01-25-2018'\) only month-first"):
        parse_times(pd.Series(["01-01-2018", "25-01-2018", "01-25-2018"]), "time")


def test_a_model_reads_new_files_in_the_order_it_was_trained_with():
    """A new file of a few rows may be readable both ways: the schema's stored order decides."""
    schema = infer_schema(readings(YEAR[::97], "%d-%m-%Y %H:%M"), targets=["failure"])
    schema = TableSchema.from_json(schema.to_json())  # as saved in the model's manifest
    new = pd.DataFrame({"time": ["02-01-2019 06:00"], "spindle load": [50.0]})
    assert schema.to_arrays(new)[0][0, 1] == days(["2019-01-02 06:00"])[0]
    assert schema.to_arrays(new, date_order="monthfirst")[0][0, 1] == days(["2019-02-01 06:00"])[0]


def test_a_rul_model_reads_new_histories_in_its_training_order():
    model = RULModel(unit="engine", time="time")
    model.time_order_ = "dayfirst"  # what fit stored: the training histories settled it
    frame = pd.DataFrame({"engine": [1, 1], "time": ["01-02-2018", "02-02-2018"], "temperature": [1.0, 2.0]})
    runs = model._runs(frame)
    assert list(runs.times(runs.frame["time"])) == [pd.Timestamp("2018-02-01"), pd.Timestamp("2018-02-02")]


def test_year_first_dates_and_month_names_are_not_ambiguous():
    parsed, used = parse_times(pd.Series(["2018-01-02 00:15", "2 Jan 2018", None, ""]), "time")
    assert used is None
    assert list(parsed[:2]) == [pd.Timestamp("2018-01-02 00:15"), pd.Timestamp("2018-01-02")]
    assert parsed[2:].isna().all()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 3 * 365), st.integers(2, 60), st.sampled_from([15, 60, 24 * 60]),
       st.sampled_from(["%d-%m-%Y %H:%M", "%m/%d/%Y %H:%M"]))
def test_dates_are_read_right_or_refused_never_read_wrong(start_day, count, minutes, fmt):
    stamps = pd.date_range(pd.Timestamp("2017-01-01") + pd.Timedelta(days=start_day), periods=count,
                           freq=f"{minutes}min")
    try:
        parsed, _ = parse_times(pd.Series(stamps.strftime(fmt)), "time")
    except BadColumn as err:
        assert "--dayfirst or --monthfirst" in str(err)
        return
    assert (parsed.to_numpy() == stamps.to_numpy()).all()
