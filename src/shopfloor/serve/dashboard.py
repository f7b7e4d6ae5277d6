"""The dashboard: server-rendered pages over the registry and the store, refreshed by a few lines of JavaScript.

Pages
- `/`                      fleet: every machine's latest failure risk and RUL with its interval, why it is in
                           alarm, recent alerts
- `/machines/{line}/{id}`  one machine: risk, RUL, verdict trends, forecast fans, a trend per sensor, why in alarm, its alerts
- `/alerts`                alerts sorted and filtered; each can be acknowledged (a form POST with a token derived
                           from the sign-in cookie, so another site cannot make the browser send it)
- `/inspection`            recent inspected images with their verdicts and heatmaps
- `/models`                the registry: versions, the live one, validation metrics, a report per model
- `/optimizer`             each process optimiser's recommended settings and next experiments

Live parts of a page are fragments (`/fragments/...`) that `static/dashboard.js` fetches again every
few seconds and swaps in, the way HTMX does, without a front-end build. Every page needs a read
token; a browser without one is sent to `/login`.

Length: about 405 lines: the routes share the page renderer, the sign-in guard and the fleet's queries, so they
read best together; a model's health page lives in `serve.health`, which renders through `render_page`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from functools import lru_cache
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from shopfloor.serve.charts import trend_svg
from shopfloor.serve.forecasts import forecast_fans
from shopfloor.serve.verdicts import verdict_strip

router = APIRouter(include_in_schema=False)
STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript", "docs.js": "text/javascript"}


@lru_cache(maxsize=1)
def _templates():
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("shopfloor.serve", "templates"), autoescape=select_autoescape(["html"]))
    env.filters["ago"] = _ago
    env.filters["num"] = _num
    return env


def _page(request: Request, template: str, **context) -> HTMLResponse:
    context.setdefault("back", request.url.path)  # where an acknowledgement form returns to
    html = _templates().get_template(template).render(request=request, path=request.url.path, csrf=_form_key(request),
                                                      **context)
    return HTMLResponse(html)


render_page = _page  # for the pages of other modules (serve.health)


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
    for m in machines:
        m["reasons"] = _reasons(m)
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
    return _page(request, "_alerts.html", alerts=store.alerts(20) if store else [], now=time.time(), back="/")


@router.get("/machines/{line}/{machine}", dependencies=PAGE, response_class=HTMLResponse)
def machine_page(request: Request, line: str, machine: str):
    store = _store(request)
    state = store.machine(line, machine) if store else None
    if state is None:
        raise HTTPException(404, f"no readings from machine '{machine}' on line '{line}' yet")
    points = store.trend(line, machine, limit=300)
    none = "no live model of this kind scores this machine"
    charts = [trend_svg(points, "rul", "remaining useful life (cycles), 90 % interval", low="rul_low", high="rul_high",
                        empty="not enough readings yet" if state.get("rul_model") else none),
              trend_svg(points, "risk", "failure risk", limit=state.get("risk_threshold"), limit_label="alarm threshold",
                        fixed_range=(0.0, 1.0), empty="not enough readings yet" if state.get("risk_model") else none)]
    if state.get("score_model"):  # a monitor model watches it: its anomaly score, 0.5 the model's own decision
        charts.append(trend_svg(points, "score", "anomaly score", limit=0.5, limit_label="anomaly",
                                fixed_range=(0.0, 1.0)))
    sensors = _sensor_charts(store.readings(line, machine, limit=200))
    alerts = store.alerts(50, line=line, machine=machine)
    last_event = next(iter(store.alerts(1, line=line, machine=machine, kind="score")), None)
    return _page(request, "machine.html", machine=state, charts=charts, sensors=sensors, alerts=alerts,
                 reasons=_reasons(state), now=time.time(), last_event=last_event,
                 event_sensors=shares_in(last_event["sensors"] if last_event else None), verdicts=verdict_strip(points),
                 forecasts=forecast_fans(request.app.state.registry, store, line, machine))


SENSOR_CHARTS = 40  # at most this many sensors get a chart on a machine's page


def shares_in(text: str | None) -> list[tuple[str, float]]:
    """[(sensor, share), ...] from a stored "flow 0.62, pressure 0.21, ..." (the sensors behind a monitor model's
    score); a part that does not end in a number is left out."""
    shares = []
    for part in (text or "").split(", "):
        name, _, share = part.rpartition(" ")
        try:
            shares.append((name, float(share)))
        except ValueError:
            continue
    return [(name, share) for name, share in shares if name]


def _sensor_charts(readings: list[dict]) -> list[str]:
    """A small trend per numeric sensor of the machine's stored readings, in the order the readings name them."""
    names: dict[str, None] = {}
    for reading in readings:
        for name, value in reading["values"].items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                names.setdefault(name)
    return [trend_svg([{"time": r["time"], "value": r["values"].get(name)} for r in readings], "value", name,
                      width=320, height=110) for name in list(names)[:SENSOR_CHARTS]]


def _reasons(machine: dict) -> list[str]:
    """Why a machine is in alarm, per model: the rule it met, the value that tripped it and when, and where it clears."""
    from shopfloor.alarms import WORDS, Condition, show

    try:
        alarms = json.loads(machine.get("alarms") or "{}")
    except ValueError:
        return []
    reasons = []
    for model, alarm in sorted(alarms.items()):
        if not isinstance(alarm, dict) or not alarm.get("on"):
            continue
        label = f"model {model}" + (f" v{alarm['version']}" if alarm.get("version") else "")
        if not alarm.get("rule"):
            reasons.append(f"{label}: in alarm (its rule was not recorded)")
            continue
        quantity = Condition.parse(alarm["rule"]).quantity
        value = f" {show(quantity, alarm['value'])}" if isinstance(alarm.get("value"), int | float) else ""
        since = f" at time {alarm['since']:g}" if isinstance(alarm.get("since"), int | float) else ""
        reasons.append(f"{WORDS[quantity]}{value} met {alarm['rule']}{since} ({label}; clears at {alarm.get('clear')})")
    return reasons


