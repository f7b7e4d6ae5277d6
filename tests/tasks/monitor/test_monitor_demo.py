"""Part 5 of `shopfloor demo`: three generated pumps, normal behaviour learnt from two days, a new day in which
one bearing starts to wear; found, explained per sensor, grouped into events, reported and exported."""

from __future__ import annotations

import json

import pandas as pd
from rich.console import Console

from shopfloor.demo import run_monitor_demo
from shopfloor.demo.pumps import FAULT_MINUTE, FAULTY_PUMP, FAULTY_SENSOR, SENSORS, pump_fleet


def test_the_generated_pumps_have_two_modes_and_one_fault_of_known_start():
    history, today = pump_fleet(days=1.0, seed=0), pump_fleet(days=1.0, seed=1, fault=True)
    assert sorted(history["pump"].unique()) == ["P1", "P2", "P3"] and set(SENSORS) <= set(history.columns)
    assert "fault" not in history.columns and today["fault"].sum() == 24 * 60 - FAULT_MINUTE
    assert set(today.loc[today["fault"] == 1, "pump"]) == {FAULTY_PUMP}
    current = history.loc[history["pump"] == "P1", SENSORS[0]]
    assert ((current > 25) & (current < 35)).mean() < 0.05  # two modes, little between them: idle and load
    again = pump_fleet(days=1.0, seed=0)
    pd.testing.assert_frame_equal(history, again)  # the same data on every machine


def test_the_monitoring_demo_finds_the_wearing_bearing(tmp_path):
    console = Console(record=True, width=160)
    metrics = run_monitor_demo(tmp_path, console, quick=True)
    printed = console.export_text()
    assert "5. Sensor monitoring" in printed and "ONNX Runtime vs torch" in printed
    assert metrics["recall"] > 0.5 and metrics["far"] < 0.1  # a floor a broken model fails
    for name in ("pumps-model", "pumps-predictions.csv", "pumps-predictions-events.csv", "pumps-report.html",
                 "pumps-model.onnx", "pumps-metrics.json"):
        assert (tmp_path / name).exists(), name
    events = pd.read_csv(tmp_path / "pumps-predictions-events.csv")
    biggest = events.sort_values("rows").iloc[-1]
    assert biggest["pump"] == FAULTY_PUMP and biggest["top_sensor"] == FAULTY_SENSOR
    assert json.loads((tmp_path / "pumps-metrics.json").read_text())["f1"] == metrics["f1"]
    difference = float(printed.split("max abs difference")[1].split()[0])
    assert difference <= 1e-4
