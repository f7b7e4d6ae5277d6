"""POST /api/models/{name}/predict: table rows, run histories and process settings, as JSON rows.

The route asks the model what it takes (`accepts`, the estimator contract in tasks/base.py) and hands the
rows to its own `predict_records`, the same code as the CLI and the stream worker use to predict, so the
answers cannot drift apart. Images go to /inspect; a model that takes nothing from the service gets a 422.

The path a table row takes ("rows") is kept short on purpose, because it is the one that runs a thousand
times a second: pydantic checks the body's shape (objects of scalars), the event loop checks that
every row carries the model's input columns (a set comparison), and the micro-batcher
(batching.py) puts the rows of many requests into one `predict_records` call in the thread pool.
Run histories, settings and windows of readings ("runs", "settings", and "rows" of a model that
`reads_windows`: a monitor model's rows are a stretch of a machine's history, one answer per row but each
depending on the rows before it) are scored per request in the thread pool, never merged with another
request's rows. Answers are written as JSON bytes directly.
"""

from __future__ import annotations

import asyncio
import json
import math
import weakref

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from shopfloor.errors import ColumnMissing
from shopfloor.serve.auth import SECURED, authorize
from shopfloor.serve.batching import Batcher
from shopfloor.serve.limits import check_count
from shopfloor.serve.live import Loaded
from shopfloor.serve.schemas import PredictRequest, PredictResponse, problems

router = APIRouter()

_COLUMNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
PREDICTED = ("rows", "runs", "settings")  # what /predict takes: JSON rows, one answer per row, unit or setting
VERSION = Query(None, ge=1, le=999_999_999, description="score with this version instead of the live one")


PREDICT_OPENAPI = {
    **SECURED,
    "parameters": [{"name": "version", "in": "query", "required": False, "description": "score with this version "
                    "instead of the live one", "schema": {"type": "integer", "minimum": 1, "maximum": 999_999_999}}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": PredictRequest.model_json_schema()}}},
}


@router.post("/models/{name}/predict", response_model=PredictResponse, responses=problems(401, 403, 404, 413, 422, 503),
             summary="Score table rows, run histories or process settings", openapi_extra=PREDICT_OPENAPI)
async def predict(name: str, request: Request) -> Response:
    return await _predict(request, name)


async def predict_route(request: Request) -> Response:
    """The same route without FastAPI's parameter machinery, which cost more per request than the prediction:
    `create_app` puts it before the documented route above, which then only describes it."""
    return await _predict(request, request.path_params["name"])


async def _predict(request: Request, name: str) -> Response:
    # The body, the version and the token are read here rather than declared as FastAPI parameters and
    # dependencies (openapi_extra documents them), so that both routes share one code path.
    authorize(request, "read")
    state = request.app.state
    version = query_version(request)
    rows = parse_rows(await request.body())
    check_count(len(rows), state.max_rows, "rows")
    model: Loaded = await state.models.get(name, version)
    model.expect(PREDICTED, "/predict", "send images to /inspect instead" if model.accepts == "images"
                 else "it makes no predictions from JSON rows")
    if model.accepts == "rows" and not model.estimator.reads_windows:
        columns = input_columns(model.estimator)
        for i, row in enumerate(rows):
            if not columns.issubset(row.keys()):
                raise _missing(model, columns, row, i)
        predictions = await state.batcher.submit((model.name, model.version), model.estimator, rows)
    else:
        predictions = await asyncio.get_running_loop().run_in_executor(state.executor, model.estimator.predict_records,
                                                                       rows)
    if state.watch is not None:  # the line's drift watch (watch/service.py): samples rows, compares off this thread
        state.watch.observe(model.name, model.version, model.estimator, model.live, rows, predictions)
    return json_response({"model": model.name, "version": model.version, "task": model.task, "predictions": predictions})


def parse_rows(body: bytes) -> list[dict]:
    """The rows of a PredictRequest body, parsed and checked in one pass (pydantic-core, from bytes)."""
    try:
        return PredictRequest.model_validate_json(body).rows
    except ValidationError as err:
        raise RequestValidationError([{**e, "loc": ("body", *e.get("loc", ()))} for e in err.errors(include_input=False)],
                                     body=None) from None


def query_version(request: Request) -> int | None:
    text = request.query_params.get("version")
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 9) or int(text) < 1:  # ascii: '²' is a digit too
        raise RequestValidationError([{"type": "int_parsing", "loc": ("query", "version"),
                                       "msg": f"'{text[:40]}' is not a version number (1, 2, 3, ...)"}])
    return int(text)


def batcher(executor, wait: float = 0.0) -> Batcher:
    return Batcher(executor, score_rows, wait=wait)


def input_columns(estimator) -> frozenset[str]:
    """The columns every row must carry, as a set (kept per loaded estimator: this runs on every request).

    A rows model whose `input_columns` is empty has its rows checked by its own `predict_records`."""
    columns = _COLUMNS.get(estimator)
    if columns is None:
        columns = _COLUMNS[estimator] = frozenset(estimator.input_columns)
    return columns


def score_rows(estimator, requests: list[list[dict]]) -> list[list[dict]]:
    """One `predict_records` call for the rows of several requests (rows are independent), split back per request."""
    rows = requests[0] if len(requests) == 1 else [row for rows in requests for row in rows]
    records = estimator.predict_records(rows)
    answers, start = [], 0
    for rows in requests:
        answers.append(records[start:start + len(rows)])
        start += len(rows)
    return answers


def _missing(model: Loaded, columns: frozenset[str], row: dict, index: int) -> ColumnMissing:
    absent = [c for c in model.estimator.input_columns if c not in row]
    listed = ", ".join(f"'{c}'" for c in absent[:8]) + (" ..." if len(absent) > 8 else "")
    return ColumnMissing(f"row {index + 1} lacks {listed}, which model '{model.name}' was trained on; send every "
                         f"feature column (null for a missing reading). Expected: {', '.join(sorted(columns))}")


def json_response(payload: dict, status: int = 200) -> Response:
    try:
        body = json.dumps(payload, allow_nan=False)
    except ValueError:  # NaN or infinity somewhere: JSON has no such numbers, null says 'unknown'
        body = json.dumps(_finite(payload), allow_nan=False)
    return Response(body, status_code=status, media_type="application/json")


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
