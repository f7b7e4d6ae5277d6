"""Fuzz every route from the service's own OpenAPI schema (schemathesis): whatever it sends, no 5xx.

Requests that follow the schema and requests that break it (negative mode: wrong types, missing
fields, values out of range) go to a service of its own, with an admin token so that every route is
reached past the token check. A bounded number of examples per route keeps it to seconds; hypothesis
still shrinks and reports any request that makes the service answer 5xx, so the test can fail.
"""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

pytest_plugins = ["rest_service"]

EXAMPLES = 10  # per route, model and mode
REAL = {"/predict": ["failure", "rul", "reactor"], "/inspect": ["anomaly"], "/inspect/batch": ["anomaly"],
        "/recommendation": ["reactor"]}  # route ending -> models to fuzz it with (others: 'failure')


@pytest.fixture(scope="module")
def fuzzed(line_models, tmp_path_factory):
    from rest_service import Service

    from shopfloor.registry import Registry
    from shopfloor.serve.auth import create_token

    root = tmp_path_factory.mktemp("fuzz") / "models"
    registry = Registry(root, create=True)
    for name in ("failure", "rul", "anomaly", "reactor"):
        registry.add(name, line_models.folders[name])
    token = create_token(root, "fuzzer", "admin")
    with Service(root, max_body_bytes=64 * 1024, max_image_bytes=64 * 1024, max_images=2, max_rows=50) as running:
        yield running, token


def operations(url: str):
    import schemathesis

    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_request_makes_the_service_fail(fuzzed, mode):
    import schemathesis
    from schemathesis.checks import not_a_server_error

    running, token = fuzzed
    found = operations(running.url)
    assert len(found) >= 11  # every route is in the schema
    generation = schemathesis.GenerationMode(mode)
    fuzzed_routes = 0
    for operation in found:
        names = [None]  # random model names (mostly unknown: 404 or 422), then real models, to reach the models
        if "{name}" in operation.path:
            names += REAL.get(operation.path.rsplit("}", 1)[-1], ["failure"])
        for name in names:
            strategy = operation.as_strategy(generation_mode=generation,
                                             path_parameters={"name": name} if name else None)

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def no_server_error(case):
                case.call_and_validate(base_url=running.url, headers={"Authorization": f"Bearer {token}"},
                                       checks=[not_a_server_error], timeout=30)

            try:
                no_server_error()
            except Unsatisfiable:
                assert mode == "negative"  # nothing to break in this route (GET /health, or the name is fixed)
                continue
            fuzzed_routes += 1
    assert fuzzed_routes >= (20 if mode == "positive" else 8)
    assert httpx.get(running.url + "/ready").status_code == 200  # and it is still serving


def test_the_fuzz_check_catches_a_server_error(fuzzed):
    """The same machinery against a route that fails: the test above can fail."""
    import schemathesis
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import ServerError

    broken = FastAPI()

    @broken.get("/api/boom")
    async def boom(n: int):
        return JSONResponse({"detail": "internal error"}, status_code=500 if n % 2 == 0 else 200)

    schema = schemathesis.openapi.from_asgi("/openapi.json", broken)
    operation = next(result.ok() for result in schema.get_all_operations())

    @settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def no_server_error(case):
        case.call_and_validate(checks=[not_a_server_error])

    with pytest.raises(BaseException) as caught:  # what counts is inside: the server error found
        no_server_error()
    failures = caught.value.exceptions if isinstance(caught.value, BaseExceptionGroup) else [caught.value]
    assert any(isinstance(failure, ServerError) for failure in failures), caught.value
