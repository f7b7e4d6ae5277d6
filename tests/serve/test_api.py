"""The JSON API through real HTTP: the answers are the models' own, for every task, one row or many at once."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import failure_table

pytest_plugins = ["rest_service"]


def rows_of(frame: pd.DataFrame) -> list[dict]:
    return frame.to_dict(orient="records")


def test_health_and_ready_need_no_token(service):
    assert httpx.get(service.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(service.url + "/ready")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "models": {"failure": 1, "rul": 1, "defects": 1, "anomaly": 1, "reactor": 1},
                            "reasons": []}


def test_models_are_listed_and_described(api):
    listed = {m["name"]: m for m in api.get("/api/models").json()}
    assert {"failure", "rul", "defects", "anomaly", "reactor"} <= set(listed)
    assert listed["failure"]["task"] == "tabular" and listed["failure"]["live"] == 1
    detail = api.get("/api/models/failure").json()
    summary = detail["manifests"]["1"]
    assert detail["versions"] == [1] and detail["live"] == 1
    assert summary["task"] == "tabular"
    assert set(summary["inputs"]["numeric"]) == {"Air temperature [K]", "Torque [Nm]", "Rotational speed [rpm]"}
    assert summary["inputs"]["categorical"]["Type"] == ["H", "L", "M"]
    assert summary["inputs"]["ids"] == ["UDI", "Product ID"]
    assert 0.5 < summary["metrics"]["validation"]["roc_auc"] <= 1
    assert summary["metrics"]["training_data"]["rows"] == 300
    assert api.get("/api/models/rul").json()["manifests"]["1"]["inputs"]["unit"] == "engine"


def test_table_rows_get_the_models_own_probabilities_and_decisions(api, service):
    new = failure_table(20, seed=3)
    answer = api.post("/api/models/failure/predict", json={"rows": rows_of(new.drop(columns="failure"))})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model"], body["version"], body["task"]) == ("failure", 1, "tabular")
    expected = service.models.failure.predict(new)
    got = pd.DataFrame(body["predictions"])
    assert list(got["UDI"]) == list(new["UDI"])  # id columns sent are echoed
    np.testing.assert_allclose(got["failure probability"], expected["failure probability"], rtol=1e-5, atol=1e-6)
    assert list(got["failure predicted"]) == list(expected["failure predicted"])


@pytest.mark.parametrize("literal", ["1e308", "Infinity", "-Infinity"])
def test_a_reading_beyond_any_plausible_range_is_refused_naming_row_and_column(api, literal):
    # the body as a client writes it: 1e308 and Infinity literals used to come back as a null
    # probability and 'predicted 0', a quiet 'no failure'
    rows = rows_of(failure_table(3, seed=5).drop(columns="failure"))
    body = json.dumps({"rows": rows}).replace('"Torque [Nm]": ' + json.dumps(rows[1]["Torque [Nm]"]),
                                              '"Torque [Nm]": ' + literal, 1)
    assert literal in body
    answer = api.post("/api/models/failure/predict", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert "row 2 " in detail and "'Torque [Nm]'" in detail and "not a plausible reading" in detail


def test_a_nan_literal_is_a_missing_reading(api, service):
    rows = rows_of(failure_table(3, seed=5).drop(columns="failure"))
    body = json.dumps({"rows": rows}).replace('"Torque [Nm]": ' + json.dumps(rows[1]["Torque [Nm]"]),
                                              '"Torque [Nm]": NaN', 1)
    answer = api.post("/api/models/failure/predict", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    probability = answer.json()["predictions"][1]["failure probability"]
    assert probability is not None and 0 <= probability <= 1
    missing = pd.DataFrame(rows).assign(**{"Torque [Nm]": [rows[0]["Torque [Nm]"], None, rows[2]["Torque [Nm]"]]})
    assert probability == pytest.approx(service.models.failure.predict(missing)["failure probability"][1], abs=1e-6)


def test_concurrent_single_rows_are_batched_and_each_gets_its_own_answer(service):
    """64 clients at once: the micro-batcher merges them; every answer matches the row's own prediction,
    and one faulty request among them gets its 422 while the others are still answered."""
    new = failure_table(64, seed=4).drop(columns="failure")
    rows = rows_of(new)
    rows[17] = {**rows[17], "Torque [Nm]": "forty"}
    expected = service.models.failure.predict(new.drop(index=17))["failure probability"].to_numpy()
    before = service.app.state.batcher.batches

    async def all_at_once():
        async with httpx.AsyncClient(base_url=service.url, headers={"Authorization": f"Bearer {service.read}"},
                                     limits=httpx.Limits(max_connections=64)) as client:
            return await asyncio.gather(*(client.post("/api/models/failure/predict", json={"rows": [row]})
                                          for row in rows))

    answers = asyncio.run(all_at_once())
    assert answers[17].status_code == 422
    assert "'Torque [Nm]'" in answers[17].json()["detail"] and "'forty'" in answers[17].json()["detail"]
    assert "row 1 " in answers[17].json()["detail"]  # counted in its own rows, not the batch's
    good = [a for i, a in enumerate(answers) if i != 17]
    assert all(a.status_code == 200 for a in good)
    got = np.array([a.json()["predictions"][0]["failure probability"] for a in good])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert [a.json()["predictions"][0]["UDI"] for a in good] == list(new["UDI"].drop(index=17))
    assert service.app.state.batcher.batches - before < 64  # some requests shared a predict call


def test_run_histories_get_rul_with_interval_per_unit(api, service):
    histories = service.models.histories
    recent = histories[histories["engine"].isin([2, 5])].groupby("engine").head(30)
    answer = api.post("/api/models/rul/predict", json={"rows": rows_of(recent)})
    assert answer.status_code == 200, answer.text
    got = pd.DataFrame(answer.json()["predictions"])
    expected = service.models.rul.predict(recent)
    assert list(got["unit"]) == [2, 5]
    np.testing.assert_allclose(got[["rul", "rul_low", "rul_high"]], expected[["rul", "rul_low", "rul_high"]], rtol=1e-5)
    assert (got["rul_low"] <= got["rul"]).all() and (got["rul"] <= got["rul_high"]).all()


def test_optimiser_predicts_settings_and_recommends_once_per_version(api, service):
    settings = [{"residence_time": 1.0, "equivalents": 2.0, "concentration": 0.3, "temperature": 80.0}]
    answer = api.post("/api/models/reactor/predict", json={"rows": settings})
    assert answer.status_code == 200, answer.text
    expected = service.models.reactor.predict(pd.DataFrame(settings))
    assert answer.json()["predictions"][0]["sty predicted"] == pytest.approx(float(expected["sty predicted"][0]), rel=1e-6)
    first = api.get("/api/models/reactor/recommendation")
    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body["recommended"]) == {"residence_time", "equivalents", "concentration", "temperature"}
    assert "sty" in body["predicted"] and len(body["experiments"]) == 2
    assert api.get("/api/models/reactor/recommendation").json() == body  # kept: computed once per version


def test_a_version_that_is_not_live_can_be_asked_for(service):
    service.registry.add("failure-ab", service.models.folders["failure"])
    service.registry.add("failure-ab", service.models.folders["failure-b"], promote=False)
    api = service.client()
    row = rows_of(failure_table(1, seed=5).drop(columns="failure"))
    live = api.post("/api/models/failure-ab/predict", json={"rows": row}).json()
    other = api.post("/api/models/failure-ab/predict?version=2", json={"rows": row}).json()
    assert (live["version"], other["version"]) == (1, 2)
    expected = service.models.failure_b.predict(pd.DataFrame(row))["failure probability"][0]
    assert other["predictions"][0]["failure probability"] == pytest.approx(float(expected), rel=1e-5)
    missing = api.post("/api/models/failure-ab/predict?version=9", json={"rows": row})
    assert missing.status_code == 404 and "no version 9" in missing.json()["detail"]


def test_openapi_documents_the_routes_and_the_token(service):
    schema = httpx.get(service.url + "/openapi.json").json()
    paths = schema["paths"]
    for path in ("/api/models", "/api/models/{name}", "/api/models/{name}/predict", "/api/models/{name}/inspect",
                 "/api/models/{name}/inspect/batch", "/api/models/{name}/promote", "/api/models/{name}/rollback",
                 "/api/models/{name}/recommendation", "/health", "/ready"):
        assert path in paths, path
    predict = paths["/api/models/{name}/predict"]["post"]
    assert predict["security"] == [{"HTTPBearer": []}]
    assert "rows" in predict["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"401", "403", "404", "413", "422"} <= set(predict["responses"])
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert httpx.get(service.url + "/docs").status_code == 200
