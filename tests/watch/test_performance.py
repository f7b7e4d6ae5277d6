"""CBPE on a generated classifier whose probabilities are calibrated by construction."""

import numpy as np

from shopfloor.watch.performance import (
    RELIABILITY_KNOTS,
    RELIABILITY_MIN_CLASS,
    classifier_estimate,
    classifier_profile,
    estimated_performance,
    measured_performance,
    reliability_curve,
)


def calibrated(rows: int, shift: float, seed: int):
    """Failure probability from a sensor; outcomes drawn from it. `shift` moves the sensor (covariate shift)."""
    rng = np.random.default_rng(seed)
    sensor = rng.normal(shift, 1, rows)
    p = 1 / (1 + np.exp(-(3 * sensor - 4)))
    return p, (rng.uniform(size=rows) < p).astype(int)


def test_estimated_accuracy_and_f1_match_the_measured_ones_under_covariate_shift():
    for shift in (0.0, 0.7, -0.5):  # failure rates of about 11 %, 26 % and 5 %
        p, y = calibrated(40_000, shift, seed=int(10 * shift) + 5)
        estimated, measured = estimated_performance(p, 0.4), measured_performance(p, y, 0.4)
        assert abs(estimated["accuracy"] - measured["accuracy"]) < 0.01, shift
        assert abs(estimated["f1"] - measured["f1"]) < 0.02, shift
        assert abs(estimated["failure_rate"] - measured["failure_rate"]) < 0.01, shift


def test_an_overconfident_model_is_caught_out_by_labels():
    p, y = calibrated(40_000, 0.0, seed=3)
    sharpened = p ** 0.3 / (p ** 0.3 + (1 - p) ** 0.3)  # the same ranking, probabilities pushed to 0 and 1... wrongly
    assert estimated_performance(sharpened, 0.5)["accuracy"] - measured_performance(sharpened, y, 0.5)["accuracy"] < -0.05


def mis_scaled(p: np.ndarray) -> np.ndarray:
    """The same ranking with the tails a sigmoid cannot follow: low probabilities doubled, high ones shrunk."""
    z = np.log(p / (1 - p))
    return 1 / (1 + np.exp(-(0.6 * z - 0.5 * np.tanh(z + 2) + 0.3)))


def test_a_reliability_curve_from_held_out_rows_corrects_probabilities_that_are_off_in_the_tails():
    p, y = calibrated(40_000, -0.5, seed=7)  # failure rate about 5 %, the held-out rows of training
    reported = mis_scaled(p)
    curve = reliability_curve(reported, y)
    assert len(curve["risk"]) <= RELIABILITY_KNOTS and np.all(np.diff(curve["risk"]) >= 0)
    assert np.all(np.diff(curve["rate"]) >= 0)
    for shift in (-0.5, 0.0):  # new rows, the same model, the inputs moved
        p_new, y_new = calibrated(40_000, shift, seed=20 + int(10 * shift))
        new = mis_scaled(p_new)
        measured = measured_performance(new, y_new, 0.5)
        as_reported = estimated_performance(new, 0.5)
        through_curve = estimated_performance(new, 0.5, curve)
        assert abs(as_reported["f1"] - measured["f1"]) > 0.05, shift  # the tails do matter here
        assert abs(through_curve["f1"] - measured["f1"]) < 0.02, shift
        assert abs(through_curve["accuracy"] - measured["accuracy"]) < 0.01, shift


def test_the_profile_entry_carries_the_curve_and_older_profiles_read_probabilities_as_they_are():
    p, y = calibrated(5_000, 0.0, seed=11)
    entry = classifier_profile(p, y, 0.4)
    assert entry["reliability"] is not None and entry["threshold"] == 0.4
    assert entry["reference"]["measured"] == measured_performance(p, y, 0.4)
    old = {"output": "risk", "threshold": 0.4}
    assert classifier_estimate(old, p) == estimated_performance(p, 0.4)
    few = np.zeros(5_000)
    few[:RELIABILITY_MIN_CLASS - 1] = 1  # too few failures to draw a curve from
    assert reliability_curve(p, few) is None and classifier_profile(p, few, 0.4)["reliability"] is None


def test_a_table_model_keeps_the_reliability_curve_of_its_out_of_fold_outputs(binary_model):
    classifier = binary_model.model.drift_profile_["classifier"]
    curve = classifier["reliability"]
    assert curve and len(curve["risk"]) <= RELIABILITY_KNOTS and np.all(np.diff(curve["rate"]) >= 0)
    # the curve of the out-of-fold outputs (the model keeps them all when there are at most 20,000), not the deployed
    model = binary_model.model
    out_of_fold = reliability_curve(model.validation_outputs_.numpy()[:, 0], model.validation_targets_.numpy()[:, 0])
    assert np.allclose(curve["risk"], out_of_fold["risk"]) and np.allclose(curve["rate"], out_of_fold["rate"])
