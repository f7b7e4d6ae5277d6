"""The service serves only model versions the registry signed (a checksum anyone can recompute proves nothing)."""

from __future__ import annotations

import shutil

import httpx
from conftest import failure_table
from manifests import edited_copy

from shopfloor.artifacts import MANIFEST

pytest_plugins = ["rest_service"]

ROW = failure_table(1, seed=9).drop(columns="failure").to_dict(orient="records")[0]


def test_a_version_changed_after_it_was_added_is_a_503_that_names_the_signature(service, tmp_path):
    service.registry.add("changed", service.models.folders["failure"])
    folder = service.registry.path("changed", 1)
    edited = edited_copy(folder, tmp_path / "edited", state__thresholds=[0.0])  # every part a failure
    shutil.copyfile(edited / MANIFEST, folder / MANIFEST)
    try:
        answer = service.client().post("/api/models/changed/predict", json={"rows": [ROW]})
        assert answer.status_code == 503, answer.text
        assert "signature" in answer.json()["detail"] and "add the model folder again" in answer.json()["detail"]
    finally:
        shutil.rmtree(service.root / "changed")
        service.app.state.models.failures.clear()
        service.app.state.models.forget_live()
    assert httpx.get(service.url + "/ready").status_code == 200
