"""Outcomes (labels that arrive later) joined to the stored predictions they belong to, for the service's outcomes
route (`serve.outcomes`, where the choices are explained) and the stream worker's outcome topic (`stream.outcomes`).

A label is joined to the stored prediction of its model for its machine at the reading's time: exactly, or with a
tolerance the nearest within it (of two as near, the earlier: the reading before the outcome); one label per
prediction, so that no reading counts twice. Unmatched labels are stored too (prediction_id null) and matched again
when sent again; one row per (line as sent, machine, time, model), so that redelivery replaces, never adds.
"""

from __future__ import annotations

import bisect

import sqlalchemy as sa

from shopfloor.errors import ShopfloorError


class UnknownOutcome(ShopfloorError):
    """A label that is not one of the model's classes (HTTP 422)."""


def label_classes(estimator) -> list[str] | None:
    """The classes an outcome for this model may be (as text, the failure class last), or None for a model that gives
    no calibrated yes/no failure probability."""
    classifier = (getattr(estimator, "drift_profile_", None) or {}).get("classifier")
    if not classifier or classifier.get("output") != "risk":
        return None
    classes = getattr(estimator, "classes_", None) or [[0, 1]]
    if isinstance(classes[0], list | tuple):  # a table model keeps one list per target; a yes/no model has one
        classes = classes[0]
    return [label_text(c) for c in classes]


def label_text(value) -> str:
    """A label as the store keeps it: true/false as 1/0, 1.0 as 1, anything else as its text."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def store_outcomes(store, model: str, labels: list[dict], tolerance: float = 0.0) -> list[dict]:
    """Join each label ({line or None, machine, time, outcome}) to its prediction and store them all (`Store.
    record_outcomes`); returns the unmatched ones: {index, line, machine, time, reason}."""
    rows, unmatched, claimed = [], [], {}
    with store.engine.connect() as db:
        found = match_all(db, model, labels, tolerance)
        taken = stored_claims(db, model, {hit["id"] for hit, _ in found if hit is not None})
    for i, (label, (hit, reason)) in enumerate(zip(labels, found, strict=True)):
        key = (label["line"] or "", label["machine"], label["time"])
        if hit is not None:
            other = claimed.get(hit["id"], taken.get(hit["id"]))
            if other is not None and other != key:  # one outcome per prediction, so that no reading counts twice
                reason = f"the prediction at time {hit['time']:g} already has the outcome sent for time {other[2]:g}"
            else:
                claimed[hit["id"]] = key
        if reason is not None:
            unmatched.append({"index": i, "line": label["line"], "machine": label["machine"], "time": label["time"],
                              "reason": reason})
        rows.append({"line": key[0], "machine": key[1], "time": key[2], "model": model, "outcome": label["outcome"],
                     "prediction_id": hit["id"] if reason is None else None})
    store.record_outcomes(rows)
    return unmatched


def match_all(db, model: str, labels: list[dict], tolerance: float) -> list[tuple[dict | None, str | None]]:
    """Per label, the stored prediction of `model` for its machine nearest its time within `tolerance` (of two as near
    the earlier), or None and the reason there is none. One query per machine of the request (its predictions
    between the earliest label's time and the latest's), not per label: per label, a request of 10,000 labels took
    19 s on SQLite."""
    lines = machine_lines(db, {label["machine"] for label in labels if label["line"] is None})
    groups: dict[tuple, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault((label["line"], label["machine"]), []).append(i)
    within = "at that time" if tolerance == 0 else f"within {tolerance:g} of that time"
    found: list = [None] * len(labels)
    for (line, machine), members in groups.items():
        on = [line] if line is not None else lines.get(machine, [])
        if not on:
            for i in members:
                found[i] = None, f"machine '{machine}' is on no line the store knows yet: send its 'line'"
            continue
        times = [labels[i]["time"] for i in members]
        candidates = predictions_between(db, model, on, machine, min(times) - tolerance, max(times) + tolerance)
        for i in members:
            found[i] = nearest(candidates, labels[i]["time"], tolerance, line is None) or \
                (None, f"no prediction of '{model}' for {machine} {within}")
    return found


def nearest(candidates: list[dict], time: float, tolerance: float, any_line: bool) -> tuple | None:
    """(prediction, None) nearest `time` among `candidates` (sorted by time), (None, why) where two lines tie, None
    where none is within `tolerance`."""
    times = [c["time"] for c in candidates]
    near = candidates[bisect.bisect_left(times, time - tolerance):bisect.bisect_right(times, time + tolerance)]
    if not near:
        return None
    best = min(near, key=lambda c: (abs(c["time"] - time), c["time"]))
    ties = {c["line"] for c in near if abs(c["time"] - time) == abs(best["time"] - time)}
    if any_line and len(ties) > 1:
        return None, f"machine '{best['machine']}' is on lines {', '.join(sorted(ties))}: send its 'line'"
    return best, None


def machine_lines(db, names: set[str]) -> dict[str, list[str]]:
    """The lines each machine is on, from the machines' latest states (a small table)."""
    from shopfloor.store_schema import machines

    lines: dict[str, list[str]] = {}
    names = sorted(names)
    for k in range(0, len(names), 500):
        query = sa.select(machines.c.line, machines.c.machine).where(machines.c.machine.in_(names[k:k + 500]))
        for line, machine in db.execute(query):
            lines.setdefault(machine, []).append(line)
    return lines


def predictions_between(db, model: str, lines: list[str], machine: str, first: float, last: float) -> list[dict]:
    from shopfloor.store_schema import predictions

    p = predictions.c
    query = (sa.select(p.id, p.line, p.machine, p.time)
             .where(p.line.in_(lines), p.machine == machine, p.model == model, p.time.between(first, last))
             .order_by(p.time, p.line))
    return [dict(r._mapping) for r in db.execute(query)]


def stored_claims(db, model: str, ids: set[int]) -> dict[int, tuple]:
    """The (line, machine, time) of the outcome already joined to each of these predictions, where one is."""
    from shopfloor.store_schema import outcomes

    o, ids, claims = outcomes.c, sorted(ids), {}
    for k in range(0, len(ids), 500):
        query = sa.select(o.prediction_id, o.line, o.machine, o.time).where(o.prediction_id.in_(ids[k:k + 500]),
                                                                           o.model == model)
        for prediction, *key in db.execute(query):
            claims[prediction] = tuple(key)
    return claims
