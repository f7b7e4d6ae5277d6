"""Every route asks the model what it takes (issue 15): a model the route does not serve gets one line (422)
saying what the model is, what the route serves and where to go instead; a task without JSON predictions
says so, in one line, rather than being taken for another task."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytest_plugins = ["rest_service"]


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16), 90, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _one_line(answer) -> str:
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert "\n" not in detail and "Traceback" not in detail
    return detail


@pytest.mark.parametrize("name, model", [("defects", "a defect classifier"), ("anomaly", "an anomaly detector")])
def test_predict_refuses_an_image_model_naming_what_it_serves(api, name, model):
    detail = _one_line(api.post(f"/api/models/{name}/predict", json={"rows": [{"a": 1}]}))
    assert f"model '{name}' is {model}" in detail
    assert "/predict serves models that take table rows, run histories or process settings" in detail
    assert detail.endswith("send images to /inspect instead")


@pytest.mark.parametrize("name, model", [("failure", "a table model"), ("rul", "a remaining-useful-life model"),
                                         ("reactor", "a process optimiser")])
def test_inspect_and_recommendation_refuse_what_they_do_not_serve(api, name, model):
    detail = _one_line(api.post(f"/api/models/{name}/inspect", files={"image": ("a.png", _png(), "image/png")}))
    assert f"model '{name}' is {model}" in detail and "/inspect serves models that take images" in detail
    assert "(defect classifiers, anomaly detectors)" in detail
    if name != "reactor":
        detail = _one_line(api.get(f"/api/models/{name}/recommendation"))
        assert f"model '{name}' is {model}" in detail
        assert "/recommendation serves models that take process settings (process optimisers)" in detail


def test_a_task_without_json_predictions_says_so_in_one_line(api, service, monkeypatch):
    """The route hands run histories to the model's `predict_records`; a task that keeps the contract's default
    is refused by the model itself, naming the capability."""
    from shopfloor.tasks.base import Estimator
    from shopfloor.tasks.rul.model import RULModel

    monkeypatch.setattr(RULModel, "predict_records", Estimator.predict_records)
    rows = service.models.histories.head(5).to_dict(orient="records")
    detail = _one_line(api.post("/api/models/rul/predict", json={"rows": rows}))
    assert detail == "a remaining-useful-life model has no JSON predictions"
