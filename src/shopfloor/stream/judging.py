"""A batch's predictions and the alerts they raise: every live model that reads the batch scores it, and each
prediction is judged, in time order, by its model's alarm rule.

Per model, one forward pass for the batch (`stream.scoring`); per prediction, the machine's alarm state moves
through the rule (`stream.machines.Fleet`), so a machine alerts when it enters a model's alarm, the same alerts
however the readings were batched. A block of samples (`stream.blocks`) goes to the fault-diagnosis models whose
channels it carries, and each window it completes is judged by its fault run (`alarms.verdict_rule`). A model that
fails on a batch costs its own predictions, never the readings.
"""

from __future__ import annotations

import logging

from shopfloor.alarms import AlarmRule, risk_rule, rul_rule, score_rule, verdict_rule
from shopfloor.stream.blocks import score_blocks
from shopfloor.stream.machines import Fleet
from shopfloor.stream.scoring import Models, Scorer, score_readings, score_risk, score_rul, sensor_shares

log = logging.getLogger("shopfloor.stream")


def judge(models: Models, fleet: Fleet, readings: list[dict], rul_alert: float | None = None,
          histories=None, tails=None) -> tuple[list[dict], list[dict], int]:
    """(predictions, alerts, how many models failed on their part of the batch).

    `rul_alert`: the rule of RUL models without one of their own (the worker's --rul-alert); `histories`: the
    store's, to start the window of a machine first heard of (`stream.scoring.score_rul`); `tails`: the store's
    samples waiting for a window, for a block's machine first heard of (`stream.blocks.score_blocks`)."""
    groups: dict[int, tuple] = {}
    for reading in readings:
        block = reading.get("block")
        scorers = models.for_block(block["channels"]) if block else models.for_columns(frozenset(reading["values"]))
        for scorer in scorers:
            groups.setdefault(id(scorer), (scorer, []))[1].append(reading)
    predictions, alerts, failed = [], [], 0
    for scorer, group in groups.values():
        try:
            if scorer.kind == "risk":
                _judge_risks(fleet, scorer, rule_of(scorer, rul_alert), group, predictions, alerts)
            elif scorer.kind == "score":
                _judge_scores(fleet, scorer, rule_of(scorer, rul_alert), group, histories, predictions, alerts)
            elif scorer.kind == "verdict":
                _judge_verdicts(fleet, scorer, rule_of(scorer, rul_alert), group, tails, predictions, alerts)
            else:
                _judge_ruls(fleet, scorer, rule_of(scorer, rul_alert), group, histories, predictions, alerts)
        except Exception as err:  # a model that fails on odd values must not lose the readings
            failed += 1
            log.error("model %s v%d failed on a batch of %d readings: %s", scorer.name, scorer.version, len(group), err)
    return predictions, alerts, failed


def rule_of(scorer: Scorer, rul_alert: float | None) -> AlarmRule | None:
    """The model's own alarm rule, else the failure model's threshold, the monitor model's 0.5 (clearing below 0.4),
    the diagnose model's 3 fault windows in a row (clearing after 3 normal ones) or the worker's --rul-alert."""
    if scorer.alarm is not None:
        return scorer.alarm
    if scorer.kind == "risk":
        return risk_rule(scorer.threshold)
    if scorer.kind == "score":
        return score_rule()
    if scorer.kind == "verdict":
        return verdict_rule()
    return rul_rule(rul_alert) if rul_alert is not None else None


def _judge_risks(fleet: Fleet, scorer: Scorer, rule: AlarmRule | None, group: list[dict], predictions: list,
                 alerts: list) -> None:
    risks = score_risk(scorer, group).tolist()
    for i in sorted(range(len(group)), key=lambda i: group[i]["time"]):  # each machine's readings in time order
        reading, risk = group[i], risks[i]
        predictions.append({"line": reading["line"], "machine": reading["machine"], "time": reading["time"],
                            "model": scorer.name, "version": scorer.version, "risk": risk,
                            "sent_at": reading["sent_at"]})
        state = fleet.state(reading["line"], reading["machine"])
        alert = fleet.risk(state, reading["time"], risk, scorer.threshold, scorer.name, scorer.version, rule)
        if alert:
            alerts.append(alert)


