"""The diagnose model's drift view: a sensor whose gain rose by half drifts in its RMS, an unchanged recording of
the same machine drifts nowhere, and the profile survives save and load."""

from __future__ import annotations

import numpy as np
import pytest
from bearings import write_classes

import shopfloor
from shopfloor.tasks.diagnose.model import DiagnoseModel
from shopfloor.watch.compare import compare_view

KNOWN = ("normal", "inner", "outer")


@pytest.fixture(scope="module")
def signals(tmp_path_factory):
    root = tmp_path_factory.mktemp("drift-bearings")
    write_classes(root / "train", KNOWN, recordings=2, seconds=1.5, seed=0)
    write_classes(root / "same", KNOWN, recordings=1, seconds=3.5, seed=1)  # 123 windows: 100 give a verdict
    louder = write_classes(root / "louder", KNOWN, recordings=1, seconds=3.5, seed=1)
    for path in louder.rglob("*.npy"):
        np.save(path, np.load(path) * 1.5)  # the accelerometer's gain, x1.5
    model = DiagnoseModel(window=1024, rate=12_000, front="spectrum", max_epochs=4, progress=False).fit(root / "train")
    return root, model


def test_a_gain_of_one_and_a_half_on_a_channel_drifts_and_an_unchanged_recording_does_not(signals, tmp_path):
    root, model = signals
    (channel,) = model.channels_
    same = compare_view(model.drift_profile_, model.drift_view(root / "same"))
    assert same["drifting"] == [], _said(same)
    loaded = shopfloor.load(model.save(tmp_path / "model"))
    louder = compare_view(loaded.drift_profile_, loaded.drift_view(root / "louder"))
    assert f"{channel} rms" in louder["drifting"], _said(louder)
    verdicts = {r["input"]: r["verdict"] for r in louder["inputs"]}
    assert verdicts[f"{channel} kurtosis"] != "drift" and verdicts[f"{channel} crest factor"] != "drift"  # shape kept
    assert {"fault", "confidence", "novelty"} <= set(model.drift_profile_["outputs"])


def _said(report: dict) -> list[tuple]:
    return [(r["input"], r["verdict"], r.get("psi"), r.get("wasserstein_sd"), r["readings"]) for r in report["inputs"]]
