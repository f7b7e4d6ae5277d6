"""A fault-diagnosis model through the real app: a gateway's block of samples, one JSON row per sample, is scored
per window and per block with the model's own answers; a block it cannot score is refused in one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES

from shopfloor import load
from shopfloor.registry import Registry
from shopfloor.serve.auth import create_token

MODEL = FIXTURES / "models" / "diagnose-v2"
INPUTS = FIXTURES / "models" / "diagnose-v2.inputs.csv"  # 6 cycles of 32 s, one row per second, window 32


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from shopfloor.serve.app import create_app

    root = tmp_path_factory.mktemp("diagnose-service") / "models"
    Registry(root, create=True).add("rig", MODEL)
    token = create_token(root, "gateway", "read")
    with TestClient(create_app(root), base_url="http://testserver") as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def post(client, rows: list[dict]):
    return client.post("/api/models/rig/predict", json={"rows": rows})


def test_blocks_of_samples_get_the_models_own_window_and_block_answers(client):
    inputs = pd.read_csv(INPUTS)
    sent = inputs.drop(columns="condition").iloc[::-1]  # out of order: the time column puts the samples back
    answer = post(client, sent.to_dict(orient="records"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model"], body["task"]) == ("rig", "diagnose")
    got = pd.DataFrame(body["predictions"])
    windows, blocks = got[got["level"] == "window"], got[got["level"] == "block"]
    expected = load(MODEL).predict(inputs.drop(columns="condition"))
    assert sorted(windows["recording"]) == sorted(expected["recording"])
    windows = windows.set_index("recording").loc[expected["recording"]]
    assert list(windows["class"]) == list(expected["class"])
    assert list(windows["runner_up"]) == list(expected["runner_up"])
    np.testing.assert_allclose(windows["probability"], expected["probability"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(windows["novelty"], expected["novelty"], rtol=1e-4, atol=1e-5)
    assert list(windows["unknown"]) == list(expected["unknown"])
    np.testing.assert_allclose(windows["start"], 0.0)
    truth = inputs.groupby("cycle")["condition"].first()
    assert (blocks.set_index("recording")["class"] == truth[blocks["recording"]].to_numpy()).mean() >= 5 / 6
    assert set(blocks["windows"]) == {1} and set(blocks["unscored_samples"]) == {0}


def test_a_block_without_run_or_time_is_one_recording_cut_into_whole_windows(client):
    inputs = pd.read_csv(INPUTS)
    cycle = inputs[inputs["cycle"] == inputs["cycle"].iloc[0]][["pressure", "temperature"]]
    rows = pd.concat([cycle, cycle, cycle.iloc[:5]]).to_dict(orient="records")  # two windows and 5 samples more
    body = post(client, rows).json()["predictions"]
    windows = [p for p in body if p["level"] == "window"]
    (block,) = [p for p in body if p["level"] == "block"]
    assert [w["window"] for w in windows] == [0, 1] and [w["start"] for w in windows] == [0.0, 32.0]
    assert windows[0]["class"] == windows[1]["class"] == block["class"]
    assert (block["recording"], block["windows"], block["unscored_samples"]) == ("block", 2, 5)


def test_a_block_shorter_than_a_window_is_refused_saying_how_many_samples(client):
    rows = pd.read_csv(INPUTS)[["pressure", "temperature"]].iloc[:20].to_dict(orient="records")
    answer = post(client, rows)
    assert answer.status_code == 422
    assert "20 samples, shorter than one window of 32" in answer.json()["detail"]


def test_a_missing_channel_or_a_text_sample_is_refused_naming_row_and_channel(client):
    rows = pd.read_csv(INPUTS)[["pressure", "temperature"]].iloc[:32].to_dict(orient="records")
    del rows[3]["temperature"]
    answer = post(client, rows)
    assert answer.status_code == 422
    assert "row 4 lacks 'temperature'" in answer.json()["detail"] and "pressure, temperature" in answer.json()["detail"]
    rows[3]["temperature"] = "hot"
    answer = post(client, rows)
    assert answer.status_code == 422
    assert "row 4 has 'hot' for 'temperature'" in answer.json()["detail"]
