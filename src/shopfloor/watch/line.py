"""The drift watch on the line: a rolling profile per live model, verdicts stored, an alert when an input drifts.

The stream worker calls `LineWatch.observe` once per batch with the batch's readings and predictions. Each live
model with a drift profile gets a `rolling.RollingProfile` (fixed memory); every `CHECK_EVERY` readings of it the
ring is compared with the profile and one row per input and output goes to the store's `drift_verdicts` table.
An input that enters 'drift' raises one alert on `DRIFT_TOPIC` (it ends in 'alerts', so the worker never reads
it back as telemetry); it alerts again only after it was back to ok or watch. Verdicts are derived data: a
database that refuses them is logged, and the line goes on. `SHOPFLOOR_DRIFT_WATCH=off` turns the watch off.
"""

from __future__ import annotations

import json
import logging
import os
import time as clock

import pandas as pd

from shopfloor.watch.rolling import DEFAULT_WINDOW, RollingProfile

log = logging.getLogger("shopfloor.stream")
CHECK_EVERY = 500  # readings of a model between two comparisons (one costs about as much as scoring 500 rows)
DRIFT_TOPIC = "shopfloor/drift/alerts"


def watch_enabled() -> bool:
    return os.environ.get("SHOPFLOOR_DRIFT_WATCH", "on").lower() not in ("off", "0", "false", "no")


class LineWatch:
    def __init__(self, store=None, window: int = DEFAULT_WINDOW, every: int = CHECK_EVERY):
        self.store, self.window, self.every = store, window, every
        self.rolling: dict[tuple[str, int], RollingProfile] = {}
        self.since_check: dict[tuple[str, int], int] = {}
        self.drifting: dict[tuple[str, int], set[str]] = {}

    def observe(self, models, readings: list[dict], predictions: list[dict], publish=None) -> list[dict]:
        """Feed a batch to each live model's rolling profile; returns the verdict rows written (if any checks ran)
        and publishes an alert (`publish(topic, payload, qos=1)`) per input that entered drift."""
        rows = []
        for scorer in list(models.scorers.values()):
            profile = getattr(scorer.estimator, "drift_profile_", None)
            if profile is None:
                continue  # saved before drift profiles
            key = (scorer.name, scorer.version)
            group = [r["values"] for r in readings if scorer.columns <= r["values"].keys()]
            if not group:
                continue
            rolling = self.rolling.get(key)
            if rolling is None:
                rolling = self.rolling[key] = RollingProfile(profile, self.window)
                self._forget_older(scorer.name, scorer.version)
            outputs = [p for p in predictions if p.get("model") == scorer.name]
            rolling.add(pd.DataFrame.from_records(group, columns=rolling.numeric + rolling.categories),
                        pd.DataFrame.from_records(outputs, columns=rolling.outputs) if outputs else None)
            self.since_check[key] = self.since_check.get(key, 0) + len(group)
            if self.since_check[key] >= self.every:
                self.since_check[key] = 0
                rows += self._check(key, rolling, publish)
        if rows and self.store is not None:
            self._store(rows)
        return rows

    def _forget_older(self, name: str, version: int) -> None:
        for key in [k for k in self.rolling if k[0] == name and k[1] != version]:
            self.rolling.pop(key), self.since_check.pop(key, None), self.drifting.pop(key, None)

    def _check(self, key: tuple[str, int], rolling: RollingProfile, publish) -> list[dict]:
        report, now = rolling.report(), clock.time()
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

    def _store(self, rows: list[dict]) -> None:
        from shopfloor.store_schema import drift_verdicts

        try:
            with self.store.engine.begin() as db:
                db.execute(drift_verdicts.insert(), rows)
        except Exception as err:  # derived data: never stall the line for it
            log.error("could not store %d drift verdicts: %s", len(rows), err)
