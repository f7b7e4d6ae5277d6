"""A forecasting model through the real app: JSON rows of history per line (and the known covariates of the steps
to forecast, as rows without targets) in, the model's own forecasts per line out."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from shopfloor.errors import ShopfloorWarning
from shopfloor.registry import Registry
from shopfloor.serve.auth import create_token
from shopfloor.tasks.forecast.model import ForecastModel
from tasks.forecast.forecast_series import FAST, plant_output

HISTORY = 300


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from fastapi.testclient import TestClient

    from shopfloor.serve.app import create_app

    data = plant_output(steps=HISTORY + 12, lines=2, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShopfloorWarning)
        model = ForecastModel(time="time", targets=["output"], series="line", known=["planned"],
                              **{**FAST, "max_epochs": 3}).fit(data.groupby("line").head(HISTORY))
    folder = tmp_path_factory.mktemp("forecast-service")
    model.save(folder / "model")
    root = folder / "models"
    Registry(root, create=True).add("lines", folder / "model")
    token = create_token(root, "planner", "read")
    with TestClient(create_app(root), base_url="http://testserver") as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, model, data


def records(frame: pd.DataFrame) -> list[dict]:
    frame = frame.assign(time=frame["time"].dt.strftime("%Y-%m-%dT%H:%M:%S"))
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


def test_rows_of_history_and_future_get_the_models_forecasts_per_line(served):
    client, model, data = served
    history = data.groupby("line").head(HISTORY).groupby("line").tail(60)
    future = data.groupby("line").tail(12).assign(output=np.nan, temperature=np.nan)
    answer = client.post("/api/models/lines/predict", json={"rows": records(pd.concat([history, future]))})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["task"] == "forecast"
    got = pd.DataFrame(body["predictions"])
    assert len(got) == 2 * 12 and set(got["line"]) == {"L1", "L2"}
    expected = model.predict(history, future=future[["line", "time", "planned"]])
    np.testing.assert_allclose(got["forecast"], expected["forecast"], rtol=1e-5)
    np.testing.assert_allclose(got["q0.9"], expected["q0.9"], rtol=1e-5)
    assert got["time"].iloc[0] == expected["time"].iloc[0].strftime("%Y-%m-%dT%H:%M:%S")


def test_rows_without_the_future_known_covariates_are_refused_in_one_line(served):
    client, _, data = served
    history = data.groupby("line").head(HISTORY).groupby("line").tail(60)
    answer = client.post("/api/models/lines/predict", json={"rows": records(history)})
    assert answer.status_code == 422, answer.text
    assert "known covariate 'planned' has no value for series L1" in answer.text


def test_rows_in_any_order_give_the_same_forecasts(served):
    client, model, data = served
    history = data.groupby("line").head(HISTORY).groupby("line").tail(60)
    future = data.groupby("line").tail(12).assign(output=np.nan, temperature=np.nan)
    sent = pd.concat([history, future]).sample(frac=1, random_state=1)  # any order: the time column sorts them
    answer = client.post("/api/models/lines/predict", json={"rows": records(sent)})
    assert answer.status_code == 200, answer.text
    got = pd.DataFrame(answer.json()["predictions"]).sort_values(["line", "time"])
    expected = model.predict(history, future=future[["line", "time", "planned"]])
    np.testing.assert_allclose(got["forecast"], expected["forecast"], rtol=1e-5)
