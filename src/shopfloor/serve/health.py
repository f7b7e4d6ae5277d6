"""A live model's health on the dashboard (issue 19, item 3): `/models/{name}/health`, linked from `/models`.

What the drift watch on the line stored (`watch.line` writes the `drift_verdicts` table, one row per input and output
per comparison of the rolling profile with the training profile): each input's verdict per comparison, newest first
and at most `CHECKS` of them, so that one reads whether an input drifted once or stays drifted; the data-quality
findings of the newest comparison; and, for a calibrated yes/no model, its accuracy on the line.

Accuracy: where outcomes (labels that arrive later, `serve.outcomes`) are joined to this version's stored predictions,
the accuracy and F1 measured on the latest `RISKS` labelled predictions, beside the confidence-based estimate
(`watch.performance`) on the very same predictions, so that the two differ only by the method: a gap says the
calibration no longer holds (concept drift), which the estimate alone cannot show. Beside them the estimate on the
latest `RISKS` unlabelled predictions (what the labels have not reached yet), the figures measured at training, and
the same pair per block of `RISKS` labelled predictions over time (newest first, at most `BLOCKS`): blocks of a fixed
count rather than per day, so that every row rests on as many predictions whatever the line's pace. Without labels
the page says "No labels yet" and how to send them.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from shopfloor.outcomes import label_classes
from shopfloor.serve.dashboard import PAGE, render_page
from shopfloor.serve.verdicts import when
from shopfloor.watch.report import COLOURS

router = APIRouter(include_in_schema=False)
CHECKS = 30  # comparisons in a model's table (every >= 5 s on the line: at least the last 2.5 minutes)
RISKS = 500  # latest stored failure probabilities behind each accuracy figure (and each block of the one over time)
BLOCKS = 10  # blocks of RISKS labelled predictions in the accuracy over time


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


def accuracy(store, model: str, version: int, profile: dict | None, classes: list[str] | None = None) -> dict | None:
    """The accuracy and F1 of a calibrated yes/no model (this `version`, whose calibration the profile describes):
    estimated on its latest `RISKS` unlabelled failure probabilities, measured and estimated on its latest labelled
    ones (`classes`: the labels' classes, the failure class last), per block of labelled ones, and at training;
    None for a model that gives no such probability."""
    classifier = (profile or {}).get("classifier")
    if not classifier or classifier.get("output") != "risk":  # the store keeps a classifier's probability as risk
        return None
    threshold = classifier["threshold"]
    risks = unlabelled_risks(store, model, version)
    labelled = labelled_risks(store, model, version, (classes or ["0", "1"])[-1])
    blocks = [block_figures(labelled[k:k + RISKS], classifier) for k in range(0, len(labelled), RISKS)]
    reference = classifier.get("reference") or {}
    return {"threshold": threshold, "rows": len(risks), "estimated": estimated(risks, classifier),
            "labelled": blocks[0]["rows"] if blocks else 0, "measured": blocks[0]["measured"] if blocks else None,
            "estimated_labelled": blocks[0]["estimated"] if blocks else None, "blocks": blocks,
            "validation": reference.get("measured"), "validation_estimated": reference.get("estimated")}


def unlabelled_risks(store, model: str, version: int, limit: int = RISKS) -> list[float]:
    """The latest `limit` failure probabilities of `model` `version` that no outcome is joined to, newest first."""
    from shopfloor.store_schema import outcomes, predictions

    p, o = predictions.c, outcomes.c
    query = (sa.select(p.risk).select_from(predictions.outerjoin(outcomes, o.prediction_id == p.id))
             .where(p.model == model, p.version == version, p.risk.is_not(None), o.id.is_(None))
             .order_by(p.id.desc()).limit(int(limit)))
    with store.engine.connect() as db:
        return [r[0] for r in db.execute(query)]


def labelled_risks(store, model: str, version: int, failure: str, limit: int = RISKS * BLOCKS) -> list[tuple]:
    """(time, failure probability, failed: 1 or 0) of the latest `limit` predictions of `model` `version` with an
    outcome joined, newest first; `failure`: the outcome that counts as a failure."""
    from shopfloor.store_schema import outcomes, predictions

    p, o = predictions.c, outcomes.c
    query = (sa.select(p.time, p.risk, o.outcome).select_from(outcomes.join(predictions, o.prediction_id == p.id))
             .where(o.model == model, p.model == model, p.version == version, p.risk.is_not(None))
             .order_by(p.id.desc()).limit(int(limit)))
    with store.engine.connect() as db:
        return [(t, risk, int(outcome == failure)) for t, risk, outcome in db.execute(query)]


def block_figures(rows: list[tuple], classifier: dict) -> dict:
    """Measured and estimated accuracy and F1 of a block of labelled predictions (newest first), and its times."""
    import numpy as np

    from shopfloor.watch.performance import measured_performance

    risks = np.array([r[1] for r in rows], dtype=np.float64)
    return {"rows": len(rows), "first": when(rows[-1][0]), "last": when(rows[0][0]),
            "measured": finite(measured_performance(risks, np.array([r[2] for r in rows], np.float64),
                                                   classifier["threshold"])),
            "estimated": estimated(risks, classifier)}


def estimated(risks, classifier: dict) -> dict | None:
    """CBPE's figures as `shopfloor drift` gives them: through the profile's reliability curve where it has one."""
    import numpy as np

    from shopfloor.watch.performance import classifier_estimate

    return finite(classifier_estimate(classifier, np.asarray(risks, dtype=np.float64))) if len(risks) else None


def finite(figures: dict[str, float]) -> dict[str, float | None]:
    """NaN (an F1 with no failure among the rows) as None, which the page shows as a dash."""
    return {k: v if v == v else None for k, v in figures.items()}


@router.get("/models/{name}/health", dependencies=PAGE, response_class=HTMLResponse)
def model_health(request: Request, name: str):
    """A plain function: FastAPI runs it in its thread pool, so loading the model never holds up the event loop."""
    live = request.app.state.registry.live(name)
    store = getattr(request.app.state, "store", None)
    profile = getattr(live.estimator, "drift_profile_", None)
    table = drift_table(store, live.name) if store is not None else None
    return render_page(request, "health.html", model=live, has_profile=profile is not None, table=table,
                       findings=quality_findings(table), colours=COLOURS, now=time.time(), block=RISKS,
                       accuracy=accuracy(store, live.name, live.version, profile, label_classes(live.estimator))
                       if store is not None else None)
