"""The drift watch on the line: a rolling profile per live model, verdicts stored, an alert when an input drifts.

The stream worker calls `LineWatch.observe` once per batch with the batch's readings and predictions. Each live
model with a drift profile gets a `rolling.RollingProfile` (fixed memory). About `PER_BATCH` readings of a batch
enter it, evenly spaced (at 20,000 readings a second a ring of 500 then spans a quarter of a second rather than a
fortieth; watching every reading cost 18 us a reading, a third of the worker's budget); once `CHECK_EVERY`
readings have come and `CHECK_SECONDS` have passed since the last comparison (one costs about 40 ms), the ring is
compared with the profile and one row per input and output goes to the store's `drift_verdicts` table.
An input that enters 'drift' raises one alert on `DRIFT_TOPIC` (it ends in 'alerts', so the worker never reads
it back as telemetry); it alerts again only after it was back to ok or watch. Verdicts are derived data: a
database that refuses them is logged, and the line goes on. `SHOPFLOOR_DRIFT_WATCH=off` turns the watch off.
"""

from __future__ import annotations

import json
import logging
import os
import time as clock

import numpy as np

from shopfloor.watch.compare import compare_view
from shopfloor.watch.rolling import DEFAULT_WINDOW, RollingProfile

log = logging.getLogger("shopfloor.stream")
CHECK_EVERY = 500  # readings of a model between two comparisons ...
CHECK_SECONDS = 5.0  # ... and seconds
PER_BATCH = 100
DRIFT_TOPIC = "shopfloor/drift/alerts"


def watch_enabled() -> bool:
    return os.environ.get("SHOPFLOOR_DRIFT_WATCH", "on").lower() not in ("off", "0", "false", "no")


class LineWatch:
    def __init__(self, store=None, window: int = DEFAULT_WINDOW, every: int = CHECK_EVERY,
                 seconds: float = CHECK_SECONDS, per_batch: int = PER_BATCH):
        self.store, self.window, self.every, self.seconds, self.per_batch = store, window, every, seconds, per_batch
        self.last_check: dict[tuple[str, int], float] = {}
        self.rolling: dict[tuple[str, int], RollingProfile] = {}
        self.since_check: dict[tuple[str, int], int] = {}
        self.drifting: dict[tuple[str, int], set[str]] = {}

    def observe(self, models, readings: list[dict], predictions: list[dict], publish=None) -> list[dict]:
        """Feed a batch to each live model's rolling profile; returns the verdict rows written (if any checks ran)
        and publishes an alert (`publish(topic, payload, qos=1)`) per input that entered drift."""
        rows = []
        for scorer in list(models.scorers.values()):
            if getattr(scorer.estimator, "drift_profile_", None) is None:
                continue  # saved before drift profiles
            stride = max(1, -(-len(readings) // self.per_batch))  # sampled before the (costlier) column check
            group = [r["values"] for r in readings[::stride] if scorer.columns.issubset(r["values"])]
            answers = [p for p in predictions if p.get("model") == scorer.name]
            check = self.feed(scorer.name, scorer.version, scorer.estimator, group, answers)
            if check is not None:
                rows += check(publish)
        if rows and self.store is not None:
            self.store_verdicts(rows)
        return rows

    def feed(self, name: str, version: int, estimator, rows: list[dict], answers: list[dict]):
        """Put one model's rows (dicts holding its input columns, already sampled) and its answers into its rolling
        profile. Returns None, or when a comparison is due, `check(publish) -> verdict rows` over a copy of the
        rings taken now, so that the caller may run it on another thread while rows keep coming (the service does).
        """
        profile = getattr(estimator, "drift_profile_", None)
        if profile is None or not rows:
            return None  # saved before drift profiles, or nothing of this model's
        key = (name, version)
        rolling = self.rolling.get(key)
        if rolling is None:
            rolling = self.rolling[key] = RollingProfile(profile, self.window)
            self._forget_older(name, version)
        inputs = rolling.columns
        rows = [r for r in rows if inputs.issubset(r)]  # a diagnose model's profile is of windows, not of readings
        if not rows:
            return None
        outputs = [[a.get(o) for o in rolling.outputs] for a in answers]
        rolling.add_records(rows, np.array(outputs, dtype=np.float64).reshape(len(outputs), -1) if outputs else None)
        self.since_check[key] = self.since_check.get(key, 0) + len(rows)
        now = clock.monotonic()
        if self.since_check[key] < self.every or now - self.last_check.get(key, -float("inf")) < self.seconds:
            return None
        self.since_check[key], self.last_check[key] = 0, now
        view = rolling.view()
        return lambda publish=None: self._check(key, compare_view(profile, view), publish)

    def _forget_older(self, name: str, version: int) -> None:
        for key in [k for k in self.rolling if k[0] == name and k[1] != version]:
            self.rolling.pop(key), self.since_check.pop(key, None), self.drifting.pop(key, None)
            self.last_check.pop(key, None)

    def _check(self, key: tuple[str, int], report: dict, publish) -> list[dict]:
        now = clock.time()
        rows = [{"model": key[0], "version": key[1], "input": r["input"], "kind": kind, "verdict": r["verdict"],
                 "psi": r.get("psi"), "wasserstein_sd": r.get("wasserstein_sd"), "js": r.get("js"),
                 "p_value": r.get("p_value"), "readings": r["readings"],
                 "findings": "; ".join(f"{f['finding']}: {f['detail']}" for f in r["findings"]) or None, "at": now}
                for kind, results in (("input", report["inputs"]), ("output", report["outputs"])) for r in results]
        now_drifting = set(report["drifting"])
        for name in sorted(now_drifting - self.drifting.get(key, set())):
            message = f"{key[0]} v{key[1]}: input '{name}' drifts from its training profile"
            log.warning(message)
            if publish is not None:
                publish(DRIFT_TOPIC, json.dumps({"model": key[0], "version": key[1], "input": name, "message": message,
                                                 "at": now}), qos=1)
        self.drifting[key] = now_drifting
        return rows

    def store_verdicts(self, rows: list[dict]) -> None:
        from shopfloor.store_schema import drift_verdicts

        try:
            with self.store.engine.begin() as db:
                db.execute(drift_verdicts.insert(), rows)
        except Exception as err:  # derived data: never stall the line for it
            log.error("could not store %d drift verdicts: %s", len(rows), err)
