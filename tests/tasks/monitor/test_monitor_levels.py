"""Per-machine levels: two like pumps that read at different levels share one model, each judged against its own
normal history; a fault on one is found and its sensor named, the other stays quiet; the network fed through
`machine_levels` (as the stream and an exported network are) gives `predict`'s scores."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from manifests import edited_copy
from monitor_processes import FAULT_START, SENSORS, pump, with_fault

import shopfloor.tasks.base as base
from shopfloor.errors import NotAModel, ShopfloorWarning
from shopfloor.tasks.monitor.levels import learn_levels, machine_key
from shopfloor.tasks.monitor.model import MonitorModel

FEW_STEPS = 10
GAIN, SHIFT = 3.0, 50.0  # pump "B" reads three times the spread of pump "A", 50 units higher


def fleet(rows: int, seed: int, start: str = "2024-01-01", fault: str | None = None) -> pd.DataFrame:
    """Pumps A and B, interleaved in one table; B's readings at another level; a fault on A when asked."""
    a = pump(rows=rows, seed=seed, start=start)
    if fault:
        a, _ = with_fault(a, fault)
    b = pump(rows=rows, seed=seed + 100, start=start)
    b[SENSORS] = b[SENSORS] * GAIN + SHIFT
    both = pd.concat([a.assign(pump="A"), b.assign(pump="B")]).sort_values(["time", "pump"], kind="stable")
    return both.reset_index(drop=True)


@pytest.fixture(scope="module")
def model() -> MonitorModel:
    return MonitorModel(time="time", machine="pump", max_epochs=15, progress=False).fit(fleet(900, seed=0))


def of(table: pd.DataFrame, machine: str) -> pd.DataFrame:
    return table[table["pump"] == machine].reset_index(drop=True)


def test_both_machines_at_their_own_levels_raise_no_alarm(model):
    table = model.predict(fleet(FAULT_START, seed=1, start="2024-02-01"))
    for machine in ("A", "B"):
        assert of(table, machine)["anomaly"].iloc[100:].mean() <= 0.02, machine


def test_a_fault_on_one_machine_is_found_and_named_the_other_stays_quiet(model):
    table = model.predict(fleet(1_200, seed=1, start="2024-02-01", fault="drift"))
    a, b = of(table, "A"), of(table, "B")
    assert a["anomaly"].iloc[100:FAULT_START].mean() <= 0.02
    flagged = np.flatnonzero(a["anomaly"].to_numpy()[FAULT_START:])
    assert len(flagged) and flagged[0] <= FEW_STEPS + model.persist - 1, f"first flag {flagged[:1]} steps after the fault"
    assert a["sensor_1"].iloc[FAULT_START + int(flagged[0])] == "pressure"
    assert b["anomaly"].iloc[100:].mean() <= 0.02


def test_one_shared_standardisation_misses_what_per_machine_levels_find():
    """The reason for per-machine levels: B's spread (3x) and level (+50) swamp A's own variation."""
    data = fleet(900, seed=0)
    shared = MonitorModel(time="time", machine="pump", levels="fleet", max_epochs=15, progress=False).fit(data)
    own = MonitorModel(time="time", machine="pump", max_epochs=15, progress=False).fit(data)
    faulty = fleet(1_200, seed=1, start="2024-02-01", fault="stuck")
    found = [of(m.predict(faulty), "A")["anomaly"].iloc[FAULT_START:FAULT_START + 100].mean() for m in (shared, own)]
    assert found[1] > 0.8 and found[1] > found[0] + 0.2, found


def test_machine_levels_feed_the_network_as_predict_does(model):
    """The stream holds each machine's window and calls the network itself: gain and offset per machine first."""
    data = fleet(300, seed=2, start="2024-03-01")
    expected = of(model.predict(data), "B")["score"].to_numpy()
    readings = of(data, "B")[model.sensor_columns_].to_numpy(np.float64).T  # [sensors, time]
    gain, offset = model.machine_levels(["B"])
    with torch.no_grad():
        _, raw = model.net_(torch.as_tensor((readings * gain[0][:, None] + offset[0][:, None])[None], dtype=torch.float32))
        score = model.net_.squash(raw)[0].numpy()
    np.testing.assert_allclose(score, expected, atol=1e-5)
    gain, offset = model.machine_levels(["never seen"])
    assert (gain == 1).all() and (offset == 0).all()


def test_every_machine_mean_maps_onto_the_fleet_reference():
    rng = np.random.default_rng(0)
    values = np.vstack([rng.normal(5, 1, (200, 2)), rng.normal(-3, 4, (100, 2))])
    machines = np.array([7] * 200 + ["8"] * 100, dtype=object)
    levels = learn_levels(values, machines, np.ones(300, bool))
    moved, unknown = levels.to_fleet(values, machines)
    assert not unknown and levels.machines == ["7", "8"]
    for m in ("7", "8"):
        rows = np.array([machine_key(x) == m for x in machines])
        np.testing.assert_allclose(moved[rows].mean(0), levels.fleet_mean, atol=1e-9)
        np.testing.assert_allclose(moved[rows].std(0), levels.fleet_std, rtol=1e-9)
    assert machine_key(np.int64(7)) == machine_key(7.0) == machine_key("7") == "7"


def test_levels_survive_save_and_load_and_an_unknown_machine_is_said(model, tmp_path):
    data = fleet(300, seed=2, start="2024-03-01")
    folder = model.save(tmp_path / "fleet-monitor")
    again = base.load(folder)
    pd.testing.assert_frame_equal(again.predict(data), model.predict(data))
    lines = MonitorModel.summary(json.loads((folder / "manifest.json").read_text()))["lines"]
    assert any("each of 2 machines judged against its own" in line for line in lines)
    assert any("a step flagged after 5 steps above it" in line for line in lines)
    stranger = of(data, "A").assign(pump="C")
    with pytest.warns(ShopfloorWarning, match="C.*not in the training history"):
        model.predict(stranger)



def test_a_damaged_persistence_or_levels_table_is_refused(model, tmp_path):
    """Edited by someone who recomputes the checksum: a huge persistence or a zero spread is still refused."""
    folder = model.save(tmp_path / "fleet-monitor")
    levels = json.loads((folder / "manifest.json").read_text())["state"]["machine_levels"]
    for name, change in (("persist", {"state__persist": 10 ** 9}),
                         ("levels", {"state__machine_levels": {**levels, "std": [[0.0] * len(levels["fleet_mean"])] * 2}})):
        with pytest.raises(NotAModel, match="persist" if name == "persist" else "damaged"):
            base.load(edited_copy(folder, tmp_path / name, **change))
