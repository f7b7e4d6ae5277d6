"""Promote and roll back over HTTP: the next prediction comes from the new live version, with no restart."""

from __future__ import annotations

import time

import httpx
import pandas as pd
import pytest
from conftest import failure_table

from shopfloor.registry import Registry

pytest_plugins = ["rest_service"]

ROW = failure_table(1, seed=8).drop(columns="failure").to_dict(orient="records")


def probability(client: httpx.Client, name: str) -> tuple[int, float]:
    body = client.post(f"/api/models/{name}/predict", json={"rows": ROW}).json()
    return body["version"], body["predictions"][0]["failure probability"]


def test_promote_and_rollback_switch_the_live_version(service):
    service.registry.add("press-7", service.models.folders["failure"])
    service.registry.add("press-7", service.models.folders["failure-b"], promote=False)
    reader, admin = service.client(), service.client(service.admin)
    first = service.models.failure.predict(pd.DataFrame(ROW))["failure probability"][0]
    second = service.models.failure_b.predict(pd.DataFrame(ROW))["failure probability"][0]
    assert probability(reader, "press-7") == (1, pytest.approx(float(first), rel=1e-5))

    promoted = admin.post("/api/models/press-7/promote", json={"version": 2})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json() == {"name": "press-7", "live": 2, "previous": 1}
    assert probability(reader, "press-7") == (2, pytest.approx(float(second), rel=1e-5))
    assert Registry(service.root).live_version("press-7") == 2  # on disk, for the CLI and the stream worker

    rolled = admin.post("/api/models/press-7/rollback")
    assert rolled.status_code == 200 and rolled.json() == {"name": "press-7", "live": 1, "previous": 2}
    assert probability(reader, "press-7")[0] == 1
    events = [h["event"] for h in reader.get("/api/models/press-7").json()["history"]]
    assert events[-2:] == ["promote", "rollback"]


def test_a_promotion_made_by_the_cli_is_served_within_a_second(service):
    service.registry.add("press-8", service.models.folders["failure"])
    service.registry.add("press-8", service.models.folders["failure-b"], promote=False)
    reader = service.client()
    assert probability(reader, "press-8")[0] == 1
    Registry(service.root).promote("press-8", 2)  # another process's registry object, as `shopfloor models promote`
    deadline = time.time() + 5
    while probability(reader, "press-8")[0] != 2:
        assert time.time() < deadline, "the service kept serving version 1"
        time.sleep(0.1)
    ready = httpx.get(service.url + "/ready").json()
    assert ready["models"]["press-8"] == 2 or any("press-8" in r for r in ready["reasons"])


def test_promotion_errors_name_the_problem(service):
    admin = service.client(service.admin)
    missing = admin.post("/api/models/failure/promote", json={"version": 7})
    assert missing.status_code == 404 and "no version 7" in missing.json()["detail"]
    unknown = admin.post("/api/models/no-such-model/promote", json={"version": 1})
    assert unknown.status_code == 404 and "no model named 'no-such-model'" in unknown.json()["detail"]
    for body in ['{"version": 0}', '{"version": "two"}', "{}"]:
        refused = admin.post("/api/models/failure/promote", content=body, headers={"Content-Type": "application/json"})
        assert refused.status_code == 422 and "version" in refused.json()["detail"], body
    huge = admin.post("/api/models/failure/promote", content='{"version": ' + "9" * 5000 + "}",
                      headers={"Content-Type": "application/json"})
    assert huge.status_code == 422 and "the body could not be read" in huge.json()["detail"]
    nothing_before = admin.post("/api/models/rul/rollback")
    assert nothing_before.status_code == 404 and "no earlier live version" in nothing_before.json()["detail"]
