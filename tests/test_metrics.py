"""Metrics, decision thresholds and calibration."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.metrics import (
    CLASSIFICATION_KEYS,
    REGRESSION_KEYS,
    best_threshold,
    binary_metrics,
    expected_calibration_error,
    fit_platt,
    fit_temperature,
    multiclass_metrics,
    regression_metrics,
)


def f1_at(y, proba, threshold) -> float:
    flagged = proba >= threshold
    tp = np.sum(flagged & (y == 1))
    return 2 * tp / (flagged.sum() + y.sum()) if flagged.sum() + y.sum() else 0.0


def cost_at(y, proba, threshold, miss_cost, false_alarm_cost) -> float:
    flagged = proba >= threshold
    return miss_cost * np.sum(~flagged & (y == 1)) + false_alarm_cost * np.sum(flagged & (y == 0))


def all_thresholds(proba):
    """Every distinct way to flag rows: at each score, and above the highest (no alarm)."""
    return [*np.unique(proba), np.inf]


cases = st.integers(2, 40).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 1), min_size=n, max_size=n),
    st.lists(st.integers(0, 20).map(lambda k: k / 20), min_size=n, max_size=n),  # ties on purpose
))


@pytest.mark.parametrize(("y", "proba", "flagged"), [
    ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]),  # separable: the threshold sits in the gap
    ([0, 1, 0, 1, 1], [0.1, 0.3, 0.4, 0.6, 0.9], [0, 1, 1, 1, 1]),  # F1 8/9 beats 4/5 for the top two
    ([1, 0, 0, 0, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [1, 0, 0, 0, 0, 0]),
])
def test_best_threshold_by_hand(y, proba, flagged):
    y, proba = np.array(y), np.array(proba)
    threshold = best_threshold(y, proba)
    assert ((proba >= threshold).astype(int) == flagged).all()


@settings(max_examples=200, deadline=None)
@given(case=cases)
def test_best_threshold_maximises_f1(case):
    y, proba = np.array(case[0]), np.array(case[1])
    threshold = best_threshold(y, proba)
    best = max(f1_at(y, proba, t) for t in all_thresholds(proba))
    assert f1_at(y, proba, threshold) == pytest.approx(best)


@settings(max_examples=200, deadline=None)
@given(case=cases, miss_cost=st.sampled_from([1.0, 5.0, 50.0]), false_alarm_cost=st.sampled_from([1.0, 3.0, 20.0]))
def test_cost_threshold_minimises_cost(case, miss_cost, false_alarm_cost):
    y, proba = np.array(case[0]), np.array(case[1])
    threshold = best_threshold(y, proba, miss_cost, false_alarm_cost)
    cheapest = min(cost_at(y, proba, t, miss_cost, false_alarm_cost) for t in all_thresholds(proba))
    assert cost_at(y, proba, threshold, miss_cost, false_alarm_cost) == pytest.approx(cheapest)


def test_costly_misses_lower_the_threshold_costly_alarms_raise_it():
    rng = np.random.default_rng(0)
    y = rng.random(2000) < 0.1
    proba = np.clip(0.1 + 0.5 * y + rng.normal(0, 0.15, 2000), 0, 1)
    f1 = best_threshold(y, proba)
    low = best_threshold(y, proba, miss_cost=50, false_alarm_cost=1)
    high = best_threshold(y, proba, miss_cost=1, false_alarm_cost=50)
    assert low < f1 < high
    assert np.mean(proba[y] >= low) > np.mean(proba[y] >= f1)  # catches more failures
    assert np.mean(proba[~y] >= high) < np.mean(proba[~y] >= f1)  # raises fewer false alarms


def test_no_failures_means_no_alarms():
    proba = np.array([0.1, 0.5, 0.7])
    for costs in [(None, None), (1.0, 1.0)]:
        assert not (proba >= best_threshold(np.zeros(3), proba, *costs)).any()


def test_platt_scaling_fixes_overconfident_scores():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-logits / 3))).astype(float)  # true slope 1/3
    a, b = fit_platt(logits, y)

    def log_loss(p):
        p = np.clip(p, 1e-12, 1 - 1e-12)
        return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))

    raw, fitted = 1 / (1 + np.exp(-logits)), 1 / (1 + np.exp(-(a * logits + b)))
    assert log_loss(fitted) < log_loss(raw) - 0.05
    assert a == pytest.approx(1 / 3, abs=0.05) and b == pytest.approx(0, abs=0.15)
    assert expected_calibration_error(y, fitted) < expected_calibration_error(y, raw)


def test_platt_on_degenerate_rows_keeps_the_model():
    a, b = fit_platt(np.array([3.0, 2.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0, 1.0]))  # scores point the wrong way
    assert (a, b) == (1.0, 0.0)


def test_temperature_scaling_fixes_overconfident_classes():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 1.5, (3000, 4))
    y = np.array([rng.choice(4, p=np.exp(z) / np.exp(z).sum()) for z in true_logits])
    t = fit_temperature(true_logits * 3, y)  # three times too confident
    assert t == pytest.approx(3, rel=0.15)


def test_binary_metric_keys_and_values():
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    proba = np.array([0.1, 0.2, 0.6, 0.7, 0.8, 0.4, 0.3, 0.9])
    result = binary_metrics(y, proba, proba >= 0.5)
    assert tuple(result) == CLASSIFICATION_KEYS
    assert result["accuracy"] == pytest.approx(6 / 8)
    assert result["precision"] == pytest.approx(3 / 4) and result["recall"] == pytest.approx(3 / 4)
    assert result["f1"] == pytest.approx(3 / 4)
    assert result["roc_auc"] == pytest.approx(15 / 16)
    assert result["mcc"] == pytest.approx(0.5)
    single = binary_metrics(np.zeros(4), np.full(4, 0.2), np.zeros(4))
    assert np.isnan(single["roc_auc"]) and np.isnan(single["pr_auc"]) and single["accuracy"] == 1.0


def test_multiclass_metric_keys_and_values():
    y = np.array([0, 1, 2, 2, 1, 0])
    proba = np.eye(3)[[0, 1, 2, 1, 1, 0]] * 0.8 + 0.2 / 3
    result = multiclass_metrics(y, proba, proba.argmax(1))
    assert tuple(result) == CLASSIFICATION_KEYS
    assert result["accuracy"] == pytest.approx(5 / 6)
    assert result["f1"] == result["f1_macro"]
    assert 0.5 < result["roc_auc"] <= 1 and 0.5 < result["pr_auc"] <= 1


def test_two_class_multiclass_metrics_have_a_roc_auc():
    """A two-class defect model scored roc_auc null (issue 13): one-vs-rest needs one score column for two classes."""
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    p1 = np.array([0.1, 0.2, 0.6, 0.7, 0.8, 0.4, 0.3, 0.9])
    result = multiclass_metrics(y, np.c_[1 - p1, p1], (p1 >= 0.5).astype(int))
    assert result["roc_auc"] == pytest.approx(15 / 16)  # as binary_metrics on the same scores
    three = np.c_[1 - p1, p1, np.zeros(8)]  # a model of three classes scored on a set that has two of them
    assert multiclass_metrics(y, three, three.argmax(1))["roc_auc"] == pytest.approx(15 / 16)


def test_regression_metric_keys_and_values():
    result = regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 6.0]))
    assert tuple(result) == REGRESSION_KEYS
    assert result["rmse"] == pytest.approx(1.0) and result["mae"] == pytest.approx(0.5)
    assert result["r2"] == pytest.approx(1 - 4 / 5)
