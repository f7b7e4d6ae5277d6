"""The stream's rolling profile: fixed memory, the last readings in order, the same report as a file gives."""

import numpy as np
import pandas as pd
from tests.watch.test_compare import PROFILE, outputs_of, plant

from shopfloor.watch.compare import compare_view
from shopfloor.watch.profile import ModelView
from shopfloor.watch.rolling import RollingProfile


def test_memory_stays_fixed_however_many_readings_arrive():
    rolling = RollingProfile(PROFILE, window=300)
    size = rolling.nbytes
    for seed in range(30):
        frame = plant(997, seed)
        rolling.add(frame, outputs_of(frame))
    assert rolling.nbytes == size
    assert rolling.seen == 30 * 997
    assert len(rolling.view().inputs) == 300


def test_the_ring_holds_the_last_readings_in_order_and_reports_as_a_file_would():
    frames = [plant(n, seed) for seed, n in enumerate([130, 240, 7, 400])]
    rolling = RollingProfile(PROFILE, window=500)
    for frame in frames:
        rolling.add(frame, outputs_of(frame))
    last = pd.concat(frames, ignore_index=True).iloc[-500:].reset_index(drop=True)
    held = rolling.view()
    np.testing.assert_allclose(held.inputs["torque"].to_numpy(), last["torque"].to_numpy())
    assert list(held.inputs["type"]) == list(last["type"])
    assert rolling.report()["inputs"] == compare_view(PROFILE, ModelView(last, outputs_of(last)))["inputs"]


def test_a_shift_on_the_line_is_named_within_500_readings():
    rolling = RollingProfile(PROFILE, window=500)
    warm = plant(500, seed=20)
    rolling.add(warm, outputs_of(warm))
    shifted = plant(500, seed=21)
    shifted["speed"] += 0.5 * PROFILE["inputs"]["speed"]["std"]
    found = None
    for start in range(0, 500, 25):
        rolling.add(shifted.iloc[start:start + 25], outputs_of(shifted.iloc[start:start + 25]))
        if rolling.report()["drifting"] == ["speed"]:
            found = start + 25
            break
    assert found is not None and found <= 500
