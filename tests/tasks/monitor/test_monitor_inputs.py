"""What a historian really holds: irregular stamps, gaps, missing readings, stuck sensors, a sensor missing or
added at prediction, bad files. Each bad input is one ShopfloorError naming what to fix."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from monitor_processes import SENSORS, pump

from shopfloor.errors import BadColumn, BadOption, BadTarget, ColumnMissing, ShopfloorError, ShopfloorWarning
from shopfloor.tasks.monitor.history import median_step, read_history, to_grid
from shopfloor.tasks.monitor.model import MonitorModel


def quick(**params) -> MonitorModel:
    return MonitorModel(time="time", max_epochs=2, progress=False, **params)


@pytest.fixture(scope="module")
def model() -> MonitorModel:
    return quick().fit(pump(rows=400, seed=0))


def test_irregular_stamps_go_on_the_median_step_and_long_gaps_break_windows():
    frame = pump(rows=12)
    stamps = frame["time"].to_numpy().copy()
    stamps[5:] += np.timedelta64(20, "s")  # readings late by a third of a step: the same slots
    stamps[8:] += np.timedelta64(60, "m")  # an hour without readings
    frame["time"] = stamps
    history = read_history(frame, "time")
    assert median_step(history) == 60.0
    grid = to_grid(history, 60.0, max_gap=5, fill=np.zeros(len(SENSORS)))
    assert grid.lengths.tolist() == [8, 4]
    assert len(grid.row_slot) == 12 and np.all(np.diff(grid.row_slot) > 0)


def test_missing_readings_are_carried_forward_within_a_segment():
    frame = pump(rows=10)
    frame.loc[3:5, "flow"] = np.nan
    frame.loc[0, "pressure"] = np.nan
    history = read_history(frame, "time")
    grid = to_grid(history, 60.0, max_gap=5, fill=np.zeros(len(SENSORS)))
    flow, pressure = SENSORS.index("flow"), SENSORS.index("pressure")
    assert np.all(grid.values[3:6, flow] == frame["flow"].iloc[2])
    assert grid.values[0, pressure] == frame["pressure"].iloc[1]


def test_predictions_keep_the_input_order_and_every_row(model):
    frame = pump(rows=200, seed=3).sample(frac=1.0, random_state=0)
    table = model.predict(frame)
    assert len(table) == 200 and (table["time"].to_numpy() == frame["time"].to_numpy()).all()
    by_time = model.predict(frame.sort_values("time")).set_index("time")
    assert np.allclose(table.set_index("time").loc[by_time.index, "score"], by_time["score"])


def test_a_sensor_that_never_moves_is_left_out_with_a_warning():
    frame = pump(rows=400).assign(setpoint=5.0)
    with pytest.warns(ShopfloorWarning, match="setpoint"):
        fitted = quick().fit(frame)
    assert "setpoint" not in fitted.sensor_columns_ and fitted.constant_sensors_ == ["setpoint"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the left-out sensor is no surprise at prediction
        fitted.predict(frame.iloc[:50])


def test_a_missing_sensor_is_an_error_and_an_extra_one_a_warning(model):
    with pytest.raises(ColumnMissing, match="'flow' is in the model but not in the data"):
        model.predict(pump(rows=50).drop(columns="flow"))
    with pytest.warns(ShopfloorWarning, match="'humidity'"):
        model.predict(pump(rows=50).assign(humidity=np.arange(50.0)))


def test_a_fleet_of_machines_is_read_per_machine():
    frames = [pump(rows=300, seed=s).assign(machine=f"P{s}") for s in range(2)]
    fleet = pd.concat(frames, ignore_index=True)  # the same stamps for both pumps
    fitted = quick(machine="machine").fit(fleet)
    table = fitted.predict(fleet)
    assert list(table.columns[:4]) == ["machine", "time", "score", "anomaly"]
    alone = fitted.predict(frames[1])
    assert np.allclose(table["score"].iloc[300:], alone["score"])


def test_false_alarm_rate_reads_alarms_per_day():
    assert quick(false_alarm_rate="2/day")._alarm_share(60.0) == pytest.approx(2 * 60 / 86_400)
    with pytest.raises(BadOption, match="alarms per day"):
        quick(false_alarm_rate="often").fit(pump(rows=400))


@pytest.mark.parametrize("edit, error, words", [
    (lambda f: f[["time"]].assign(status="on"), BadColumn, "no numeric sensor"),
    (lambda f: f.iloc[:40], BadTarget, "needs at least"),
    (lambda f: f.assign(time=f["time"].astype(str).where(f.index != 7, "yesterday")), BadColumn, "row 8"),
    (lambda f: f.assign(flow=f["flow"].astype(object).where(f.index != 12, "n/a")), BadColumn, "'flow'.*row 13"),
    (lambda f: pd.concat([f.iloc[:10], f.iloc[9:]], ignore_index=True), BadColumn, "two rows at time"),
    (lambda f: f.drop(columns="time"), ColumnMissing, "time column 'time'"),
])
@pytest.mark.filterwarnings("ignore:ignored 1 non-numeric column")
def test_bad_input_is_one_line_naming_what_to_fix(edit, error, words):
    with pytest.raises(error, match=words) as caught:
        quick().fit(edit(pump(rows=400)))
    assert isinstance(caught.value, ShopfloorError) and "\n" not in str(caught.value)


def test_no_time_column_named_is_an_error():
    with pytest.raises(BadOption, match="name the time column"):
        MonitorModel(progress=False).fit(pump(rows=400))


def test_a_long_history_scored_in_pieces_scores_as_a_whole(model, monkeypatch):
    import shopfloor.tasks.monitor.model as monitor_model

    frame = pump(rows=600, seed=4)
    whole = model.predict(frame)
    monkeypatch.setattr(monitor_model, "CHUNK", 97)  # pieces shorter than the network's reach
    pieces = model.predict(frame)
    np.testing.assert_allclose(pieces["score"], whole["score"], rtol=1e-5, atol=1e-6)
    assert (pieces["anomaly"] == whole["anomaly"]).all()
