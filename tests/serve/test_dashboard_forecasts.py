"""The dashboard's forecast fans (issue 18, item 3): on a machine's page, a live forecasting model whose targets
the machine sends forecasts from the machine's stored readings (the machine as its series), and the page draws
the point forecast and the quantile bands after the last reading; a model that needs the plan says so; a machine
that no forecasting model knows is shown as before."""

from __future__ import annotations

import os
import re
import shutil
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from tasks.forecast.forecast_series import FAST, plant_output

from shopfloor.errors import ShopfloorWarning
from shopfloor.registry import Registry
from shopfloor.serve import forecasts
from shopfloor.serve.auth import COOKIE, create_token
from shopfloor.store import Store, default_url
from shopfloor.tasks.forecast.model import ForecastModel

STEPS = 160
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _fit(data: pd.DataFrame, **options) -> ForecastModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShopfloorWarning)
        return ForecastModel(time="time", targets=["output"], series="line", **{**FAST, "max_epochs": 2,
                                                                               **options}).fit(data)


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    """Two lines' hourly output; a model per line without covariates ('output'), one that needs the plan
    ('planned'); the store holds the readings of machine L1 (output and the temperature), L9 (unknown to both
    models) and L2 (whose readings carry no dates)."""
    data = plant_output(steps=STEPS, lines=2, seed=3)
    folder = tmp_path_factory.mktemp("forecast-fans")
    root = folder / "models"
    registry = Registry(root, create=True)
    plain = _fit(data[["time", "line", "output"]])
    plain.save(folder / "plain")
    registry.add("output", folder / "plain")
    _fit(data[["time", "line", "output", "planned"]], known=["planned"]).save(folder / "planned")
    registry.add("planned", folder / "planned")
    store = Store(default_url(root))
    now = time.time()
    l1 = data[data["line"] == "L1"]
    seconds = (l1["time"] - pd.Timestamp(0)) / pd.Timedelta(seconds=1)
    readings = [dict(line="line-1", machine=machine, time=float(t) - (0 if machine != "L2" else 1.7e9),
                     values={"output": float(v), "temperature": 40.0}, sent_at=now, received_at=now)
                for machine in ("L1", "L9", "L2") for t, v in zip(seconds, l1["output"], strict=True)]
    states = [dict(line="line-1", machine=m, time=readings[-1]["time"]) for m in ("L1", "L9", "L2")]
    store.write_batch(readings, [], [], states)
    token = create_token(root, "anna", "read")
    yield {"root": root, "store": store, "token": token, "plain": plain, "l1": l1}
    store.close()


def _page(line, machine: str) -> str:
    from fastapi.testclient import TestClient

    from shopfloor.serve.app import create_app

    with TestClient(create_app(line["root"]), base_url="http://testserver", follow_redirects=False) as client:
        client.cookies.set(COOKIE, line["token"])
        answer = client.get(f"/machines/line-1/{machine}")
    assert answer.status_code == 200, answer.text
    return answer.text


def test_the_machine_page_draws_the_fan_after_the_readings(line):
    page = _page(line, "L1")
    assert "<h2>Forecasts" in page
    fan = re.search(r'<svg class="chart fan".*?</svg>', page, re.S).group(0)
    assert "output: forecast 12 steps ahead (output v1)" in fan
    bands = re.findall(r'<polygon class="band" points="([^"]+)"><title>80 % interval</title>', fan)
    assert len(bands) == 1
    readings = [tuple(map(float, p.split(","))) for p in re.search(r'class="line" points="([^"]+)"', fan)[1].split()]
    ahead = [tuple(map(float, p.split(","))) for p in re.search(r'class="forecast" points="([^"]+)"', fan)[1].split()]
    assert len(readings) == line["plain"].lookback and len(ahead) == 1 + 12  # from the last reading, then the horizon
    assert ahead[0] == readings[-1] and all(b[0] > a[0] for a, b in zip(ahead, ahead[1:], strict=False))
    band_x = [float(p.split(",")[0]) for p in bands[0].split()]
    assert min(band_x) > readings[-1][0]  # the bands lie after the last reading
    last = line["l1"]["time"].iloc[-1] + pd.Timedelta(hours=12)
    assert f">{last:%Y-%m-%d %H:%M} UTC</text>" in fan  # the time axis ends at the last forecast step, as a date
    # the model that needs the plan says so in one line instead of a fan
    assert re.search(r"model planned v1: needs the plan: its known covariates \(planned\) over the next 12 steps", page)


