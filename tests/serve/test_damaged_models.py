"""A damaged model is that model's problem: the listing and the dashboard show the others, never a 500."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest

from shopfloor.errors import NotAModel

pytest_plugins = ["rest_service"]


@pytest.fixture(scope="module")
def plant(tmp_path_factory, line_models):
    from rest_service import Service

    from shopfloor.registry import Registry
    from shopfloor.serve.auth import create_token

    root = tmp_path_factory.mktemp("damaged") / "models"
    registry = Registry(root, create=True)
    for name in ("failure", "press", "lathe"):
        registry.add(name, line_models.folders["failure"])
    token = create_token(root, "quality", "read")
    with Service(root) as running:
        yield running, root, {"Authorization": f"Bearer {token}"}


def test_a_damaged_registry_file_leaves_the_other_models_listed(plant):
    running, root, auth = plant
    (root / "press" / "registry.json").write_text('{"live": "two", "history": []}')
    listed = httpx.get(running.url + "/api/models", headers=auth, timeout=30)
    assert listed.status_code == 200, listed.text
    models = {m["name"]: m for m in listed.json()}
    assert models["failure"]["live"] == 1 and models["failure"].get("problem") is None
    assert "press/registry.json" in models["press"]["problem"]
    page = httpx.get(running.url + "/models", headers=auth, timeout=30)
    assert page.status_code == 200 and "press/registry.json" in page.text and "failure" in page.text
    assert httpx.get(running.url + "/api/models/press", headers=auth, timeout=30).status_code == 503


def test_a_report_of_a_model_whose_state_has_the_wrong_shape_is_not_a_500(plant, line_models, tmp_path):
    from shopfloor.artifacts import MANIFEST, sha256_json
    from shopfloor.registry import Registry

    running, root, auth = plant
    folder = shutil.copytree(line_models.folders["failure"], tmp_path / "edited")
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    manifest.pop("manifest_sha256")
    manifest["state"]["architecture"] = "mlp"
    manifest["manifest_sha256"] = sha256_json(manifest)  # edited with care: the checksum matches
    (folder / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    registry = Registry(root)
    with pytest.raises(NotAModel, match="damaged"):  # `models add` loads a version in full before it goes live
        registry.add("lathe", folder)
    registry.add("lathe", line_models.folders["failure"])  # version 2 goes live ...
    shutil.copyfile(folder / MANIFEST, registry.path("lathe", 2) / MANIFEST)  # ... and is edited in place
    report = httpx.get(running.url + "/models/lathe/report", headers=auth, timeout=60)
    assert report.status_code == 503 and "signature" in report.json()["detail"]
