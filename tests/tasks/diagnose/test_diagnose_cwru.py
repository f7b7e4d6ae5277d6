"""A real CWRU subsample (../shared/data/cwru, tests only): four classes at load 0, the 48 kHz normal baseline
brought to 12 kHz by the model, the first 70 % of every recording training and the last 30 % testing."""

from __future__ import annotations

import numpy as np
import pytest

from shopfloor.tasks.diagnose.model import DiagnoseModel
from shopfloor.tasks.diagnose.signals import resample
from shopfloor.tasks.diagnose.windows import time_split

FILES = {"normal": "normal_0_97.mat", "inner_007": "12k_Drive_End_IR007_0_105.mat",
         "ball_007": "12k_Drive_End_B007_0_118.mat", "outer_007": "12k_Drive_End_OR007@6_0_130.mat"}
SECONDS = 3.0  # of each recording, to keep the test quick


@pytest.fixture(scope="module")
def cwru(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("cwru")
    for label, name in FILES.items():
        (root / label).mkdir()
        (root / label / name).symlink_to(shared_data / "cwru" / name)
    return root


def test_the_normal_baseline_is_read_at_48_khz_and_brought_to_12(cwru):
    reader = DiagnoseModel(rate=12_000, rates={"normal*": 48_000})
    recordings, labelled = reader.read(cwru)
    normal = next(r for r in recordings if r.label == "normal")
    assert labelled and normal.rate == 48_000 and normal.channels == ["DE_time"] and normal.samples == 243_938
    at_12k = resample(normal, 12_000)
    assert at_12k.samples == pytest.approx(243_938 / 4, abs=1)
    # the shaft rate (about 29.9 Hz at 1796 rpm) is where it belongs once the rate is right
    spectrum = np.abs(np.fft.rfft(at_12k.values[0] - at_12k.values[0].mean()))
    hz = np.arange(len(spectrum)) * 12_000 / at_12k.samples
    near = (hz > 20) & (hz < 40)
    assert hz[near][np.argmax(spectrum[near])] == pytest.approx(29.9, abs=1.0)


def test_a_leakage_free_split_of_real_bearings_is_diagnosed(cwru):
    reader = DiagnoseModel(rate=12_000, rates={"normal*": 48_000})
    recordings = [resample(r, 12_000) for r in reader.read(cwru)[0]]
    for r in recordings:
        r.values = r.values[:, : int(SECONDS * 12_000)]
    train, test = time_split(recordings, 0.7)
    model = DiagnoseModel(window=1024, front="spectrum", max_epochs=15, progress=False).fit(train)
    metrics = model.evaluate(test)
    assert metrics["accuracy"] >= 0.95 and metrics["recording_accuracy"] == 1.0
