"""The REST service: FastAPI over a model registry, for MES, quality systems and the dashboard.

    shopfloor serve --models DIR        # run_service(); the dashboard is at /, the API under /api, docs at /docs

Secure by default: every /api route needs a token (auth.py), bodies are capped while they
arrive (limits.py), model names are checked before they touch a path (registry.check_name) and
only safetensors and JSON are ever loaded (shopfloor.load). Inference runs in a thread pool,
never on the event loop; single-row table requests are micro-batched (batching.py).

Errors are answered as {"detail": "..."} saying what to change: a ShopfloorError by its kind
(UnknownModel 404, everything else the client sent 422, a model that cannot be loaded 503),
malformed bodies 422 with each problem and its place, too large 413. A 500 is a bug.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Route

import shopfloor
from shopfloor.errors import Infeasible, ModelTooNew, NotAModel, ShopfloorError
from shopfloor.registry import BadName, Registry, UnknownModel
from shopfloor.serve import catalog, inspections, outcomes, predictions
from shopfloor.serve.auth import Forbidden, NotAuthenticated, TokenBook, TokenGate
from shopfloor.serve.guard import BrowserGuard
from shopfloor.serve.limits import MIB, MULTIPART_OVERHEAD, BodyLimit, TooBusy, TooLarge
from shopfloor.serve.live import LoadedModels, ModelUnavailable
from shopfloor.serve.schemas import Health, Readiness
from shopfloor.watch.line import watch_enabled
from shopfloor.watch.service import ServiceWatch

log = logging.getLogger("shopfloor.serve")

STATUS = [(NotAuthenticated, 401), (Forbidden, 403), (UnknownModel, 404), (TooLarge, 413), (TooBusy, 429),
          (BadName, 422), (ModelUnavailable, 503), (NotAModel, 503), (ModelTooNew, 503)]  # first match wins; others: 422
UNPARSED_BODY = "There was an error parsing the body"  # FastAPI's words for a body it could not read


def create_app(models: str | os.PathLike, database: str | None = None, *, max_body_bytes: int = 8 * MIB,
               max_image_bytes: int = 10 * MIB, max_images: int = 16, max_rows: int = 10_000,
               workers: int | None = None, batch_wait: float = 0.0, max_request_pixels: int = 100_000_000,
               image_workers: int | None = None, image_requests_per_client: int = 2) -> FastAPI:
    """The service over the registry at `models`; inspections are stored in `database` (a SQLAlchemy URL,
    default `sqlite:///<models>/shopfloor.db`). `workers` threads run inference (default: one per core, at most 4).

    Images are heavy: they are decoded and explained by their own `image_workers` threads (default: half the
    cores, at most 2), so that table rows never queue behind them; one request may hold at most
    `max_request_pixels` pixels in all, and one client at most `image_requests_per_client` image requests at once
    (429 beyond that)."""
    registry = Registry(models)
    # No OpenTelemetry hooks: checking for a configured provider on every request cost ~6 % of the busy path
    app = FastAPI(title="shopfloor", version=shopfloor.__version__, lifespan=_lifespan, docs_url=None, redoc_url=None,
                  telemetry={"tracing": False, "metrics": False, "logs": False},
                  description="Failure risk, remaining useful life, inspection and process settings from the models "
                              "in a shopfloor registry. Every /api route needs `Authorization: Bearer <token>` "
                              "(`shopfloor token create`).")
    state = app.state
    state.registry, state.tokens = registry, TokenBook(registry.root)
    state.database = database or _default_database(registry.root)
    state.store, state.watch = None, None
    state.max_body_bytes, state.max_image_bytes, state.max_images, state.max_rows = (
        max_body_bytes, max_image_bytes, max_images, max_rows)
    state.workers, state.batch_wait = workers or min(4, os.cpu_count() or 1), batch_wait
    state.image_workers = image_workers or max(1, min(2, (os.cpu_count() or 1) // 2))
    state.max_request_pixels, state.image_requests_per_client = max_request_pixels, image_requests_per_client
    state.image_requests = {}  # client -> image requests in flight
    state.manifests = {}

    def limit_for(path: str) -> tuple[int, str]:
        if path.endswith("/inspect"):
            return max_image_bytes + MULTIPART_OVERHEAD, "an image upload"
        if path.endswith("/inspect/batch"):
            return max_images * max_image_bytes + MULTIPART_OVERHEAD, "a batch of images"
        return max_body_bytes, "a JSON body"

    app.add_middleware(BodyLimit, limit_for=limit_for)
    app.add_middleware(TokenGate)  # added late, so it runs early: no body is read for a request without a token
    app.add_middleware(BrowserGuard)  # first of all: security headers on every answer, no change from a foreign page
    _add_error_handlers(app)
    for router in (predictions.router, inspections.router, catalog.router, outcomes.router):
        app.include_router(router, prefix="/api")
    app.router.routes.insert(0, Route("/api/models/{name}/predict", predictions.predict_route, methods=["POST"]))
    app.add_api_route("/health", health, methods=["GET"], response_model=Health, summary="Is the process up (always 200)")
    app.add_api_route("/ready", ready, methods=["GET"], response_model=Readiness, responses={503: {"model": Readiness}},
                      summary="Are the registry readable and every live model loaded (200), or not yet (503)")
    from shopfloor.serve.dashboard import router as dashboard
    from shopfloor.serve.docs import router as docs
    from shopfloor.serve.health import router as model_health

    app.include_router(dashboard)
    app.include_router(docs)
    app.include_router(model_health)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI):
    state = app.state
    state.executor = ThreadPoolExecutor(state.workers, thread_name_prefix="shopfloor-inference")
    state.image_executor = ThreadPoolExecutor(state.image_workers, thread_name_prefix="shopfloor-images")
    state.models = LoadedModels(state.registry, state.executor)
    state.batcher = predictions.batcher(state.executor, state.batch_wait)
    state.upload_dir = Path(tempfile.mkdtemp(prefix="shopfloor-uploads-"))  # mode 0700: only this user reads uploads
    state.store = await asyncio.get_running_loop().run_in_executor(state.executor, _open_store, state.database)
    state.watch = ServiceWatch(state.store, state.executor) if watch_enabled() else None  # drift per live model
    warm = asyncio.ensure_future(state.models.warm_up())
    try:
        yield
    finally:
        warm.cancel()
        state.executor.shutdown(wait=False, cancel_futures=True)
        state.image_executor.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(state.upload_dir, ignore_errors=True)
        close = getattr(state.store, "close", None)
        if close is not None:
            close()


def _default_database(models: Path) -> str:
    from shopfloor.store import default_url

    return default_url(models)


def _open_store(url: str):
    """The store for inspection records; the service still predicts (and says so in the log) without one."""
    try:
        from shopfloor.store import Store

        return Store(url)
    except Exception as err:  # noqa: BLE001 - a database problem must not stop predictions
        log.error("inspections will not be recorded: the store %s cannot be opened (%s)", url, err)
        return None


async def health() -> dict:
    return {"status": "ok"}


async def ready(request: Request) -> JSONResponse:
    models: LoadedModels | None = getattr(request.app.state, "models", None)
    if models is None:
        return JSONResponse({"ready": False, "models": {}, "reasons": ["the service is starting"]}, status_code=503)
    serving, reasons = await asyncio.get_running_loop().run_in_executor(None, models.readiness)
    if any(r.endswith("still loading") for r in reasons):
        models.warm_up_soon()  # a version promoted by the CLI since start-up
    return JSONResponse({"ready": not reasons, "models": serving, "reasons": reasons}, status_code=200 if not reasons else 503)


# -- errors ---------------------------------------------------------------------------------------
def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ShopfloorError)
    async def shopfloor_error(request: Request, err: ShopfloorError) -> JSONResponse:
        status = next((code for kind, code in STATUS if isinstance(err, kind)), 422)
        body = {"detail": str(err)}
        if isinstance(err, Infeasible) and err.closest is not None:
            body["closest"] = err.closest
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if isinstance(err, TooBusy):
            headers = {"Retry-After": str(err.retry_after)}
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, err: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": _message(e), "type": e.get("type", "")} for e in err.errors()]
        said = "; ".join(f"{_place(e['loc'])}: {e['msg']}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more problems)" if len(errors) > 5 else ""
        return JSONResponse({"detail": f"the request is not valid: {said}{more}", "errors": errors[:50]}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        status, detail = err.status_code, err.detail
        if status == 400 and detail == UNPARSED_BODY:
            status, detail = 422, ("the body could not be read: send JSON with 'Content-Type: application/json', or "
                                   "images as multipart/form-data file fields")
        return JSONResponse({"detail": detail}, status_code=status, headers=getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def bug(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(err).__name__}); the service log has the details"},
                            status_code=500)


def _message(error: dict) -> str:
    if error.get("type") == "json_invalid":
        return f"not valid JSON ({error.get('ctx', {}).get('error', 'cannot be parsed')})"
    return str(error.get("msg", ""))


def _place(loc: list) -> str:
    return ".".join(str(p) for p in loc) or "the request"


# -- running ------------------------------------------------------------------------------------
def run_service(models: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, database: str | None = None, *,
                workers: int | None = None, threads: int = 1, access_log: bool = False, log_level: str = "info",
                **limits) -> None:
    """Serve the registry at `models` until interrupted: one process (uvloop, httptools), `workers` inference
    threads of `threads` torch threads each. `limits`: max_body_bytes, max_image_bytes, max_images, max_rows,
    max_request_pixels, image_workers, image_requests_per_client."""
    import torch
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    torch.set_num_threads(threads)  # requests run side by side on the cores; one thread each wastes none on syncing
    app = create_app(models, database, workers=workers, **limits)
    logging_config = copy.deepcopy(LOGGING_CONFIG)  # the service's own messages (model loads, failures) beside uvicorn's
    logging_config["loggers"]["shopfloor"] = {"handlers": ["default"], "level": log_level.upper(), "propagate": False}
    uvicorn.run(app, host=host, port=port, loop="uvloop", http="httptools", workers=1, access_log=access_log,
                log_level=log_level, log_config=logging_config, timeout_keep_alive=30, server_header=False)
