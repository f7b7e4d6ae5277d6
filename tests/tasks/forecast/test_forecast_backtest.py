"""Backtests never see the future: every row at or after an origin is poisoned (targets and past-only covariates;
known covariates are known ahead by definition) and that origin's forecasts do not change, with the saved
model and with --refit."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from shopfloor.errors import BadOption, BadTarget, ShopfloorWarning
from shopfloor.tasks.forecast.model import ForecastModel
from tasks.forecast.forecast_series import FAST, plant_output


@pytest.fixture(scope="module")
def model_and_data():
    data = plant_output(steps=500, lines=2, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShopfloorWarning)
        model = ForecastModel(time="time", targets=["output", "temperature"], series="line", known=["planned"],
                              **{**FAST, "max_epochs": 3}).fit(data[data["time"] < "2024-01-14"])
    return model, data


def poisoned(data: pd.DataFrame, origin: pd.Timestamp) -> pd.DataFrame:
    later = data["time"] >= origin
    return data.assign(output=np.where(later, 1e6, data["output"]), temperature=np.where(later, -1e6, data["temperature"]))


def forecasts_at(rows: pd.DataFrame, origin: pd.Timestamp) -> pd.DataFrame:
    return rows[rows["origin"] == origin].drop(columns="actual").reset_index(drop=True)


def test_poisoning_every_row_after_each_origin_changes_nothing_before_it(model_and_data):
    model, data = model_and_data
    start = pd.Timestamp("2024-01-15")
    clean, metrics = model.backtest(data, start, stride=5)
    origins = sorted(clean["origin"].unique())
    # L1: its steps 336, 341, ..., 486 (31 origins); L2 starts 5 hours later, so the same hours are its steps 331 ... 486
    assert metrics["origins"] == 31 + 32 and len(origins) == 32
    assert set(clean.columns) == {"line", "origin", "time", "target", "actual", "forecast", "q0.1", "q0.5", "q0.9"}
    assert len(clean) == metrics["origins"] * model.horizon * 2
    for origin in origins[::6]:
        rows, _ = model.backtest(poisoned(data, origin), origin, stride=5)
        pd.testing.assert_frame_equal(forecasts_at(rows, origin), forecasts_at(clean, origin))
    poisoned_rows, _ = model.backtest(poisoned(data, start), start, stride=5)
    assert (poisoned_rows["actual"].abs() == 1e6).all()  # the poison reached the actual values, not the forecasts


def test_a_refit_backtest_learns_only_from_rows_before_its_origins(model_and_data):
    """Later origins read the rows between START and themselves, as they should: the first origin is compared."""
    model, data = model_and_data
    start = pd.Timestamp("2024-01-18")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShopfloorWarning)
        clean, _ = model.backtest(data, start, stride=24, refit=True)
        rows, _ = model.backtest(poisoned(data, start), start, stride=24, refit=True)
    pd.testing.assert_frame_equal(forecasts_at(rows, start), forecasts_at(clean, start))
    saved, _ = model.backtest(data, start, stride=24)
    assert not np.allclose(saved["forecast"], clean["forecast"])  # a model of its own, trained on less


def test_a_start_after_the_last_possible_origin_and_bad_strides_are_refused(model_and_data):
    model, data = model_and_data
    with pytest.raises(BadTarget, match="no origin at or after 2024-03-01"):
        model.backtest(data, "2024-03-01")
    with pytest.raises(BadOption, match="stride must be at least 1"):
        model.backtest(data, "2024-01-15", stride=0)
    with pytest.raises(BadOption, match="is not a time"):
        model.backtest(data, "next monday")
