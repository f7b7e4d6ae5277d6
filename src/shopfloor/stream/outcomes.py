"""Outcomes over MQTT: what a machine's readings turned out to be, on `<prefix>/<line>/<machine>/outcome`.

    shopfloor stream ... --topic 'plant/+/+/telemetry' --topic 'plant/+/+/outcome'

Payload: one outcome or a list, each `{"model": "failure", "time": <the reading's time>, "outcome": 1}`. The same
join as the service's outcomes route (`shopfloor.outcomes`, exact times: a line's gateway copies the reading's own
stamp): unmatched outcomes are stored and matched again when sent again. They are taken after the batch's readings
and predictions are committed, so that an outcome in the same batch as its reading finds its prediction.

An outcome that cannot be taken (not JSON, no such live model, a model without calibrated failure probability, a
label that is not one of its classes) is a dead letter with the reason, as a bad reading is; the others of the same
message are stored.
"""

from __future__ import annotations

import logging
import math

import orjson

from shopfloor.outcomes import label_classes, label_text, store_outcomes

log = logging.getLogger("shopfloor.stream")
TOPIC_END = "outcome"


def is_outcome(topic: str) -> bool:
    """Asked of every message the worker takes: a suffix test, the cheapest there is."""
    return topic.endswith("/" + TOPIC_END)


def record_outcomes(store, models, messages: list) -> list[dict]:
    """Store the outcomes of MQTT `messages` (topic, payload), joined to their predictions; returns the dead letters
    (topic, reason, payload, position), stored already where the database takes them, for the worker to publish.
    Outcomes of one model stored before another's failed stay stored and are in the dead letters too: sent again,
    they are stored once (a redelivered label replaces itself)."""
    per_model: dict[str, list[dict]] = {}
    dead = []
    for message in messages:
        labels, refused = parse_outcomes(message.topic, bytes(message.payload), models)
        dead += refused
        for model, label in labels:
            per_model.setdefault(model, []).append(label)
    unmatched = 0
    try:
        for model, labels in per_model.items():
            unmatched += len(store_outcomes(store, model, labels))
        if dead:
            store.write_dead_letters(dead)
    except Exception as err:  # noqa: BLE001 - the readings are stored already; the outcomes go to the dead letters
        log.error("the database refused %d outcomes (%s); they go to the dead letters", len(messages), err)
        dead = [{"topic": m.topic, "reason": f"could not be stored: {err}", "payload": bytes(m.payload)} for m in messages]
        try:  # the database may have refused only the outcomes: the dashboard's dead-letter list shows them then
            store.write_dead_letters(dead)
        except Exception as again:  # noqa: BLE001 - down altogether: the dead-letter topic still gets them
            log.error("nor could their dead letters be stored (%s)", again)
    if unmatched:
        log.info("%d outcomes stored without a prediction at their time (yet): sent again, they are matched", unmatched)
    return dead


def parse_outcomes(topic: str, payload: bytes, models) -> tuple[list[tuple[str, dict]], list[dict]]:
    """(model, label) of each outcome of one message, and the dead letters of those that cannot be taken."""
    parts = topic.split("/")
    if len(parts) < 3 or not parts[-3] or not parts[-2]:
        return [], [{"topic": topic, "reason": "an outcome's topic is <prefix>/<line>/<machine>/outcome",
                     "payload": payload}]
    line, machine = parts[-3], parts[-2]
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return [], [{"topic": topic, "reason": "payload is not JSON", "payload": payload}]
    items = body if isinstance(body, list) else [body]
    labels, dead = [], []
    for position, item in enumerate(items):
        reason = refusal(item, models)
        if reason is not None:
            dead.append({"topic": topic, "reason": reason, "payload": orjson.dumps(item), "position": position})
            continue
        labels.append((item["model"], {"line": line, "machine": machine, "time": float(item["time"]),
                                       "outcome": label_text(item["outcome"])}))
    return labels, dead


def refusal(item, models) -> str | None:
    """Why an outcome cannot be taken, or None."""
    if not isinstance(item, dict) or not isinstance(item.get("model"), str):
        return 'an outcome is {"model": NAME, "time": <the reading\'s time>, "outcome": <label>}'
    time = item.get("time")
    if isinstance(time, bool) or not isinstance(time, int | float) or not math.isfinite(time):
        return "an outcome's time must be a finite number (the time of the reading it belongs to)"
    scorer = models.scorers.get(item["model"])
    if scorer is None:
        return f"no live model '{item['model'][:64]}' on this stream"
    classes = label_classes(scorer.estimator)
    if classes is None:
        return f"model '{scorer.name}' gives no calibrated failure probability, so it takes no outcomes"
    outcome = item.get("outcome")
    if not isinstance(outcome, str | int | float | bool) or label_text(outcome) not in classes:
        return f"outcome {str(outcome)[:40]!r} is not a class of model '{scorer.name}' ({', '.join(classes)})"
    return None
