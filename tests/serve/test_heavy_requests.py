"""Heavy image requests cannot stall the service: their own threads, a pixel budget per request, a cap per client."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from conftest import failure_table

pytest_plugins = ["rest_service"]
ROW = failure_table(1, seed=5).drop(columns="failure").to_dict(orient="records")


def flat_png(side: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((side, side), 100, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def plant(tmp_path_factory, line_models):
    """A service with ONE inference thread, so that anything queued in front of a prediction shows."""
    from rest_service import Service

    from shopfloor.registry import Registry
    from shopfloor.serve.auth import create_token

    root = tmp_path_factory.mktemp("heavy") / "models"
    registry = Registry(root, create=True)
    for name in ("failure", "anomaly"):
        registry.add(name, line_models.folders[name])
    tokens = [create_token(root, f"camera-{i}", "read") for i in range(3)]
    with Service(root, workers=1, max_request_pixels=30_000) as running:
        yield running, tokens


@pytest.fixture
def stalled_images(monkeypatch):
    """Image work that waits until released: as a batch of huge images would, but on cue."""
    import shopfloor.serve.inspections as inspections

    release, started, real = threading.Event(), [], inspections.inspect_files

    def slow(*args, **kwargs):
        started.append(time.monotonic())
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(inspections, "inspect_files", slow)
    yield release, started
    release.set()


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the image requests did not start"
        time.sleep(0.02)


def _inspect(url: str, token: str) -> httpx.Response:
    return httpx.post(url + "/api/models/anomaly/inspect", headers={"Authorization": f"Bearer {token}"},
                      files={"image": ("part.png", flat_png(16), "image/png")}, timeout=90)


def test_a_table_row_is_answered_while_image_requests_hold_their_threads(plant, stalled_images):
    """Four clients' batches of 7000 x 7000 images made a one-row prediction wait 63 s: they held every thread."""
    running, tokens = plant
    release, started = stalled_images
    with ThreadPoolExecutor(3) as pool:
        heavy = [pool.submit(_inspect, running.url, token) for token in tokens]
        _wait_for(lambda: started)
        time.sleep(0.5)  # the other two arrive and queue for the image threads
        light = httpx.Client(base_url=running.url, timeout=20, headers={"Authorization": f"Bearer {tokens[0]}"})
        try:
            for _ in range(3):
                begun = time.perf_counter()
                answer = light.post("/api/models/failure/predict", json={"rows": ROW})
                assert answer.status_code == 200, answer.text
                assert time.perf_counter() - begun < 5  # a generous bound: it takes milliseconds
        finally:
            light.close()
            release.set()
        assert all(f.result().status_code == 200 for f in heavy)


def test_one_client_gets_429_beyond_its_share_of_image_requests(plant, stalled_images):
    running, tokens = plant
    release, started = stalled_images
    with ThreadPoolExecutor(2) as pool:
        first = [pool.submit(_inspect, running.url, tokens[1]) for _ in range(2)]
        _wait_for(lambda: sum(running.app.state.image_requests.values()) == 2)
        third = _inspect(running.url, tokens[1])
        assert third.status_code == 429 and int(third.headers["retry-after"]) >= 1
        assert "image requests in progress" in third.json()["detail"]
        release.set()
        assert all(f.result().status_code == 200 for f in first)
    assert _inspect(running.url, tokens[1]).status_code == 200  # the share is given back


def test_a_request_over_the_pixel_budget_is_refused_before_decoding(plant):
    running, tokens = plant
    small, large = flat_png(100), flat_png(150)  # 10,000 and 22,500 pixels; the budget is 30,000
    answer = httpx.post(running.url + "/api/models/anomaly/inspect/batch", timeout=60,
                        headers={"Authorization": f"Bearer {tokens[2]}"},
                        files=[("images", ("a.png", small, "image/png")), ("images", ("b.png", large, "image/png"))])
    assert answer.status_code == 413 and "megapixels together" in answer.json()["detail"] and "'b.png'" in answer.json()["detail"]
    one = httpx.post(running.url + "/api/models/anomaly/inspect/batch", timeout=60,
                     headers={"Authorization": f"Bearer {tokens[2]}"}, files=[("images", ("a.png", small, "image/png"))])
    assert one.status_code == 200, one.text
