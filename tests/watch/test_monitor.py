"""A sensor-monitoring model profiles its training readings and held-out scores; a sensor read in other units
drifts, and the readings of the same process do not."""

import numpy as np
from tests.tasks.monitor.monitor_processes import pump

from shopfloor.tasks.monitor.model import MonitorModel
from shopfloor.watch.compare import compare_view


def test_a_monitor_model_watches_its_sensors():
    model = MonitorModel(time="time", max_epochs=2, progress=False).fit(pump(rows=1200, seed=0))
    profile = model.drift_profile_
    assert list(profile["inputs"]) == model.sensor_columns_ and list(profile["outputs"]) == ["score"]
    same = pump(rows=600, seed=1)
    assert compare_view(profile, model.drift_view(same))["drifting"] == []
    other_units = same.copy()
    other_units["temperature"] = other_units["temperature"] * 9 / 5 + 32  # Fahrenheit
    report = compare_view(profile, model.drift_view(other_units))
    assert report["drifting"] == ["temperature"]
    assert np.isfinite(report["outputs"][0]["psi"])
