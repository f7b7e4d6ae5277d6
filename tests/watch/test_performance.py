"""CBPE on a generated classifier whose probabilities are calibrated by construction."""

import numpy as np

from shopfloor.watch.performance import estimated_performance, measured_performance


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
