"""The forecasting estimator on generated series of known structure: it beats the naive forecasts, one model learns
many lines, its intervals cover about what they say, zeros do not break it, and it survives save/load and ONNX."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import shopfloor
from shopfloor.errors import BadTarget, ShopfloorWarning
from shopfloor.tasks.forecast.model import ForecastModel
from tasks.forecast.forecast_series import FAST, SHIFT_AT, plant_output

TRAIN = 640  # steps of history the model learns from (the level shift at SHIFT_AT is inside it)


def fit(data, **params) -> ForecastModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShopfloorWarning)
        return ForecastModel(**{"time": "time", "targets": ["output"], "known": ["planned"], **FAST, **params}).fit(data)


@pytest.fixture(scope="module")
def line():
    data = plant_output(steps=900, noise=0.3)
    return data, fit(data.iloc[:TRAIN])


def naive_errors(data: pd.DataFrame, rows: pd.DataFrame, season: int) -> float:
    """MAE of the forecast 'the value `season` steps before, as last seen before the origin' on a backtest's rows."""
    value = data.set_index("time")["output"]
    step = pd.Timedelta(hours=1)
    lag = ((rows["time"] - rows["origin"]) // step) // season * season + season  # a season-multiple at or before origin
    reference = value.reindex(rows["time"] - lag * step).to_numpy()
    return float(np.mean(np.abs(reference - rows["actual"].to_numpy())))


def test_it_beats_the_naive_and_seasonal_naive_forecasts_after_a_level_shift(line):
    data, model = line
    rows, metrics = model.backtest(data, data["time"].iloc[TRAIN])
    assert SHIFT_AT < TRAIN and metrics["origins"] == 900 - TRAIN - model.horizon + 1
    naive, seasonal = naive_errors(data, rows, 1), naive_errors(data, rows, 24)
    assert metrics["mae"] < 0.6 * min(naive, seasonal), (metrics["mae"], naive, seasonal)
    assert metrics["mase"] < 0.8 and {"rmse", "smape", "quantile_loss", "coverage_80"} <= set(metrics)


def test_intervals_cover_about_what_they_say_on_generated_noise():
    """A stationary line (no trend, no shift), so that the held-out end is like the future, as conformal
    calibration assumes: 80 % intervals cover 80 % +- 8 points of 289 x 12 backtest steps (0.80 measured)."""
    data = plant_output(steps=900, noise=0.5, trend=0.0, shift=0.0)
    model = fit(data.iloc[:600], holdout=0.25)
    _, metrics = model.backtest(data, data["time"].iloc[600])
    assert 0.72 <= metrics["coverage_80"] <= 0.88, metrics
    assert model.validation_metrics_["coverage_80"] >= 0.8  # on the held-out windows it was calibrated on


def test_predict_gives_every_step_with_quantiles_that_never_cross(line):
    data, model = line
    history, future = data.iloc[:TRAIN], data.iloc[TRAIN:TRAIN + model.horizon][["time", "planned"]]
    table = model.predict(history, future=future)
    assert list(table.columns) == ["time", "target", "forecast", "q0.1", "q0.5", "q0.9"]
    assert len(table) == model.horizon and (table["target"] == "output").all()
    assert table["time"].iloc[0] == data["time"].iloc[TRAIN] and table["time"].is_monotonic_increasing
    assert (table["q0.1"] <= table["q0.5"]).all() and (table["q0.5"] <= table["q0.9"]).all()
    truth = data["output"].iloc[TRAIN:TRAIN + model.horizon].to_numpy()
    assert np.mean(np.abs(table["forecast"] - truth)) < 1.0  # noise 0.3, planned effect 2.5, daily swing 4


def test_one_model_learns_many_lines_of_different_levels_and_starts():
    data = plant_output(steps=300, lines=4, seed=2, shift=0.0).assign(never=0.0)  # a covariate that never moves
    data = data[~((data["line"] == "L3") & (data.groupby("line").cumcount() < 60))]  # L3 starts later
    cut = data.groupby("line").cumcount(ascending=False) >= 24  # every line's last day held back
    model = fit(data[cut], series="line", horizon=12, max_epochs=12, batch_size=128)
    assert model.series_ids_ == ["L1", "L2", "L3", "L4"]
    future = data[~cut].groupby("line").head(12)[["line", "time", "planned"]]
    table = model.predict(data[cut], future=future)
    assert len(table) == 4 * 12 and list(table.columns[:2]) == ["line", "time"]
    truth = data[~cut].groupby("line").head(12).set_index(["line", "time"])["output"]
    error = np.abs(table.set_index(["line", "time"])["forecast"] - truth)
    assert error.groupby(level=0).mean().max() < 1.2, error.groupby(level=0).mean()  # levels 10, 12, 14, 16


def test_zeros_and_intermittent_demand_train_without_dividing_by_zero():
    rng = np.random.default_rng(0)
    steps = 300
    demand = np.where(rng.random(steps) < 0.1, rng.integers(1, 5, steps), 0).astype(float)
    data = pd.DataFrame({"week": np.arange(steps), "demand": demand})  # no covariate, no calendar: 0 of each
    model = fit(data, time="week", targets=["demand"], known=[], horizon=7, lookback=28)
    assert model.past_columns_ == [] and model.calendar_cycles_ == [] and not model.stamped_
    table = model.predict(data)
    assert list(table["week"]) == list(range(steps, steps + 7))
    assert np.isfinite(table[["forecast", "q0.1", "q0.9"]].to_numpy()).all()
    assert table["forecast"].abs().max() < 5


def test_a_series_too_short_is_left_out_with_a_warning_and_too_short_for_all_is_an_error():
    data = pd.concat([plant_output(steps=300, lines=2), plant_output(steps=40, seed=3).assign(line="tiny")])
    with pytest.warns(ShopfloorWarning, match=r"1 series .* left out of training: tiny \(40 steps\)"):
        model = ForecastModel(time="time", targets=["output"], series="line", **{**FAST, "max_epochs": 2}).fit(data)
    assert model.skipped_series_ == ["tiny"]
    with pytest.raises(BadTarget, match="a horizon of 12 steps with a look-back of 48 needs at least 73 steps"):
        ForecastModel(time="time", targets=["output"], **FAST).fit(plant_output(steps=60))


def test_save_and_load_give_the_same_forecasts(line, tmp_path):
    """(ONNX parity is checked through the CLI's export, test_forecast_cli.py.)"""
    data, model = line
    history, future = data.iloc[:TRAIN], data.iloc[TRAIN:TRAIN + model.horizon][["time", "planned"]]
    model.save(tmp_path / "model")
    loaded = shopfloor.load(tmp_path / "model")
    pd.testing.assert_frame_equal(loaded.predict(history, future=future), model.predict(history, future=future))
    assert loaded.validation_metrics_ == model.validation_metrics_


def test_explain_ranks_the_known_covariate_above_a_noise_covariate(line):
    data, model = line
    table = model.explain(data.iloc[:TRAIN])
    assert list(table.columns) == ["target", "input", "lags", "attribution", "share"]
    assert set(table["lags"]) == {"1-12", "13-24", "25-36", "37-48", "ahead"}
    share = table.groupby("input")["share"].sum()
    assert share["planned"] > 3 * share["temperature"], share
    assert share.sum() == pytest.approx(1.0)
