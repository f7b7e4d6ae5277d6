"""The dashboard: server-rendered pages over the registry and the store, refreshed by a few lines of JavaScript.

Pages
- `/`                      fleet: every machine's latest failure risk and RUL with its interval, recent alerts
- `/machines/{line}/{id}`  one machine: risk and RUL trends, its alerts
- `/inspection`            recent inspected images with their verdicts and heatmaps
- `/models`                the registry: versions, the live one, validation metrics, a report per model
- `/optimizer`             each process optimiser's recommended settings and next experiments

Live parts of a page are fragments (`/fragments/...`) that `static/dashboard.js` fetches again every
few seconds and swaps in, the way HTMX does, without a front-end build. Every page needs a read
token; a browser without one is sent to `/login`.
"""

from __future__ import annotations

import time
from functools import lru_cache
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shopfloor.serve.charts import trend_svg

router = APIRouter(include_in_schema=False)
STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript", "docs.js": "text/javascript"}
TASK_NAMES = {"tabular": "failure / KPI", "rul": "remaining useful life", "defects": "defect classes",
              "anomaly": "anomaly detection", "optimize": "process optimiser"}


@lru_cache(maxsize=1)
def _templates():
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("shopfloor.serve", "templates"), autoescape=select_autoescape(["html"]))
    env.filters["ago"] = _ago
    env.filters["num"] = _num
    env.globals["task_names"] = TASK_NAMES
    return env


def _page(request: Request, template: str, **context) -> HTMLResponse:
    html = _templates().get_template(template).render(request=request, path=request.url.path, **context)
    return HTMLResponse(html)


def _signed_in(request: Request) -> str | None:
    from shopfloor.serve.auth import token_scope

    return token_scope(request)


def _page_reader(request: Request) -> None:
    """A page without a read token sends the browser to sign in, and back here afterwards."""
    if not _signed_in(request):
        raise HTTPException(303, "sign in first", headers={"Location": f"/login?next={quote(request.url.path)}"})


def _part_reader(request: Request) -> None:
    """A fragment or an image without a read token: 401, which dashboard.js turns into the sign-in page."""
    if not _signed_in(request):
        raise HTTPException(401, "sign in again: the dashboard needs a read token")


PAGE, PART = [Depends(_page_reader)], [Depends(_part_reader)]


def _store(request: Request):
    return getattr(request.app.state, "store", None)


