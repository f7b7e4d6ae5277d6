"""Request and response bodies of the REST API, as pydantic models: they are the OpenAPI schema at /docs.

Prediction rows are plain JSON objects (column name -> number, text, true/false or null), checked
against the model's own schema by the model, which names the column and row of anything wrong.
Responses of the busy routes are written as JSON directly (the models here document them); the
cost of validating our own output on every request bought nothing.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Value = str | float | int | bool | None


class Problem(BaseModel):
    """Every 4xx/5xx answer: what went wrong and what to change."""

    detail: str = Field(description="what was wrong with the request and how to fix it")
    errors: list[dict[str, Any]] | None = Field(None, description="for malformed bodies: each problem and where")


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    models: dict[str, int] = Field(description="model name -> live version, loaded and serving")
    reasons: list[str] = Field(description="why the service is not ready (empty when it is)")


class PredictRequest(BaseModel):
    """Rows to score. Tables: one object per row with every feature column (null for a missing reading).
    Run histories: one object per unit and cycle (unit, time, settings, sensors). Optimisers: settings."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"rows": [
        {"Type": "L", "Air temperature [K]": 298.1, "Process temperature [K]": 308.6, "Rotational speed [rpm]": 1551,
         "Torque [Nm]": 42.8, "Tool wear [min]": 0}]}]})

    rows: list[dict[str, Value]] = Field(min_length=1, description="one JSON object per row")


class PredictResponse(BaseModel):
    model: str
    version: int
    task: str
    predictions: list[dict[str, Value]] = Field(
        description="tables: per row the id columns sent, '<target> probability' and '<target> predicted' (or "
                    "'<target> predicted', '<target> low', '<target> high' for numbers); run histories: per unit "
                    "unit, rul, rul_low, rul_high; optimisers: per row '<output> predicted/low/high', distance_to_data; "
                    "sensor monitoring: per reading time (and machine), score, anomaly, sensor_1..3, share_1..3; "
                    "fault diagnosis: per window (level 'window') class, probability, runner_up, unknown, and per "
                    "block (level 'block') its majority class; forecasting: per series, step and target: series, "
                    "time, target, forecast, q<level>... (one per quantile); the rows sent are histories (time, "
                    "series, targets, covariates), and rows without targets carry the known covariates of the "
                    "steps to forecast")


class Inspection(BaseModel):
    file: str = Field(description="the uploaded file's name")
    verdict: str = Field(description="anomaly models: 'good' or 'defect'; defect models: the most likely class")
    score: float = Field(description="anomaly models: 0..1, 'defect' from 0.5; defect models: the class's probability")
    raw_score: float | None = Field(None, description="anomaly models: the uncalibrated distance")
    probabilities: dict[str, float] | None = Field(None, description="defect models: the probability of every class")
    heatmap_png: str = Field(description="base64 PNG: where the model saw the evidence (blue low, red high)")
    inspection_id: int | None = Field(None, description="the record kept for the dashboard (null if it could not be stored)")


class InspectionResponse(BaseModel):
    model: str
    version: int
    task: str
    inspections: list[Inspection]


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    versions: list[int]
    live: int | None
    task: str | None = None
    history: list[dict[str, Any]] = []
    problem: str | None = Field(None, description="why this model cannot be served (a damaged registry.json or "
                                                  "model folder); the other models are listed as usual")


class ModelDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    versions: list[int]
    live: int | None
    history: list[dict[str, Any]]
    manifests: dict[str, dict[str, Any]] = Field(description="version -> task, params, inputs, training and "
                                                              "validation metrics")


class PromoteRequest(BaseModel):
    version: int = Field(ge=1, le=999_999_999, strict=True, description="the version to make live (a JSON number: "
                                                                          "true or \"2\" are refused)")


class LiveChange(BaseModel):
    name: str
    live: int
    previous: int | None


class TokenEntry(BaseModel):
    name: str
    scope: str
    created: str | None = None
    hint: str | None = Field(None, description="the token's first characters, to recognise it")


class Recommendation(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    version: int
    recommended: dict[str, Any]
    predicted: dict[str, Any]


def problems(*codes: int) -> dict[int, dict]:
    """OpenAPI `responses=` entries for the error codes a route can answer."""
    words = {400: "malformed request", 401: "no valid token", 403: "token lacks the scope", 404: "no such model",
             409: "conflict", 413: "request too large", 422: "invalid input", 503: "not ready"}
    return {code: {"model": Problem, "description": words.get(code, "error")} for code in codes}