# -- alerts ----------------------------------------------------------------------------
ALERT_STATES = {"open": False, "acknowledged": True, "all": None}


@router.get("/alerts", dependencies=PAGE, response_class=HTMLResponse)
def alerts_page(request: Request, line: str = "", machine: str = "", kind: str = "", state: str = "open",
                sort: str = "newest"):
    """Alerts, sorted and filtered by query parameters (a plain GET form: the filter is a link one can share)."""
    from shopfloor.alarms import ALERT_KINDS
    from shopfloor.store import ALERT_ORDERS

    state = state if state in ALERT_STATES else "open"
    sort = sort if sort in ALERT_ORDERS else "newest"
    kind = kind if kind in ALERT_KINDS else ""
    store = _store(request)
    alerts = store.alerts(200, line=line or None, machine=machine or None, kind=kind or None,
                          acknowledged=ALERT_STATES[state], order=sort) if store else []
    query = request.url.query
    return _page(request, "alerts.html", alerts=alerts, now=time.time(), orders=list(ALERT_ORDERS), states=ALERT_STATES,
                 kinds=ALERT_KINDS, filters={"line": line, "machine": machine, "kind": kind, "state": state, "sort": sort},
                 back=request.url.path + (f"?{query}" if query else ""))


@router.post("/alerts/{id}/ack", dependencies=PART)
async def acknowledge(request: Request, id: int = PathParam(ge=1, le=2**63 - 1)):
    """Acknowledge an alert: who (the token's name) and when are stored; then back to the page the form was on."""
    from shopfloor.serve.auth import presented_token

    form = await request.form()
    # the Origin check of every state-changing request is the service's (`serve.guard`); the form key adds one
    # that another page cannot forge even from this host
    if not hmac.compare_digest(str(form.get("csrf") or ""), _form_key(request)):
        raise HTTPException(403, "the form did not come from this dashboard: reload the page and try again")
    store = _store(request)
    if store is None:
        raise HTTPException(503, "the service has no database: alerts cannot be acknowledged")
    who = request.app.state.tokens.name_of(presented_token(request)) or "unknown"
    if await run_in_threadpool(store.acknowledge, id, who) is None:
        raise HTTPException(404, f"no alert {id}")
    return RedirectResponse(_local(str(form.get("back") or "/")), status_code=303)


def _form_key(request: Request) -> str:
    """The hidden field of the dashboard's forms: derived from the signed-in token, which another site cannot read
    (the cookie is HTTP-only), so that a form posted from elsewhere is refused; empty without a token."""
    from shopfloor.serve.auth import presented_token

    token = presented_token(request)
    return hmac.new(token.encode("utf-8", "surrogatepass"), b"shopfloor dashboard form", hashlib.sha256).hexdigest() \
        if token else ""


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
    from shopfloor.errors import ShopfloorError
    from shopfloor.serve.catalog import version_summary

    entries = request.app.state.registry.describe()
    for entry in entries:
        task = _task_class(entry.get("task"))
        entry["title"] = task.title if task is not None and task.title else entry.get("task")
        entry["alarmed"] = bool(task is not None and task.gives)  # the stream judges its values: a default rule holds
        if entry["live"] is not None:
            try:
                metrics = version_summary(request.app.state, entry["name"], entry["live"])["metrics"]["validation"]
            except ShopfloorError as err:  # that version's manifest is damaged: the other models are still shown
                entry["problem"] = entry.get("problem") or str(err)
                continue
            entry["metrics"] = {k: v for k, v in metrics.items() if isinstance(v, int | float)} if isinstance(
                metrics, dict) else {}
    return _page(request, "models.html", models=entries)


def _task_class(task: str | None):
    """The estimator class of a registry entry's task, or None where the entry has none or this shopfloor does not
    know it (the entry then says why it cannot be served)."""
    from shopfloor.errors import NotAModel
    from shopfloor.tasks import estimator_class

    if task is None:
        return None
    try:
        return estimator_class(task)
    except NotAModel:
        return None


@router.get("/models/{name}/report", dependencies=PAGE, response_class=HTMLResponse)
def model_report(request: Request, name: str):
    """A plain function: FastAPI runs it in its thread pool, so loading a model never holds up the event loop."""
    return HTMLResponse(_report_html(request.app.state.registry.live(name)))


_reports: dict[tuple[str, int], str] = {}


def _report_html(live) -> str:
    """The model's report page from its stored validation (no data needed), made once per version."""
    import tempfile
    from pathlib import Path

    key = (live.name, live.version, id(live.estimator))  # the loaded model itself: two registries may share a name
    if key not in _reports:
        with tempfile.TemporaryDirectory() as folder:
            page = live.estimator.write_report(Path(folder) / "report.html")
            _reports[key] = page.read_text(encoding="utf-8")
    return _reports[key]


@router.get("/optimizer", dependencies=PAGE, response_class=HTMLResponse)
def optimizer(request: Request):
    from shopfloor.serve.recommendations import recommendation

    registry = request.app.state.registry
    optimisers = []
    for entry in registry.describe():
        if getattr(_task_class(entry.get("task")), "accepts", None) == "settings":
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