# -- signing in -------------------------------------------------------------------------
def _local(target: str | None) -> str:
    """Where to go after signing in: a path on this service only, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/"):
    return _page(request, "login.html", next=_local(next), failed=False)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request):
    """Check a typed token and keep it in an HTTP-only cookie; the browser then sends it like a Bearer header."""
    from shopfloor.serve.auth import COOKIE

    form = await request.form()
    token, target = str(form.get("token") or "").strip(), _local(str(form.get("next") or "/"))
    if request.app.state.tokens.scope_of(token) is None:
        response = _page(request, "login.html", next=target, failed=True)
        response.status_code = 401
        return response
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        max_age=12 * 3600)
    return response


@router.post("/logout")
def logout():
    """A POST (a form button), so that a link or an image on another page cannot sign a browser out."""
    from shopfloor.serve.auth import COOKIE

    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


# -- fleet -----------------------------------------------------------------------------
def _fleet_context(request: Request) -> dict:
    store = _store(request)
    machines = store.fleet() if store else []
    machines.sort(key=lambda m: (not m.get("alerting"), m["line"], m["machine"]))
    return {"machines": machines, "alerting": sum(bool(m.get("alerting")) for m in machines),
            "counts": store.counts(only=("dead_letters",)) if store else {}, "now": time.time()}


@router.get("/", dependencies=PAGE, response_class=HTMLResponse)
def fleet(request: Request):
    store = _store(request)
    return _page(request, "fleet.html", **_fleet_context(request), alerts=store.alerts(20) if store else [])


@router.get("/fragments/fleet", dependencies=PART, response_class=HTMLResponse)
def fleet_fragment(request: Request):
    return _page(request, "_fleet.html", **_fleet_context(request))


@router.get("/fragments/alerts", dependencies=PART, response_class=HTMLResponse)
def alerts_fragment(request: Request):
    store = _store(request)
    return _page(request, "_alerts.html", alerts=store.alerts(20) if store else [], now=time.time())


@router.get("/machines/{line}/{machine}", dependencies=PAGE, response_class=HTMLResponse)
def machine_page(request: Request, line: str, machine: str):
    store = _store(request)
    state = store.machine(line, machine) if store else None
    if state is None:
        raise HTTPException(404, f"no readings from machine '{machine}' on line '{line}' yet")
    points = store.trend(line, machine, limit=300)
    charts = [trend_svg(points, "rul", "remaining useful life (cycles), 90 % interval", low="rul_low", high="rul_high"),
              trend_svg(points, "risk", "failure risk", limit=state.get("risk_threshold"), limit_label="alarm threshold",
                        fixed_range=(0.0, 1.0))]
    alerts = store.alerts(50, line=line, machine=machine)
    return _page(request, "machine.html", machine=state, charts=charts, alerts=alerts, now=time.time())


# -- inspection ------------------------------------------------------------------------
@router.get("/inspection", dependencies=PAGE, response_class=HTMLResponse)
def inspection(request: Request):
    store = _store(request)
    return _page(request, "inspection.html", inspections=store.inspections(24) if store else [], now=time.time())


@router.get("/fragments/inspection", dependencies=PART, response_class=HTMLResponse)
def inspection_fragment(request: Request):
    store = _store(request)
    return _page(request, "_inspections.html", inspections=store.inspections(24) if store else [], now=time.time())


@router.get("/inspection/{id}/{kind}.png", dependencies=PART)
def inspection_image(request: Request, kind: str, id: int = PathParam(ge=1, le=2**63 - 1)):
    if kind not in ("image", "heatmap"):
        raise HTTPException(404, "images are 'image' or 'heatmap'")
    store = _store(request)
    data = store.inspection_image(id, kind) if store else None
    if data is None:
        raise HTTPException(404, f"no {kind} stored for inspection {id}")
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


# -- models and optimisers -------------------------------------------------------------
@router.get("/models", dependencies=PAGE, response_class=HTMLResponse)
def models(request: Request):
    from shopfloor.serve.catalog import version_summary

    entries = request.app.state.registry.describe()
    for entry in entries:
        if entry["live"] is not None:
            metrics = version_summary(request.app.state, entry["name"], entry["live"])["metrics"]["validation"]
            entry["metrics"] = {k: v for k, v in metrics.items() if isinstance(v, int | float)} if isinstance(
                metrics, dict) else {}
    return _page(request, "models.html", models=entries)


@router.get("/models/{name}/report", dependencies=PAGE, response_class=HTMLResponse)
def model_report(request: Request, name: str):
    """A plain function: FastAPI runs it in its thread pool, so loading a model never holds up the event loop."""
    return HTMLResponse(_report_html(request.app.state.registry.live(name)))


_reports: dict[tuple[str, int], str] = {}


def _report_html(live) -> str:
    """The model's report page from its stored validation (no data needed), made once per version."""
    import tempfile
    from pathlib import Path

    from shopfloor.report import write_report

    key = (live.name, live.version, id(live.estimator))  # the loaded model itself: two registries may share a name
    if key not in _reports:
        with tempfile.TemporaryDirectory() as folder:
            page = write_report(live.estimator, Path(folder) / "report.html")
            _reports[key] = page.read_text(encoding="utf-8")
    return _reports[key]


@router.get("/optimizer", dependencies=PAGE, response_class=HTMLResponse)
def optimizer(request: Request):
    from shopfloor.serve.recommendations import recommendation

    registry = request.app.state.registry
    optimisers = []
    for entry in registry.describe():
        if entry.get("task") == "optimize":
            live = registry.live(entry["name"])
            result = recommendation(live)
            optimisers.append({"name": live.name, "version": live.version, "result": result,
                               "params": live.estimator.get_params()})
    return _page(request, "optimizer.html", optimisers=optimisers)


@router.get("/static/{name}")
def static(name: str):
    """The dashboard's own files; any other name is refused before a path is built."""
    if name not in STATIC:
        raise HTTPException(404, "no such file")
    from importlib.resources import files

    return Response(files("shopfloor.serve").joinpath("static", name).read_bytes(), media_type=STATIC[name],
                    headers={"Cache-Control": "public, max-age=300"})


def _ago(at: float | None, now: float | None = None) -> str:
    if at is None:
        return "never"
    seconds = max(0.0, (now or time.time()) - at)
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _num(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)
