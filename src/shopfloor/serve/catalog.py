"""The registry over HTTP: list models, describe one, promote and roll back, an optimiser's recommendation.

A version's manifest summary is what a client needs to call the model (its inputs: columns,
classes, image size) and to judge it (training and validation metrics); the weights' details
and the bulky logs stay out. Manifests never change once written, so each is read once.
Promote and roll back need an admin token; after either, the new live version is loaded in
the background, so the first request to it does not wait for the load.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from shopfloor.serve.auth import list_tokens, require
from shopfloor.serve.live import Loaded
from shopfloor.serve.predictions import VERSION, json_response
from shopfloor.serve.schemas import LiveChange, ModelDetail, ModelEntry, PromoteRequest, Recommendation, TokenEntry, problems

router = APIRouter()


@router.get("/models", response_model=list[ModelEntry], responses=problems(401, 403), summary="Every model in the registry")
async def models(request: Request, _: str = Depends(require("read"))) -> list[dict]:
    return await run_in_threadpool(request.app.state.registry.describe)


@router.get("/models/{name}", response_model=ModelDetail, responses=problems(401, 403, 404, 422),
            summary="A model's versions, which is live, and each version's inputs and metrics")
async def model(name: str, request: Request, _: str = Depends(require("read"))) -> dict:
    return await run_in_threadpool(_detail, request.app.state, name)


def _detail(state, name: str) -> dict:
    registry = state.registry
    registry_state = registry.state(name)
    versions = registry.versions(name)
    manifests = {str(version): version_summary(state, name, version) for version in versions}
    return {"name": name, "versions": versions, "live": registry_state.get("live"),
            "history": registry_state.get("history", []), "manifests": manifests}


def version_summary(state, name: str, version: int) -> dict:
    """`summary` of a version's manifest, read once per service: a version's files never change."""
    key = (name, version)
    if key not in state.manifests:
        state.manifests[key] = summary(state.registry.manifest(name, version), f"model '{name}' version {version}")
    return state.manifests[key]


SENT = ("task", "created", "shopfloor_version", "params", "metrics")  # of the task's summary, always
SENT_IF_ANY = ("inputs", "outputs")


def summary(manifest: dict, source: str = "the model") -> dict:
    """What to send and what to expect of a model version, from its manifest: the task's own `summary` (the same
    as `shopfloor info`, without loading weights), less its sentences for people. Inputs and outputs are sent
    when the task declares any (a RUL model's outputs are its columns, the same for every model: none are sent).

    A manifest of a task this shopfloor does not know, or one its task cannot read, is a `NotAModel` naming
    `source` (503, one line), never another task's summary."""
    from shopfloor.errors import NotAModel
    from shopfloor.tasks import estimator_class

    cls = estimator_class(manifest.get("task", "?"), source=source)
    try:
        described = cls.summary(manifest)
    except (AttributeError, KeyError, TypeError, ValueError) as err:  # a manifest whose parts are not what they should be
        raise NotAModel(f"{source}: its manifest could not be read ({type(err).__name__}: {err}); the folder is "
                        "damaged") from None
    return {key: described[key] for key in SENT} | {key: described[key] for key in SENT_IF_ANY if described.get(key)}


@router.post("/models/{name}/promote", response_model=LiveChange, responses=problems(401, 403, 404, 422),
             summary="Make a version live (admin)")
async def promote(name: str, body: PromoteRequest, request: Request, _: str = Depends(require("admin"))) -> dict:
    registry = request.app.state.registry
    previous = await run_in_threadpool(registry.live_version, name)
    await run_in_threadpool(registry.promote, name, body.version)
    _load_soon(request.app.state.models)
    return {"name": name, "live": body.version, "previous": previous}


@router.post("/models/{name}/rollback", response_model=LiveChange, responses=problems(401, 403, 404, 422),
             summary="Make the previously live version live again (admin)")
async def rollback(name: str, request: Request, _: str = Depends(require("admin"))) -> dict:
    registry = request.app.state.registry
    previous = await run_in_threadpool(registry.live_version, name)
    live = await run_in_threadpool(registry.rollback, name)
    _load_soon(request.app.state.models)
    return {"name": name, "live": live, "previous": previous}


def _load_soon(models) -> None:
    models.forget_live()
    models.warm_up_soon()


@router.get("/models/{name}/recommendation", response_model=Recommendation, responses=problems(401, 403, 404, 422, 503),
            summary="An optimiser's recommended settings, predictions and next experiments")
async def recommendation(name: str, request: Request, version: int | None = VERSION,
                         _: str = Depends(require("read"))) -> Response:
    state = request.app.state
    model: Loaded = await state.models.get(name, version)
    model.expect(("settings",), "/recommendation", "it has no settings to recommend")
    from shopfloor.serve.recommendations import recommendation as computed_once  # shared with the dashboard

    result = await asyncio.get_running_loop().run_in_executor(state.executor, computed_once, model)
    return json_response({"model": model.name, "version": model.version, **result})


@router.get("/tokens", response_model=list[TokenEntry], responses=problems(401, 403),
            summary="The API tokens: names, scopes, creation times (admin; never the tokens themselves)")
async def tokens(request: Request, _: str = Depends(require("admin"))) -> list[dict]:
    return await run_in_threadpool(list_tokens, request.app.state.registry.root)