def _judge_ruls(fleet: Fleet, scorer: Scorer, rule: AlarmRule | None, group: list[dict], histories,
                predictions: list, alerts: list) -> None:
    scored, estimates = score_rul(scorer, group, histories)
    for reading, (rul, low, high) in zip(scored, estimates.tolist(), strict=True):
        predictions.append({"line": reading["line"], "machine": reading["machine"], "time": reading["time"],
                            "model": scorer.name, "version": scorer.version, "rul": rul, "rul_low": low,
                            "rul_high": high, "sent_at": reading["sent_at"]})
        state = fleet.state(reading["line"], reading["machine"])
        alert = fleet.rul(state, reading["time"], rul, low, high, scorer.name, scorer.version, rule)
        if alert:
            alerts.append(alert)


def _judge_scores(fleet: Fleet, scorer: Scorer, rule: AlarmRule | None, group: list[dict], histories,
                  predictions: list, alerts: list) -> None:
    """Every reading's score is judged, in time order, by the rule; one prediction per message (its newest
    reading's score and sensors) is stored.

    Storing a score per reading, as a risk is, cut the line to about 10,000-16,000 readings/s on 2 shared cores
    (25 readings per message: 25 prediction rows with their sensors in words per message); an alert still comes
    from the very reading that entered the alarm, with that reading's sensors. A machine whose scores in the
    batch never reach the level that would move its alarm is judged at its newest reading only: the same state,
    without a Python step per reading."""
    scored, scores, contributions = score_readings(scorer, group, histories)
    sensors = scorer.windows.columns
    keys = [(r["line"], r["machine"]) for r in scored]
    starts = [i for i in range(len(keys)) if i == 0 or keys[i] != keys[i - 1]]
    for start, end in zip(starts, [*starts[1:], len(keys)], strict=True):
        state = fleet.state(*keys[start])
        judged = range(start, end) if _may_move(state, scorer.name, rule, scores[start:end]) else [end - 1]
        named = dict(zip(judged, sensor_shares(sensors, contributions[list(judged)]), strict=True))
        for i in judged:
            alert = fleet.score(state, scored[i]["time"], float(scores[i]), named[i], scorer.name, scorer.version, rule)
            if alert:
                alerts.append(alert)
        for i in range(start, end):
            reading = scored[i]
            if reading.get("newest", True):
                text = named.get(i) or sensor_shares(sensors, contributions[i:i + 1])[0]
                predictions.append({"line": reading["line"], "machine": reading["machine"], "time": reading["time"],
                                    "model": scorer.name, "version": scorer.version, "score": float(scores[i]),
                                    "score_sensors": text, "sent_at": reading["sent_at"]})


def _judge_verdicts(fleet: Fleet, scorer: Scorer, rule: AlarmRule | None, group: list[dict], tails, predictions: list,
                    alerts: list) -> None:
    """Every window a block completes is stored with its verdict and judged, each machine's in time order."""
    places, verdicts = score_blocks(scorer, group, tails)
    runner_ups = verdicts.get("runner_up")
    for i, place in enumerate(places):
        verdict = {"class": str(verdicts["class"][i]), "probability": float(verdicts["probability"][i]),
                   "runner_up": None if runner_ups is None else str(runner_ups[i]),
                   "unknown": bool(verdicts["unknown"][i])}
        predictions.append({**place, "model": scorer.name, "version": scorer.version, "verdict": verdict["class"],
                            "verdict_probability": verdict["probability"], "runner_up": verdict["runner_up"],
                            "unknown": verdict["unknown"]})
        state = fleet.state(place["line"], place["machine"])
        alert = fleet.verdict(state, place["time"], verdict, scorer.normal, scorer.name, scorer.version, rule)
        if alert:
            alerts.append(alert)


def _may_move(state, model: str, rule: AlarmRule | None, scores) -> bool:
    """Whether some score would move the machine's alarm (enter it when off, clear it when on)."""
    if rule is None:
        return False
    on = bool((state.alarms.get(model) or {}).get("on"))
    return bool((rule.clear if on else rule.enter).holds(scores).any())
