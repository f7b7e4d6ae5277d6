"""POST /api/models/{name}/outcomes: what the line's readings turned out to be, once known (issue 19, item 3).

A failure model's prediction is made when the reading arrives; whether the machine failed, or the part was scrap, is
known later (end-of-line inspection, a maintenance record). A quality system sends those outcomes here:

    {"outcomes": [{"machine": "press-007", "time": 1795000123.0, "outcome": 1}, ...]}   (or the bare list)

each with the `line` too where machine names repeat across lines. The model-health page (`serve.health`) then sets the
accuracy measured against them beside the estimate made without labels.

Decisions, and why:
- Per model, not one /outcomes for all: a label means something only in a model's classes (a failure model's 0/1, a
  scrap model's good/scrap), and it is checked against them before anything is stored. A label that is not one of
  them refuses the whole request (422) with one line naming it and its place: half a delivery stored would leave the
  sender unsure which half to send again.
- Joined to the stored prediction of that model for that machine at that reading time: exactly, by default, since the
  time is the reading's own stamp (the sender copies it from the reading, or from the prediction); with
  `?tolerance=T` (the machine's time units: seconds or cycles) the nearest prediction within T, and of two as near the
  earlier (the reading before the outcome). A prediction joined to one label is not joined to another.
- Only for a yes/no model that gives a calibrated failure probability (the profile's classifier): the one kind whose
  accuracy the page can also estimate without labels (`watch.performance`). Others are refused with the reason.
- Unmatched labels (no such prediction yet, a machine on no known line, a prediction already labelled) are stored
  all the same and reported back with the reason, never dropped; sending them again matches them again, so a label
  that arrived before the stream worker stored its prediction is matched by the next delivery.
- Idempotent: one row per (line as sent, "" where none was, machine, time, model): a label delivered again replaces
  itself (a corrected outcome replaces the first one). The key is what the sender sent, not the line found, so that a
  label unmatched at first and matched later stays one row.

- By (line, machine, time), not by a prediction's id: neither /predict nor the stream hands ids out, and the
  reading's time is what a quality system has. The predictions joined are those the stream worker stored (the
  service's /predict stores none). A line's gateway may publish them to the stream worker instead
  (`stream.outcomes`, topic `<prefix>/<line>/<machine>/outcome`), joined the same way (`shopfloor.outcomes`).

Token scope `read`, as /predict: the senders are the same systems that send readings, and admin is for promotions.
Matching costs one indexed query per machine of a request and one per 500 matched labels (`outcomes.match_all`).
"""

from __future__ import annotations

import math

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from shopfloor.errors import NotSupported
from shopfloor.outcomes import UnknownOutcome, label_classes, label_text, store_outcomes
from shopfloor.serve.auth import SECURED, authorize
from shopfloor.serve.limits import check_count
from shopfloor.serve.predictions import json_response
from shopfloor.serve.schemas import problems

router = APIRouter()
MAX_TOLERANCE = 1e9


class Outcome(BaseModel):
    """One known outcome: the machine, the time of the reading it belongs to, and the label."""

    line: str | None = Field(None, min_length=1, max_length=128, description="the machine's line; needed where "
                             "the machine's name is used on several lines")
    machine: str = Field(min_length=1, max_length=128)
    time: float = Field(description="the reading's time, as the reading carried it (epoch seconds or a cycle)")
    outcome: str | int | bool | float = Field(description="one of the model's classes, e.g. 0 or 1")


class OutcomesRequest(BaseModel):
    outcomes: list[Outcome]


def body_schema() -> dict:
    """The request body's JSON schema with the outcome inlined: a `$defs` reference would point nowhere inside the
    OpenAPI document."""
    schema = OutcomesRequest.model_json_schema()
    schema["properties"]["outcomes"]["items"] = schema.pop("$defs")["Outcome"]
    return schema


OUTCOMES = TypeAdapter(list[Outcome] | OutcomesRequest)
OPENAPI = {**SECURED, "parameters": [
    {"name": "tolerance", "in": "query", "required": False, "schema": {"type": "number", "minimum": 0},
     "description": "join a label to the nearest prediction within this many time units (default 0: the same time)"}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": body_schema()}}}}


@router.post("/models/{name}/outcomes", responses=problems(401, 403, 404, 413, 422, 503), openapi_extra=OPENAPI,
             summary="Record what readings turned out to be (labels that arrive later), joined to their predictions")
async def record_outcomes(name: str, request: Request) -> Response:
    import asyncio

    authorize(request, "read")
    state = request.app.state
    tolerance = query_tolerance(request)
    labels = parse_outcomes(await request.body())
    check_count(len(labels), state.max_rows, "outcomes")
    model = await state.models.get(name)
    classes = label_classes(model.estimator)
    if classes is None:
        raise NotSupported(f"model '{model.name}' gives no calibrated failure probability, so it takes no outcomes: "
                           "send them to a yes/no failure model")
    texts = [label_text(o.outcome) for o in labels]
    for i, text in enumerate(texts):
        if text not in classes:
            raise UnknownOutcome(f"outcome {i + 1} ('{text}', machine {labels[i].machine}) is not a class of model "
                                 f"'{model.name}' ({', '.join(classes)}): nothing was stored")
    if state.store is None:
        return json_response({"detail": "the store cannot be opened (see the service log): nothing was stored"}, 503)
    rows = [{"line": o.line, "machine": o.machine, "time": o.time, "outcome": t} for o, t in zip(labels, texts, strict=True)]
    unmatched = await asyncio.get_running_loop().run_in_executor(state.executor, store_outcomes, state.store,
                                                                 model.name, rows, tolerance)
    return json_response({"model": model.name, "tolerance": tolerance, "received": len(rows),
                          "matched": len(rows) - len(unmatched), "unmatched": unmatched})


def parse_outcomes(body: bytes) -> list[Outcome]:
    try:
        parsed = OUTCOMES.validate_json(body)
    except ValidationError as err:
        raise RequestValidationError([{**e, "loc": ("body", *e.get("loc", ()))} for e in err.errors(include_input=False)],
                                     body=None) from None
    labels = parsed.outcomes if isinstance(parsed, OutcomesRequest) else parsed
    bad = next((i for i, o in enumerate(labels) if not math.isfinite(o.time)), None)
    if bad is not None:
        raise RequestValidationError([{"type": "finite_number", "loc": ("body", bad, "time"),
                                       "msg": f"outcome {bad + 1}'s time is not a finite number"}])
    return labels


def query_tolerance(request: Request) -> float:
    text = request.query_params.get("tolerance", "0")
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (0 <= value <= MAX_TOLERANCE):  # also NaN
        raise RequestValidationError([{"type": "float_parsing", "loc": ("query", "tolerance"),
                                       "msg": f"'{text[:40]}' is not a tolerance: a number of time units, 0 or more"}])
    return value
