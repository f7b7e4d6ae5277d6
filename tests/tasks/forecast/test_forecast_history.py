"""Reading series for forecasting: the grid, filled and flagged gaps, irregular steps named by row, text in a target
named by column and row, series of different starts and lengths, and the calendar a step can resolve."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shopfloor.errors import BadColumn, ShopfloorWarning
from shopfloor.tasks.forecast.calendar import calendar_cycles, calendar_features
from shopfloor.tasks.forecast.conformal import conformal_offsets, intervals
from shopfloor.tasks.forecast.history import read_series, step_words
from tasks.forecast.forecast_series import plant_output


def test_many_series_of_different_starts_and_lengths_keep_their_own_stamps():
    data = plant_output(steps=100, lines=3)
    data = data[~((data["line"] == "L2") & (data.index % 100 < 30))]  # L2 starts 30 hours later
    history = read_series(data.sample(frac=1, random_state=0), time="time", targets=["output"], series="line",
                          known=["planned"])
    assert history.ids == ["L1", "L2", "L3"] or sorted(history.ids) == ["L1", "L2", "L3"]
    lengths = dict(zip(history.ids, history.lengths(), strict=True))
    assert lengths == {"L1": 100, "L2": 70, "L3": 100}
    assert history.step == 3600.0 and history.past == ["temperature"]
    l2 = history.ids.index("L2")
    np.testing.assert_allclose(history.values[l2][:, 0], data[data["line"] == "L2"]["output"].to_numpy())


def test_missing_stamps_and_values_are_filled_flagged_and_counted_in_a_warning():
    data = plant_output(steps=60).drop(index=[10, 11, 12]).reset_index(drop=True)
    data.loc[30, "output"] = np.nan
    with pytest.warns(ShopfloorWarning, match="filled 3 missing time stamp.*1 missing value"):
        history = read_series(data, time="time", targets=["output"])
    values, flagged = history.values[0], history.flagged[0]
    assert len(values) == 60 and flagged.sum() == 4 and flagged[[10, 11, 12, 33]].all()
    truth = plant_output(steps=60)["output"].to_numpy()
    expected = np.interp([10, 11, 12], [9, 13], truth[[9, 13]])  # linear between the neighbours
    np.testing.assert_allclose(values[10:13, 0], expected)
    with pytest.warns(ShopfloorWarning, match="carried forward"):
        carried = read_series(data, time="time", targets=["output"], fill="carry", step=3600.0)
    np.testing.assert_allclose(carried.values[0][10:13, 0], truth[9])  # only earlier values fill a gap


def test_irregular_steps_are_refused_naming_the_rows():
    data = plant_output(steps=50)
    data.loc[20, "time"] += pd.Timedelta(minutes=17)
    with pytest.raises(BadColumn, match=r"irregular time steps: row\(s\) 21 \(2024-01-01 20:17:00\).*frequency \(1 h\)"):
        read_series(data, time="time", targets=["output"])


def test_text_in_a_target_names_the_column_and_the_row():
    data = plant_output(steps=30).astype({"output": object})
    data.loc[7, "output"] = "n/a (sensor off)"
    with pytest.raises(BadColumn, match=r"target 'output' of the data holds text at row 8: 'n/a \(sensor off\)'"):
        read_series(data, time="time", targets=["output"])


def test_two_rows_of_a_series_at_one_time_are_refused():
    data = plant_output(steps=30, lines=2)
    data.loc[5, "time"] = data.loc[4, "time"]
    with pytest.raises(BadColumn, match=r"series L1 has two rows at time .* \(rows 5 and 6\)"):
        read_series(data, time="time", targets=["output"], series="line")


def test_day_first_dates_with_stray_spaces_and_numeric_times_read_as_other_tasks_read_them():
    data = plant_output(steps=40)
    text = data.assign(time=[f" {t:%d/%m/%Y %H:%M} " for t in data["time"]])
    history = read_series(text, time="time", targets=["output"])
    assert history.stamped and history.step == 3600 and history.time_order == "dayfirst"
    numbers = data.assign(time=np.arange(40) * 5)
    history = read_series(numbers, time="time", targets=["output"])
    assert not history.stamped and history.step == 5 and calendar_cycles(history.step, False) == []


def test_the_calendar_keeps_the_cycles_a_step_can_resolve():
    assert calendar_cycles(3600, True) == ["hour of day", "day of week", "day of year"]
    assert calendar_cycles(86_400, True) == ["day of week", "day of year"]
    assert calendar_cycles(30 * 86_400, True) == ["day of year"]
    assert calendar_cycles(3600, True, span=20 * 86_400) == ["hour of day", "day of week"]  # a year not seen twice
    assert [step_words(s, True) for s in (900, 3600, 86_400, 7 * 86_400, 90)] == ["15 min", "1 h", "1 day", "7 days",
                                                                                  "90 s"]
    features = calendar_features(np.array([0.0, 6 * 3600, 86_400]), ["hour of day"])
    np.testing.assert_allclose(features, [[0, 1], [1, 0], [0, 1]], atol=1e-6)


def test_conformal_offsets_give_the_stated_coverage_on_new_draws():
    rng = np.random.default_rng(0)
    levels = (0.05, 0.1, 0.5, 0.9, 0.95)
    assert intervals(levels) == [(0, 4, 0.9), (1, 3, 0.8)]
    biased = np.broadcast_to(np.array([-0.3, -0.2, 0.0, 0.2, 0.3]), (400, 3, 1, 5))  # far too narrow for N(0, 1)
    offsets = conformal_offsets(biased, rng.normal(size=(400, 3, 1)), levels)
    new = rng.normal(size=(20_000, 3, 1))
    calibrated = biased[:1] + offsets
    for low, high, nominal in intervals(levels):
        covered = ((new >= calibrated[..., low]) & (new <= calibrated[..., high])).mean()
        assert abs(covered - nominal) < 0.04, (nominal, covered)


def test_series_ids_with_stray_spaces_are_one_series_and_an_empty_one_is_named_by_row():
    data = plant_output(steps=30, lines=2)
    data["line"] = data["line"].astype(object)
    data.loc[data.index[::2], "line"] = data["line"][::2] + " "  # 'L1 ' and 'L1' are one line
    history = read_series(data, time="time", targets=["output"], series="line")
    assert history.ids == ["L1", "L2"] and list(history.lengths()) == [30, 30]
    grid = history.stamp(history.seconds[1])
    assert list(grid) == list(pd.to_datetime(history.seconds[1] * 1e9, unit="ns"))
    data.loc[data.index[7], "line"] = None
    with pytest.raises(BadColumn, match="row 8 of the data has no line"):
        read_series(data, time="time", targets=["output"], series="line")
