"""Per-machine windows: readings in any order, nulls, and a window started from stored history."""

from __future__ import annotations

import numpy as np

from shopfloor.stream.machines import Windows, shown_time


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


def test_rul_is_estimated_once_per_message_at_its_newest_reading_however_batched(rul_model):
    """An estimate per reading cost 25 forward passes and stored rows per gateway message (25 cycles) and cut
    the line from 20,000 to 13,000 readings/s; one per message, at its newest cycle, keeps alerts independent
    of how the worker batches messages."""
    from shopfloor.stream.payload import encode_message, encode_reading, parse
    from shopfloor.stream.scoring import score_rul, scorer_for

    history = rul_model.test[rul_model.test["engine"] == 1]
    columns = rul_model.model.input_columns
    rows = [encode_reading(float(row["cycle"]), {c: float(row[c]) for c in columns}) for _, row in history.iterrows()]
    messages = [parse("plant/line-1/unit-1/telemetry", encode_message(rows[i:i + 5], 0.0)) for i in range(0, 30, 5)]
    answers = []
    for batching in ([messages], [[m] for m in messages]):  # all messages in one batch, then one per batch
        scorer = scorer_for("rul", 1, rul_model.model)
        scored, estimates = [], []
        for batch in batching:
            readings, got = score_rul(scorer, [r for message in batch for r in message])
            scored += [r["time"] for r in readings]
            estimates.append(got)
        assert scored == [max(r["time"] for r in message) for message in messages]  # one per message, its newest
        answers.append(np.concatenate(estimates))
    np.testing.assert_allclose(answers[0], answers[1], rtol=0, atol=1e-5)


def test_an_alert_shows_a_historians_stamp_as_a_date_and_a_cycle_as_a_number():
    assert shown_time(1_772_634_420.0) == "2026-03-04 14:27:00 UTC"
    assert shown_time(19.0) == "time 19"


def test_slots_grow_past_their_capacity_keeping_what_they_hold():
    windows = Windows(["a", "b"], window=3, baseline=1, capacity=2)
    first = windows.slot_of(("line-1", "m0"))
    windows.add(np.array([first]), np.array([1.0]), np.array([[5.0, 6.0]]))
    slots = [windows.slot_of(("line-1", f"m{i}")) for i in range(1, 300)]
    assert slots == list(range(1, 300)) and len(windows) == 300 and len(windows.seen) >= 300
    assert windows.seen[first] == 1 and windows.newest[first] == 1.0 and windows.newest[299] == -np.inf
    assert windows.ring.shape[0] == windows.first.shape[0] == windows.gappy.shape[0] == len(windows.seen)
