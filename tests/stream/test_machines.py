"""Per-machine windows: readings in any order, nulls, and a window started from stored history."""

from __future__ import annotations

import numpy as np

from shopfloor.stream.machines import Windows


def test_a_null_reading_holds_the_sensors_last_value():
    windows = Windows(["temperature", "pressure"], window=3, baseline=2)
    slot = windows.slot_of(("line-1", "press-1"))
    values = np.array([[1, 10], [2, np.nan], [np.nan, 30]], np.float32)
    order = [2, 0, 1]  # delivered out of order
    windows.add(np.array([slot] * 3), np.array([1.0, 2.0, 3.0])[order], values[order])
    history, start, age = windows.inputs(np.array([slot]))
    assert age.tolist() == [3.0]
    assert history[0].tolist() == [[1, 10], [2, 10], [2, 30]]
    assert start[0].tolist() == [[1, 10], [2, 10]]


def test_a_seeded_window_continues_as_if_it_had_seen_everything():
    rows = np.arange(20, dtype=np.float32).reshape(10, 2)
    whole = Windows(["a", "b"], window=4, baseline=3)
    slot = whole.slot_of(("l", "m"))
    whole.add(np.full(10, slot), np.arange(10.0), rows)
    seeded = Windows(["a", "b"], window=4, baseline=3)
    other = seeded.slot_of(("l", "m"))
    seeded.seed(other, rows[:3], rows[-4:-1], count=9, newest=8.0)  # the store held the first 9 readings
    seeded.add(np.array([other]), np.array([9.0]), rows[9:])
    for a, b in zip(whole.inputs(np.array([slot])), seeded.inputs(np.array([other])), strict=True):
        assert np.array_equal(a, b)
    assert seeded.add(np.array([other]), np.array([5.0]), rows[:1]).tolist() == [False]  # an old reading: ignored


def test_a_sensor_null_from_the_first_reading_takes_the_first_value_that_arrives():
    windows = Windows(["temperature", "pressure"], window=3, baseline=2)
    slot = windows.slot_of(("line-1", "press-1"))
    values = np.array([[1, np.nan], [2, np.nan], [3, 30]], np.float32)
    windows.add(np.array([slot] * 3), np.array([1.0, 2.0, 3.0]), values)
    history, start, _ = windows.inputs(np.array([slot]))
    assert history[0].tolist() == [[1, 30], [2, 30], [3, 30]]
    assert start[0].tolist() == [[1, 30], [2, 30]]
    assert not windows.gappy[slot]
