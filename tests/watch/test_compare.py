"""Verdicts on generated readings: injected changes of known size are found and named, resamples of the reference
distribution raise none (fixed seed; the rate is stated in each test), and the findings name what is wrong."""

import numpy as np
import pandas as pd

from shopfloor.watch.compare import DRIFT_PSI, DRIFT_SD, DRIFT_TAIL, compare_view, most_drifting
from shopfloor.watch.profile import ModelView, build_profile, group_variation

SENSORS = ["temperature", "pressure", "speed", "torque"]


def plant(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(50 + 10 * j, 2 + j, rows).round(2) for j, name in enumerate(SENSORS)})
    frame["type"] = rng.choice(["L", "M", "H"], rows, p=[0.6, 0.3, 0.1])
    return frame


def outputs_of(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"risk": 1 / (1 + np.exp(-(frame["torque"].to_numpy() - 80) / 3))})


PROFILE = build_profile(plant(8000, seed=0), outputs_of(plant(8000, seed=0)))


def report_of(frame: pd.DataFrame) -> dict:
    return compare_view(PROFILE, ModelView(frame, outputs_of(frame)))


def test_resamples_of_the_reference_distribution_raise_no_verdict():
    # 40 samples of 500 readings: 0 drift verdicts and 0 watch verdicts on 5 inputs and 1 output (seed 1)
    reports = [report_of(plant(500, seed=s)) for s in range(1, 41)]
    assert sum(r["verdict"] == "drift" for r in reports) == 0
    assert sum(r["verdict"] == "watch" for r in reports) == 0


def test_a_half_sd_shift_in_one_input_is_found_and_named():
    for name in SENSORS:
        frame = plant(500, seed=7)
        frame[name] += 0.5 * PROFILE["inputs"][name]["std"]
        report = report_of(frame)
        assert report["drifting"] == [name], (name, report["drifting"])
        assert most_drifting(report) == name


def test_a_small_shift_is_not_called_drift():
    frame = plant(500, seed=8)
    frame["speed"] += 0.05 * PROFILE["inputs"]["speed"]["std"]
    assert report_of(frame)["drifting"] == []


def test_a_stuck_sensor_is_found_by_its_repeated_reading():
    frame = plant(500, seed=9)
    frame.loc[460:, "pressure"] = frame.loc[459, "pressure"]  # the last 40 readings repeat one value
    result = next(r for r in report_of(frame)["inputs"] if r["input"] == "pressure")
    assert [f["finding"] for f in result["findings"]] == ["stuck"]
    assert result["verdict"] == "drift"


def test_a_rescaled_sensor_is_out_of_range_and_drifts():
    frame = plant(500, seed=10)
    frame["temperature"] *= 1.1
    result = next(r for r in report_of(frame)["inputs"] if r["input"] == "temperature")
    assert result["verdict"] == "drift"
    assert "out of range" in [f["finding"] for f in result["findings"]]


def test_missing_sensor_and_new_categories_are_findings():
    frame = plant(500, seed=11)
    frame.loc[:300, "torque"] = np.nan
    frame.loc[:20, "type"] = "XL"
    report = report_of(frame)
    torque = next(r for r in report["inputs"] if r["input"] == "torque")
    kinds = next(r for r in report["inputs"] if r["input"] == "type")
    assert [f["finding"] for f in torque["findings"]] == ["missing"] and torque["verdict"] == "drift"
    assert [f["finding"] for f in kinds["findings"]] == ["new categories"] and "'XL'" in kinds["findings"][0]["detail"]


def test_a_change_of_category_mix_drifts():
    frame = plant(500, seed=12)
    frame["type"] = np.random.default_rng(12).choice(["L", "M", "H"], 500, p=[0.2, 0.3, 0.5])
    assert report_of(frame)["drifting"] == ["type"]


def test_output_drift_follows_the_input_that_moves_it():
    frame = plant(500, seed=13)
    frame["torque"] += 0.5 * PROFILE["inputs"]["torque"]["std"]
    risk = report_of(frame)["outputs"][0]
    assert risk["input"] == "risk" and risk["verdict"] != "ok"


