"""Life-stage-aware references for RUL models: generated run-to-failure histories where a sensor trends with age.

A fleet of young engines (histories that stop well before failure, as the line's test engines do) reads lower on
a wear sensor than the training profile's mix of all cycles: without age bands that is a drift verdict for
nothing wrong; with them none, while a sensor shifted by half a standard deviation in the same young fleet is
still found. Profiles saved before the bands are compared as before."""

import numpy as np
import pandas as pd

from shopfloor.watch.compare import compare_view, mixture_quantiles
from shopfloor.watch.profile import STAGES, ModelView, build_profile


def fleet(engines: int, seed: int, stop: float = 1.0) -> pd.DataFrame:
    """Run-to-failure histories of 120-280 cycles, kept up to `stop` of their length: `wear` rises with age (about
    1.5 sd of its noise per 100 cycles), `flat` does not."""
    rng = np.random.default_rng(seed)
    parts = []
    for unit in range(engines):
        life = int(rng.integers(120, 280))
        cycles = np.arange(1, max(int(life * stop), 2) + 1)
        offset = rng.normal(0, 0.3)
        parts.append(pd.DataFrame({"unit": unit, "age": cycles.astype(float),
                                   "wear": 10 + offset + 1.5 * cycles / 100 + rng.normal(0, 1, len(cycles)),
                                   "flat": 5 + rng.normal(0, 1, len(cycles))}))
    return pd.concat(parts, ignore_index=True)


def interleaved(frame: pd.DataFrame) -> pd.DataFrame:
    """Engines replayed cycle by cycle, as the line does; the last 500 readings are the window."""
    return frame.sort_values(["age", "unit"], kind="stable").iloc[-500:].reset_index(drop=True)


TRAINING = fleet(60, seed=0)
INPUTS = ["wear", "flat"]


def profile(ages: bool) -> dict:
    return build_profile(TRAINING[INPUTS], pd.DataFrame({"rul": np.zeros(len(TRAINING))}),
                         groups=TRAINING["unit"].to_numpy(), ages=TRAINING["age"].to_numpy() if ages else None)


STAGED, PLAIN = profile(True), profile(False)


def verdicts(reference: dict, window: pd.DataFrame) -> dict:
    report = compare_view(reference, ModelView(window[INPUTS], pd.DataFrame({"rul": np.zeros(len(window))}),
                                               ages=window["age"].to_numpy()))
    return {r["input"]: r["verdict"] for r in report["inputs"]}


def young(seed: int) -> pd.DataFrame:
    return interleaved(fleet(100, seed=seed, stop=0.5))


def test_the_profile_holds_one_histogram_per_age_band():
    assert len(STAGED["stages"]["edges"]) == STAGES - 1
    bands = STAGED["inputs"]["wear"]["stages"]
    assert len(bands) == STAGES and all(len(b["proportions"]) == len(STAGED["inputs"]["wear"]["proportions"])
                                        for b in bands)
    assert bands[0]["mean"] < bands[-1]["mean"] - 2  # the wear sensor rises with age
    assert "stages" not in PLAIN and "stages" not in PLAIN["inputs"]["wear"]


def test_a_young_fleet_drifts_against_all_life_stages_without_bands():
    # the false alarm of `make demo`: what the bands fix (a profile saved before them still behaves so)
    assert verdicts(PLAIN, young(1))["wear"] == "drift"


def test_a_young_fleet_gives_no_drift_against_its_own_life_stage():
    for seed in (1, 2, 3):
        assert set(verdicts(STAGED, young(seed)).values()) == {"ok"}, seed


def test_a_shifted_sensor_in_a_young_fleet_is_still_found():
    window = young(1)
    sd = STAGED["inputs"]["wear"]["std"]
    for change in (lambda w: w + 0.5 * sd, lambda w: w * 1.1, lambda w: np.full(len(w), w.iloc[0])):
        shifted = window.assign(wear=change(window["wear"]))
        assert verdicts(STAGED, shifted)["wear"] == "drift"
    flat_sd = STAGED["inputs"]["flat"]["std"]
    assert verdicts(STAGED, window.assign(flat=window["flat"] + 0.5 * flat_sd))["flat"] == "drift"


def test_readings_without_ages_are_compared_with_the_whole_profile():
    window = young(1)
    report = compare_view(STAGED, ModelView(window[INPUTS], pd.DataFrame({"rul": np.zeros(len(window))})))
    assert {r["input"]: r["verdict"] for r in report["inputs"]}["wear"] == "drift"


def test_a_mixture_of_one_part_gives_back_its_quantiles():
    quantiles = np.linspace(0, 10, 21)
    mixed = mixture_quantiles([quantiles], np.array([1.0]))
    assert abs(np.median(mixed) - 5) < 0.3 and mixed[0] >= 0 and mixed[-1] <= 10
    two = mixture_quantiles([np.zeros(21), np.full(21, 10.0)], np.array([0.75, 0.25]))
    assert two[50] == 0 and two[-1] == 10


def test_the_rolling_profile_carries_each_readings_age():
    from shopfloor.watch.rolling import RollingProfile

    window = young(1)
    records = window[INPUTS].to_dict("records")
    aged, unaged = RollingProfile(STAGED), RollingProfile(STAGED)
    for start in range(0, len(records), 50):  # batches, as the line feeds them
        aged.add_records(records[start:start + 50], ages=window["age"].to_numpy()[start:start + 50])
        unaged.add_records(records[start:start + 50])
    assert {r["verdict"] for r in aged.report()["inputs"]} == {"ok"}
    assert {r["input"]: r["verdict"] for r in unaged.report()["inputs"]}["wear"] == "drift"  # age unknown


def test_the_line_counts_each_machines_readings_as_its_age():
    from types import SimpleNamespace

    from shopfloor.watch.line import LineWatch

    replay = fleet(100, seed=1, stop=0.5).sort_values(["age", "unit"], kind="stable")  # cycle by cycle, interleaved
    readings = [{"line": "line-1", "machine": f"engine-{u}", "time": a, "values": v}
                for u, a, v in zip(replay["unit"], replay["age"], replay[INPUTS].to_dict("records"), strict=True)]
    for profile, expected in ((STAGED, set()), (PLAIN, {"wear"})):
        scorer = SimpleNamespace(name="rul", version=1, columns=frozenset(INPUTS),
                                 estimator=SimpleNamespace(drift_profile_=profile))
        watch, published = LineWatch(every=500, seconds=0, per_batch=1000), []
        for start in range(0, len(readings), 250):
            watch.observe(SimpleNamespace(scorers={"rul": scorer}), readings[start:start + 250], [],
                          publish=lambda topic, payload, qos, sent=published: sent.append(payload))
        assert {p.split("input '")[1].split("'")[0] for p in published} == expected
        if profile is STAGED:
            assert max(watch.cycles["rul"].values()) == replay["age"].max()
