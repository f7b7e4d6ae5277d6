"""POST /api/models/{name}/predict: tables, run histories and process settings, as JSON rows.

The path a table row takes is kept short on purpose, because it is the one that runs a thousand
times a second: pydantic checks the body's shape (objects of scalars), the event loop checks that
every row carries the model's feature columns (a set comparison), and the micro-batcher
(batching.py) builds one DataFrame for many requests in the thread pool and calls the model's own
`predict`, the same code as the CLI and the stream worker, so the answers cannot drift apart.
Answers are written as JSON bytes directly; identifier columns the client sent are echoed back.
"""

from __future__ import annotations

import asyncio
import json
import math
import weakref

import pandas as pd
from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from shopfloor.errors import ColumnMissing
from shopfloor.serve.auth import SECURED, authorize
from shopfloor.serve.batching import Batcher
from shopfloor.serve.limits import TooLarge
from shopfloor.serve.live import Loaded
from shopfloor.serve.schemas import PredictRequest, PredictResponse, problems

router = APIRouter()

_FEATURES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
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
    if len(rows) > state.max_rows:
        raise TooLarge(f"{len(rows):,} rows in one request; this service takes at most {state.max_rows:,}: "
                          "split the rows over several requests")
    model: Loaded = await state.models.get(name, version)
    model.expect(("tabular", "rul", "optimize"), "/predict", "send images to /inspect instead")
    if model.task == "tabular":
        features = table_features(model.estimator)
        for i, row in enumerate(rows):
            if not features.issubset(row.keys()):
                raise _missing(model, features, row, i)
        predictions = await state.batcher.submit((model.name, model.version), model.estimator, rows)
    else:
        score = score_runs if model.task == "rul" else score_settings
        predictions = await asyncio.get_running_loop().run_in_executor(state.executor, score, model.estimator, rows)
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
    return Batcher(executor, score_tables, wait=wait)


def table_features(estimator) -> frozenset[str]:
    """The feature columns of a table model, as a set (kept per loaded estimator: this runs on every request)."""
    features = _FEATURES.get(estimator)
    if features is None:
        features = _FEATURES[estimator] = frozenset(estimator.schema_.features)
    return features


def score_tables(estimator, requests: list[list[dict]]) -> list[list[dict]]:
    """One predict call for the rows of several requests; each request's answers, with its id columns echoed."""
    schema = estimator.schema_
    rows = requests[0] if len(requests) == 1 else [row for rows in requests for row in rows]
    frame = pd.DataFrame.from_records(rows, columns=schema.features)
    records = estimator.predict(frame, source="the request").to_dict(orient="records")
    ids = schema.ids
    answers, start = [], 0
    for rows in requests:
        part = records[start:start + len(rows)]
        if ids:
            part = [{**{c: row[c] for c in ids if c in row}, **answer} for row, answer in zip(rows, part, strict=True)]
        answers.append(part)
        start += len(rows)
    return answers


def score_runs(estimator, rows: list[dict]) -> list[dict]:
    """Remaining useful life per unit, at its last cycle, from the rows of its run history."""
    from shopfloor.data.runs import read_runs

    frame = pd.DataFrame.from_records(rows)
    runs = read_runs(frame, unit=estimator.unit_column_, time=estimator.time_column_,
                     settings=list(estimator.setting_columns_), date_order=estimator.new_data_date_order())
    table = estimator.predict(runs)
    if pd.api.types.is_datetime64_any_dtype(table["time"]):  # a JSON answer holds text, not time stamps
        table["time"] = table["time"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    return table.to_dict(orient="records")


def score_settings(estimator, rows: list[dict]) -> list[dict]:
    """Predicted outputs (mean and range) of a process optimiser at each row's settings."""
    return estimator.predict(pd.DataFrame.from_records(rows)).to_dict(orient="records")


def _missing(model: Loaded, features: frozenset[str], row: dict, index: int) -> ColumnMissing:
    absent = [c for c in model.estimator.schema_.features if c not in row]
    listed = ", ".join(f"'{c}'" for c in absent[:8]) + (" ..." if len(absent) > 8 else "")
    return ColumnMissing(f"row {index + 1} lacks {listed}, which model '{model.name}' was trained on; send every "
                         f"feature column (null for a missing reading). Expected: {', '.join(sorted(features))}")


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