def test_groups_raise_the_bar_by_how_much_engines_differ():
    rng = np.random.default_rng(0)
    engine = np.repeat(np.arange(40), 100)
    level = rng.normal(0, 1, 40)[engine]  # each engine reads at its own level
    values = level + rng.normal(0, 0.3, len(engine))
    natural = group_variation(values, engine)
    assert natural["sd"] > 0.1
    independent = group_variation(rng.normal(0, 1, len(engine)), engine)
    assert independent["sd"] < natural["sd"] / 2


def test_the_profile_is_bounded_and_holds_no_rows():
    import json

    big = plant(50_000, seed=3)
    profile = build_profile(big, outputs_of(big))
    assert len(json.dumps(profile)) < 40_000
    assert str(big["temperature"].iloc[123]) not in json.dumps(profile["inputs"]["type"])


def tool_wear(rows: int, seed: int) -> pd.DataFrame:
    """A sensor that reads from zero up to a hard edge (minutes since a tool change; tools go at about 240)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"tool wear": np.minimum(rng.uniform(0, 220, rows) + rng.exponential(8, rows), 253).round()})


WEAR = build_profile(tool_wear(8000, seed=0), pd.DataFrame({"risk": np.zeros(8000)}))


def wear_report(frame: pd.DataFrame) -> dict:
    return compare_view(WEAR, ModelView(frame, pd.DataFrame({"risk": np.zeros(len(frame))})))["inputs"][0]


def test_a_sensor_from_zero_rescaled_by_a_tenth_is_found_by_its_tails():
    for seed in range(20, 25):
        frame = tool_wear(500, seed=seed)
        frame["tool wear"] *= 1.1
        result = wear_report(frame)
        # bins and the mean barely move: the verdict comes from the readings above the old 99th percentile
        assert result["psi"] < DRIFT_PSI and result["wasserstein_sd"] < DRIFT_SD, result
        assert result["verdict"] == "drift" and result["tail_p"] < 1e-6 and result["tail_shares"][1] >= DRIFT_TAIL, result


def test_tails_of_resamples_stay_quiet():
    # 40 resamples of 100 to 500 readings of the reference: no tail verdict at all (seed 30 on)
    for seed in range(30, 70):
        result = wear_report(tool_wear(100 + 10 * (seed - 30), seed=seed))
        assert result["verdict"] == "ok" and result["tail_p"] > 1e-3, result


def confidence_report(reference: np.ndarray, current: np.ndarray) -> dict:
    """The verdict on a classifier's `confidence` output alone (its one input unchanged)."""
    rng = np.random.default_rng(20)
    sensor = pd.DataFrame({"temperature": rng.normal(50, 2, len(reference))})
    profile = build_profile(sensor, pd.DataFrame({"confidence": np.minimum(reference, 1.0)}))
    view = ModelView(sensor.iloc[:len(current)], pd.DataFrame({"confidence": np.minimum(current, 1.0)}))
    return next(r for r in compare_view(profile, view)["outputs"] if r["input"] == "confidence")


def test_a_saturated_confidence_that_moves_by_a_few_billionths_does_not_drift():
    # 1 - 1e-9 with an sd of 1e-8 (a saturated network's held-out windows) against 1 - 2e-9: 0.8 of those sds by
    # Wasserstein and every window in the middle deciles, 'drift' before the output resolution
    rng = np.random.default_rng(21)
    reference = 1 - 1e-9 + 1e-8 * rng.normal(size=4000)
    result = confidence_report(reference, 1 - 2e-9 + 1e-10 * rng.normal(size=500))
    assert result["verdict"] == "ok", result
    assert result["wasserstein_sd"] < 1e-3 and result["psi"] < 0.01, result
    # every window 1e-7 below 1, under the held-out minimum: no 'out of range' either (CWRU's test part)
    below = confidence_report(reference, 1 - 1e-7 + 1e-10 * rng.normal(size=500))
    assert below["verdict"] == "ok" and below["findings"] == [], below


def test_a_real_move_of_the_confidence_drifts():
    rng = np.random.default_rng(22)
    moved = 0.9 + 0.005 * rng.normal(size=500)
    from_confident = confidence_report(0.99 + 0.005 * rng.normal(size=4000), moved)
    from_saturated = confidence_report(1 - 1e-9 + 1e-8 * rng.normal(size=4000), moved)
    assert from_confident["verdict"] == "drift" and from_saturated["verdict"] == "drift", (from_confident, from_saturated)
    assert from_saturated["wasserstein_sd"] >= 9, from_saturated  # 0.09 in units of the 0.01 resolution
