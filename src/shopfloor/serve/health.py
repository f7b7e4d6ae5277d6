"""A live model's health on the dashboard (issue 19, item 3): `/models/{name}/health`, linked from `/models`.

What the drift watch on the line stored (`watch.line` writes the `drift_verdicts` table, one row per input and output
per comparison of the rolling profile with the training profile): each input's verdict per comparison, newest first
and at most `CHECKS` of them, so that one reads whether an input drifted once or stays drifted; the data-quality
findings of the newest comparison; and, for a calibrated yes/no model, its estimated accuracy (confidence-based,
`watch.performance`) on its latest stored failure probabilities beside the accuracy measured at training. The store
holds no outcomes (labels) of the line's readings, so the accuracy measured on the line cannot be shown yet: the
page says so in one line rather than leave the reader guessing.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from shopfloor.serve.dashboard import PAGE, render_page

router = APIRouter(include_in_schema=False)
CHECKS = 30  # comparisons in a model's table (every >= 5 s on the line: at least the last 2.5 minutes)
RISKS = 500  # latest stored failure probabilities behind the estimated accuracy
COLOURS = {"ok": "#2e8b57", "watch": "#e8a317", "drift": "#c92a2a"}


def drift_table(store, model: str, checks: int = CHECKS) -> dict | None:
    """{"columns": [(kind, input), ...], "rows": [{at, version, readings, cells: {input: cell}}, newest first]} from the
    latest `checks` comparisons of `model` in the store's `drift_verdicts`; None when it has none."""
    from shopfloor.store_schema import drift_verdicts

    d = drift_verdicts.c
    times = sa.select(d.at).where(d.model == model).group_by(d.at).order_by(d.at.desc()).limit(int(checks))
    with store.engine.connect() as db:
        rows = [dict(r._mapping) for r in db.execute(
            sa.select(drift_verdicts).where(d.model == model, d.at.in_(times)).order_by(d.at.desc(), d.id))]
    if not rows:
        return None
    columns: dict[tuple[str, str], None] = {}
    comparisons: dict[float, dict] = {}
    for r in sorted(rows, key=lambda r: r["kind"] != "input"):  # inputs first, then the model's outputs
        columns.setdefault((r["kind"], r["input"]))
    for r in rows:
        row = comparisons.setdefault(r["at"], {"at": r["at"], "version": r["version"], "readings": r["readings"],
                                               "cells": {}})
        row["cells"][r["input"]] = {"verdict": r["verdict"], "colour": COLOURS.get(r["verdict"], "#444b55"),
                                    "title": cell_title(r), "findings": r["findings"]}
    return {"columns": list(columns), "rows": list(comparisons.values())}


def cell_title(row: dict) -> str:
    """What a verdict rests on, for a cell's tooltip: "drift: PSI 0.41, 1.3 sd moved, p 0.0001 (500 readings)"."""
    parts = [f"PSI {row['psi']:.3g}" if row.get("psi") is not None else "",
             f"{row['wasserstein_sd']:.2g} sd moved" if row.get("wasserstein_sd") is not None else "",
             f"JS {row['js']:.3g}" if row.get("js") is not None else "",
             f"p {row['p_value']:.2g}" if row.get("p_value") is not None else ""]
    return f"{row['input']} {row['verdict']}: {', '.join(p for p in parts if p) or 'no statistic'} " \
           f"({row['readings']} readings)"


def quality_findings(table: dict | None) -> list[tuple[str, str]]:
    """(input, finding) of the newest comparison: stuck sensors, values out of the training range, missing values."""
    if table is None:
        return []
    newest = table["rows"][0]["cells"]
    return [(name, part) for name, cell in newest.items() if cell["findings"] for part in cell["findings"].split("; ")]


def accuracy(store, model: str, version: int, profile: dict | None) -> dict | None:
    """The estimated accuracy and F1 of a calibrated yes/no model (this `version`, whose calibration the profile
    describes) on its latest `RISKS` stored failure probabilities, beside what was measured and estimated on its
    validation rows; None for a model that gives no such probability."""
    import numpy as np

    from shopfloor.store_schema import predictions
    from shopfloor.watch.performance import classifier_estimate

    classifier = (profile or {}).get("classifier")
    if not classifier or classifier.get("output") != "risk":  # the store keeps a classifier's probability as risk
        return None
    p = predictions.c
    with store.engine.connect() as db:
        query = sa.select(p.risk).where(p.model == model, p.version == version, p.risk.is_not(None))
        risks = [r[0] for r in db.execute(query.order_by(p.id.desc()).limit(RISKS))]
    reference = classifier.get("reference") or {}
    return {"threshold": classifier["threshold"], "rows": len(risks),
            "estimated": classifier_estimate(classifier, np.array(risks, dtype=np.float64))
            if risks else None, "validation": reference.get("measured"), "validation_estimated": reference.get("estimated")}


@router.get("/models/{name}/health", dependencies=PAGE, response_class=HTMLResponse)
def model_health(request: Request, name: str):
    """A plain function: FastAPI runs it in its thread pool, so loading the model never holds up the event loop."""
    live = request.app.state.registry.live(name)
    store = getattr(request.app.state, "store", None)
    profile = getattr(live.estimator, "drift_profile_", None)
    table = drift_table(store, live.name) if store is not None else None
    return render_page(request, "health.html", model=live, has_profile=profile is not None, table=table,
                       findings=quality_findings(table), colours=COLOURS, now=time.time(),
                       accuracy=accuracy(store, live.name, live.version, profile) if store is not None else None)
