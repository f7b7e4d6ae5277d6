"""Bad requests get a 4xx with a body that says what to fix, never a 500."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import failure_table

pytest_plugins = ["rest_service"]

ROW = failure_table(1, seed=9).drop(columns="failure").to_dict(orient="records")[0]


def refused(answer: httpx.Response, status: int, *words: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    detail = answer.json()["detail"]
    assert isinstance(detail, str)
    for word in words:
        assert word in detail, (word, detail)
    return detail


@pytest.mark.parametrize(("body", "words"), [
    (b"{rows: [", ("not valid JSON",)),
    (b"", ("not valid JSON",)),
    (b"[]", ("body",)),
    (b'{"rows": "Torque 40"}', ("body.rows", "array")),
    (b'{"rows": []}', ("body.rows", "at least 1")),
    (b'{"records": [{}]}', ("body.rows", "Field required")),
    (b'{"rows": [[1, 2]]}', ("body.rows.0", "object")),
    (b'{"rows": [{"Torque [Nm]": {"value": 40}}]}', ("body.rows.0.Torque [Nm]",)),
])
def test_malformed_bodies_say_where_the_problem_is(api, body, words):
    answer = api.post("/api/models/failure/predict", content=body, headers={"Content-Type": "application/json"})
    detail = refused(answer, 422, *words)
    assert detail.startswith("the request is not valid")
    assert answer.json()["errors"]


def test_wrong_columns_and_values_name_the_column_and_row(api):
    without = {k: v for k, v in ROW.items() if k != "Torque [Nm]"}
    refused(api.post("/api/models/failure/predict", json={"rows": [ROW, without]}), 422,
            "row 2", "'Torque [Nm]'", "null for a missing reading")
    refused(api.post("/api/models/failure/predict", json={"rows": [ROW, {**ROW, "Rotational speed [rpm]": "fast"}]}),
            422, "'Rotational speed [rpm]'", "row 2", "'fast'")
    gap = api.post("/api/models/failure/predict", json={"rows": [{**ROW, "Torque [Nm]": None, "Type": "X"}]})
    assert gap.status_code == 200  # a missing reading and an unseen product type are answered, as in the CLI
    refused(api.post("/api/models/rul/predict", json={"rows": [{"engine": 1, "altitude": 0.0}]}), 422, "'cycle'")
    refused(api.post("/api/models/reactor/predict", json={"rows": [{"temperature": 80}]}), 422, "residence_time")


def test_unknown_models_versions_and_bad_names(api):
    refused(api.post("/api/models/press-99/predict", json={"rows": [ROW]}), 404, "no model named 'press-99'", "failure")
    refused(api.get("/api/models/press-99"), 404, "no model named")
    refused(api.post("/api/models/failure/predict?version=abc", json={"rows": [ROW]}), 422, "version")
    for version in ("0", "-1", "1.5", "²", "9" * 5000):
        refused(api.post(f"/api/models/failure/predict?version={version}", json={"rows": [ROW]}), 422, "version")
    refused(api.post("/api/models/failure/predict?version=5", json={"rows": [ROW]}), 404, "no version 5")
    for version in ("x", "0", "9" * 5000):
        refused(api.get(f"/api/models/reactor/recommendation?version={version}"), 422, "version")
    for name in ("..", ".hidden", "a b", "x" * 80, "tokens.json", "%2e%2e"):
        answer = api.post(f"/api/models/{name}/predict", json={"rows": [ROW]})
        assert answer.status_code in (404, 422), (name, answer.status_code)
        assert answer.json()["detail"]
    traversal = api.get("/api/models/..%2F..%2Fetc")
    assert traversal.status_code in (404, 422)


def test_bodies_over_the_limit_get_413_whether_or_not_they_say_their_length(api):
    rows = [ROW] * 3000  # ~600 KB of JSON, over the 256 KiB limit of the test service
    body = json.dumps({"rows": rows}).encode()
    refused(api.post("/api/models/failure/predict", content=body, headers={"Content-Type": "application/json"}),
            413, "larger than the 256 KiB")

    def chunks():  # no Content-Length: chunked transfer, counted as it arrives
        for start in range(0, len(body), 16_384):
            yield body[start:start + 16_384]

    answer = api.post("/api/models/failure/predict", content=chunks(), headers={"Content-Type": "application/json"})
    refused(answer, 413, "larger than")


def test_too_many_rows_get_413(api):
    refused(api.post("/api/models/failure/predict", json={"rows": [{"x": 1}] * 501}), 413, "at most 500", "split")


def test_a_model_that_cannot_be_loaded_is_a_503_and_ready_says_why(service):
    folder = service.root / "broken"
    service.registry.add("broken", service.models.folders["failure"])
    (folder / "1" / "model.safetensors").write_bytes(b"not weights")
    answer = service.client().post("/api/models/broken/predict", json={"rows": [ROW]})
    refused(answer, 503, "broken", "cannot be loaded")
    ready = httpx.get(service.url + "/ready")
    assert ready.status_code == 503
    assert any("broken" in reason for reason in ready.json()["reasons"])
    service.registry.promote("broken", 1)  # the registry itself stays usable
    import shutil

    shutil.rmtree(folder)
    service.app.state.models.failures.clear()
    service.app.state.models.forget_live()
    assert httpx.get(service.url + "/ready").status_code == 200


@pytest.mark.parametrize("value", ["1e400", "-1e400", "NaN", "9" * 300, "-0.0", '"1e5"', "true", '""'])
def test_odd_numbers_are_answered_or_refused_never_a_crash(api, value):
    row = json.dumps({**ROW, "Torque [Nm]": 0.0}).replace('"Torque [Nm]": 0.0', f'"Torque [Nm]": {value}')
    answer = api.post("/api/models/failure/predict", content='{"rows": [' + row + "]}",
                      headers={"Content-Type": "application/json"})
    assert answer.status_code in (200, 422), answer.text
    if answer.status_code == 200:  # strict JSON comes back: a number the model cannot score is null, never NaN
        json.loads(answer.text, parse_constant=lambda constant: pytest.fail(f"{constant} in the answer"))
