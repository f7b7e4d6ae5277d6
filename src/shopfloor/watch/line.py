"""The drift watch on the line: a rolling profile per live model, verdicts stored, an alert when an input drifts.

The stream worker calls `LineWatch.observe` once per batch with the batch's readings and predictions. Each live
model with a drift profile gets a `rolling.RollingProfile` (fixed memory). About `PER_BATCH` readings of a batch
enter it, evenly spaced (at 20,000 readings a second a ring of 500 then spans a quarter of a second rather than a
fortieth; watching every reading cost 18 us a reading, a third of the worker's budget); once `CHECK_EVERY`
readings have come and `CHECK_SECONDS` have passed since the last comparison (one costs about 40 ms), the ring is
compared with the profile and one row per input and output goes to the store's `drift_verdicts` table.
A fault-diagnosis model reads blocks of samples, not readings: its profile is of windows (each channel's RMS,
kurtosis and crest factor), so about `PER_BATCH` of the windows the batch's blocks completed, already cut for
scoring, enter its ring with their confidence and novelty (`watch.signals`).
An input that enters 'drift' raises one alert: a row in the store's `alerts` table (kind 'drift', the model and
the input in its message; the dashboard's alerts page lists it and can acknowledge it) and a message on
`DRIFT_TOPIC` (it ends in 'alerts', so the worker never reads it back as telemetry); it alerts again only after
it was back to ok or watch. A RUL model's profile has life-stage bands: each reading fed carries its age, the
readings of its machine (line and machine) this watch has seen, every reading counted before the sampling (a
restarted worker counts afresh, so its first windows read older machines as young). Verdicts and drift alerts
are derived data: a database that refuses them is logged, and the line goes on. `SHOPFLOOR_DRIFT_WATCH=off` turns the watch off.
"""

from __future__ import annotations

import json
import logging
import os
import time as clock

import numpy as np

from shopfloor.watch.compare import DRIFT_JS, DRIFT_PSI, compare_view
from shopfloor.watch.rolling import DEFAULT_WINDOW, RollingProfile
from shopfloor.watch.signals import block_view, reads_blocks