def test_the_fan_is_the_models_forecast_from_the_readings_on_its_grid(line):
    """The forecast drawn is the model's own from the machine's last look-back of readings."""
    model, l1 = line["plain"], line["l1"]
    live = Registry(line["root"]).live("output")
    fans = forecasts.machine_fans(live, line["store"], "line-1", "L1")
    assert [f["target"] for f in fans] == ["output"]
    history = forecasts.grid_history(model, line["store"].readings("line-1", "L1", limit=STEPS), "L1")
    assert len(history) == model.lookback and (history["line"] == "L1").all()
    np.testing.assert_allclose(history["output"], l1["output"].tail(model.lookback), rtol=1e-9)
    expected = model.predict(l1[["time", "line", "output"]])
    got = model.predict(history)
    np.testing.assert_allclose(got["forecast"], expected["forecast"], rtol=1e-5)
    assert forecasts.machine_fans(live, line["store"], "line-1", "L1") is fans  # cached until a new reading


def test_readings_faster_than_the_steps_fill_the_look_back_with_the_latest_before_each_step(line, tmp_path):
    model = line["plain"]
    store = Store(default_url(tmp_path))
    start = 1.7e9
    readings = [dict(line="a", machine="L1", time=start + 600.0 * k, values={"output": float(k)}, sent_at=None,
                     received_at=start) for k in range(6 * 60)]  # every 10 minutes for 60 hourly steps
    store.write_batch(readings)
    got = forecasts.look_back(store, "a", "L1", model.lookback * model.step_)
    store.close()
    assert model.lookback * 6 <= len(got) < len(readings)
    history = forecasts.grid_history(model, got, "L1")
    assert list(history["output"])[-3:] == [347.0, 353.0, 359.0]  # one reading an hour, back from the newest


def test_pages_no_forecasting_model_applies_to_are_unchanged(line):
    unknown = _page(line, "L9")
    assert "Forecasts" not in unknown and 'class="chart fan"' not in unknown
    undated = _page(line, "L2")  # a machine that counts time: the dated model says why it draws nothing
    assert "readings count time without dates" in undated and 'class="chart fan"' not in undated


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_fan_draws_in_a_browser(line):
    """Chromium lays out the fan: the forecast starts where the readings end and runs right of them, inside the
    band's width."""
    from rest_service import signed_in_page

    with signed_in_page(line["root"], line["token"], "/machines/line-1/L1") as page:
        page.wait_for_selector("svg.fan .forecast")
        box = {name: page.eval_on_selector(f"svg.fan .{name}", "e => { const b = e.getBoundingClientRect(); "
                                           "return [b.x, b.width, b.height]; }") for name in ("line", "forecast", "band")}
        if os.environ.get("SHOPFLOOR_SCREENSHOTS"):
            page.locator("svg.fan").screenshot(path=os.environ["SHOPFLOOR_SCREENSHOTS"])
    (line_x, line_w, _), (fan_x, fan_w, _), (band_x, band_w, band_h) = box["line"], box["forecast"], box["band"]
    assert line_w > 0 and fan_w > 0 and band_h > 0
    assert abs(fan_x - (line_x + line_w)) < 3 and band_x >= fan_x and band_x + band_w <= fan_x + fan_w + 3


def test_the_api_docs_say_what_a_forecast_answer_holds(line):
    from fastapi.testclient import TestClient

    from shopfloor.serve.app import create_app

    with TestClient(create_app(line["root"]), base_url="http://testserver") as client:
        schema = client.get("/openapi.json").json()
        assert client.get("/docs").status_code == 200
    words = schema["components"]["schemas"]["PredictResponse"]["properties"]["predictions"]["description"]
    assert "forecasting: per series, step and target: series, time, target, forecast, q<level>" in words
    assert "rows without targets carry the known covariates of the steps to forecast" in words


def test_which_machines_a_model_forecasts_and_a_past_covariate_the_machine_does_not_send(line, tmp_path):
    from types import SimpleNamespace

    one = SimpleNamespace(series_column_=None, series_ids_=["(all)"])
    assert forecasts.knows(one, "any-press") and forecasts.knows(line["plain"], "L1")
    assert not forecasts.knows(line["plain"], "L9")
    model = SimpleNamespace(target_columns_=["output"], past_columns_=["temperature", "vibration"], known_columns_=[],
                            series_column_=None, series_ids_=["(all)"])
    store = Store(default_url(tmp_path))
    store.write_batch([dict(line="a", machine="m", time=1.7e9, values={"output": 1.0, "temperature": 40.0},
                            sent_at=None, received_at=1.7e9)])
    live = SimpleNamespace(name="heat", version=2, estimator=model)
    fans = forecasts.machine_fans(live, store, "a", "m")
    store.close()
    assert fans == [{"model": "heat v2", "note": "reads vibration as well, which this machine does not send"}]