log = logging.getLogger("shopfloor.stream")
CHECK_EVERY = 500  # readings of a model between two comparisons ...
CHECK_SECONDS = 5.0  # ... and seconds
PER_BATCH = 100
DRIFT_TOPIC = "shopfloor/drift/alerts"
ALERT_LINE = "models"  # a drift alert is about a model, not one machine: its row's line, and the model as machine


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
        self.cycles: dict[str, dict[tuple, int]] = {}  # per model: readings seen of each machine (its age)

    def observe(self, models, readings: list[dict], predictions: list[dict], publish=None) -> list[dict]:
        """Feed a batch to each live model's rolling profile; returns the verdict rows written (if any checks ran),
        stores an alert and publishes one (`publish(topic, payload, qos=1)`) per input that entered drift."""
        rows, alerts = [], []
        by_model: dict[str, list[dict]] = {}
        for prediction in predictions:
            by_model.setdefault(prediction.get("model"), []).append(prediction)
        for scorer in list(models.scorers.values()):
            if getattr(scorer.estimator, "drift_profile_", None) is None:
                continue  # saved before drift profiles
            if reads_blocks(scorer):
                view = block_view(scorer, self.per_batch)
                check = None if view is None else self.feed_view(scorer.name, scorer.version, scorer.estimator, *view)
            else:
                stride = max(1, -(-len(readings) // self.per_batch))  # sampled before the (costlier) column check
                group = [r["values"] for r in readings[::stride] if scorer.columns.issubset(r["values"])]
                answers = by_model.get(scorer.name, [])[::stride]  # sampled as the readings: Python work per row
                ages = self.ages(scorer, readings, stride) if "stages" in scorer.estimator.drift_profile_ else None
                check = self.feed(scorer.name, scorer.version, scorer.estimator, group, answers, ages)
            if check is not None:
                verdicts, raised = check(publish)
                rows, alerts = rows + verdicts, alerts + raised
        if (rows or alerts) and self.store is not None:
            self.store_verdicts(rows, alerts)
        return rows

    def ages(self, scorer, readings: list[dict], stride: int) -> list[float]:
        """Each sampled reading's age (as `observe` samples them): its machine's readings seen so far, all counted."""
        seen = self.cycles.setdefault(scorer.name, {})
        ages = []
        for index, reading in enumerate(readings):
            if scorer.columns.issubset(reading["values"]):
                key = (reading.get("line"), reading.get("machine"))
                seen[key] = seen.get(key, 0) + 1
                if index % stride == 0:
                    ages.append(float(seen[key]))
        return ages

    def feed(self, name: str, version: int, estimator, rows: list[dict], answers: list[dict], ages=None):
        """Put one model's rows (dicts holding its input columns, already sampled) and its answers into its rolling
        profile. Returns None, or when a comparison is due, `check(publish) -> (verdict rows, alert rows)` over a
        copy of the rings taken now, so that the caller may run it on another thread while rows keep coming (the
        service does). `ages`: each row's, where the profile has life-stage bands."""
        profile = getattr(estimator, "drift_profile_", None)
        if profile is None or not rows:
            return None  # saved before drift profiles, or nothing of this model's
        rolling = self._rolling(name, version, profile)
        kept = [i for i, r in enumerate(rows) if rolling.columns.issubset(r)]  # a diagnose model's is of windows
        if not kept:
            return None
        rows, ages = [rows[i] for i in kept], None if ages is None else [ages[i] for i in kept]
        outputs = [[a.get(o) for o in rolling.outputs] for a in answers]
        rolling.add_records(rows, np.array(outputs, dtype=np.float64).reshape(len(outputs), -1) if outputs else None,
                            ages)
        return self._due((name, version), len(rows), profile, rolling)

    def feed_view(self, name: str, version: int, estimator, inputs, outputs):
        """As `feed`, for inputs and outputs already in the profile's terms (DataFrames, one row per window); the
        profile's outputs that `outputs` lacks are not fed, and their verdicts are left out (they would read as
        missing)."""
        profile = getattr(estimator, "drift_profile_", None)
        if profile is None or not len(inputs):
            return None
        rolling = self._rolling(name, version, profile)
        rolling.add(inputs, outputs)
        return self._due((name, version), len(inputs), profile, rolling, fed=frozenset(outputs.columns), unit="windows")

    def _rolling(self, name: str, version: int, profile: dict) -> RollingProfile:
        rolling = self.rolling.get((name, version))
        if rolling is None:
            rolling = self.rolling[(name, version)] = RollingProfile(profile, self.window)
            self._forget_older(name, version)
        return rolling

    def _due(self, key: tuple[str, int], added: int, profile: dict, rolling: RollingProfile, fed=None,
             unit: str = "readings"):
        self.since_check[key] = self.since_check.get(key, 0) + added
        now = clock.monotonic()
        if self.since_check[key] < self.every or now - self.last_check.get(key, -float("inf")) < self.seconds:
            return None
        self.since_check[key], self.last_check[key] = 0, now
        view = rolling.view()
        return lambda publish=None: self._check(key, compare_view(profile, view), publish, fed, unit)

    def _forget_older(self, name: str, version: int) -> None:
        for key in [k for k in self.rolling if k[0] == name and k[1] != version]:
            self.rolling.pop(key), self.since_check.pop(key, None), self.drifting.pop(key, None)
            self.last_check.pop(key, None)

    def _check(self, key: tuple[str, int], report: dict, publish, fed=None,
               unit: str = "readings") -> tuple[list[dict], list[dict]]:
        now = clock.time()
        outputs = [r for r in report["outputs"] if fed is None or r["input"] in fed]
        rows = [{"model": key[0], "version": key[1], "input": r["input"], "kind": kind, "verdict": r["verdict"],
                 "psi": r.get("psi"), "wasserstein_sd": r.get("wasserstein_sd"), "js": r.get("js"),
                 "p_value": r.get("p_value"), "readings": r["readings"],
                 "findings": "; ".join(f"{f['finding']}: {f['detail']}" for f in r["findings"]) or None, "at": now}
                for kind, results in (("input", report["inputs"]), ("output", outputs)) for r in results]
        now_drifting = set(report["drifting"])
        results = {r["input"]: r for r in report["inputs"]}
        alerts = [drift_alert(key[0], key[1], results[name], now, unit)
                  for name in sorted(now_drifting - self.drifting.get(key, set()))]
        for alert in alerts:
            log.warning(alert["message"])
            if publish is not None:
                publish(DRIFT_TOPIC, json.dumps({"model": key[0], "version": key[1], "input": alert["input"],
                                                 "message": alert["message"], "at": now}), qos=1)
        self.drifting[key] = now_drifting
        return rows, alerts

    def store_verdicts(self, rows: list[dict], alerts_: list[dict] = ()) -> None:
        """The verdict rows and drift alerts in one transaction (alerts: `drift_alert`'s rows)."""
        from shopfloor.store_schema import ALERT_KEYS, alerts, drift_verdicts

        try:
            with self.store.engine.begin() as db:
                if rows:
                    db.execute(drift_verdicts.insert(), rows)
                if alerts_:
                    db.execute(alerts.insert(), [{k: a.get(k) for k in ALERT_KEYS} for a in alerts_])
        except Exception as err:  # derived data: never stall the line for it
            log.error("could not store %d drift verdicts and %d drift alerts: %s", len(rows), len(alerts_), err)


def drift_alert(model: str, version: int, result: dict, now: float, unit: str = "readings") -> dict:
    """The alert row of an input that entered drift (the store's `ALERT_KEYS`, and `input`): kind 'drift', line
    `ALERT_LINE` and the model as machine; value and threshold are the PSI (JS for a category) and the size it
    must reach for drift (a drift verdict may also come from the Wasserstein distance or a finding: the message
    says which); `unit`: what the ring holds, readings or a diagnose model's windows."""
    category = result.get("kind") == "category"
    value = result.get("js") if category else result.get("psi")
    sizes = [f"PSI {result['psi']:.2f}" if result.get("psi") is not None else "",
             f"{result['wasserstein_sd']:.2f} sd" if result.get("wasserstein_sd") is not None else "",
             f"JS {result['js']:.2f}" if result.get("js") is not None else ""]
    found = [f"{f['finding']}: {f['detail']}" for f in result.get("findings", []) if f["severity"] == "drift"]
    said = "; ".join([", ".join(s for s in sizes if s)] * any(sizes) + found)
    message = (f"{model} v{version}: input '{result['input']}' drifts from its training profile"
               + (f" ({said}; over the last {result['readings']} {unit})" if said else ""))
    return {"line": ALERT_LINE, "machine": model, "time": now, "kind": "drift", "model": model, "version": version,
            "value": float(value) if value is not None else 0.0, "threshold": DRIFT_JS if category else DRIFT_PSI,
            "message": message, "at": now, "rule": "drift verdict", "clear": "watch or ok", "input": result["input"]}
