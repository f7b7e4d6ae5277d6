"""The drift watch in the REST service: the rows /predict scores, and its answers, feed the same rolling profile per
live model version as the stream worker's (`watch.line.LineWatch`), and verdicts go to the store's `drift_verdicts`.

A request only samples its rows into fixed rings on the event loop (at most `PER_REQUEST` rows of it, evenly
spaced: a few microseconds for a one-row request); the comparison (tens of milliseconds) runs in the inference
thread pool on a copy of the rings, at most once per `CHECK_SECONDS` and `CHECK_EVERY` rows per model, and
never delays the answer. The answers' fields are named for people ('failure probability') and the profile's
outputs for the watch ('risk'): which field is which output is found once per loaded model, in the pool, by
matching the model's own `drift_view` outputs on a request's first rows against its answers (no switch on the
task); until then, and for an output no field matches, only inputs are watched. Only the live version is
watched (a request for an older `?version=` is someone's comparison, not the line). An input that enters drift
raises one alert, as on the line (`LineWatch`: again only after it was back to ok or watch): a row in the store's
`alerts` table, kind 'drift', the model and input in its message, which the dashboard's alerts page lists and can
acknowledge, beside the verdicts on the model-health page. The service is started without a broker (`serve.app`
takes none), so it publishes nothing: the stream worker's alerts are the ones on MQTT. A store that refuses
verdicts or alerts is logged, and predictions go on.
"""

from __future__ import annotations

import logging
import math
import weakref

import pandas as pd

from shopfloor.watch.line import CHECK_EVERY, CHECK_SECONDS, LineWatch

log = logging.getLogger("shopfloor.serve")
PER_REQUEST = 100
MATCH_ROWS = 8  # rows whose outputs and answers are matched to name the answer field of each output


class ServiceWatch:
    def __init__(self, store, executor, every: int = CHECK_EVERY, seconds: float = CHECK_SECONDS,
                 per_request: int = PER_REQUEST):
        self.line = LineWatch(store, every=every, seconds=seconds)
        self.store, self.executor, self.per_request = store, executor, per_request
        self.pending = None  # the comparison last handed to the pool (a Future), for tests and shutdown
        self.fields: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # estimator -> {output: answer field}

    def observe(self, name: str, version: int, estimator, live: bool, rows: list[dict], answers: list[dict]) -> None:
        """Called by /predict after scoring `rows` (one answer each); cheap, and never raises into the request."""
        if not live or getattr(estimator, "drift_profile_", None) is None:
            return
        try:
            stride = max(1, -(-len(rows) // self.per_request))
            sampled = rows[::stride]  # `feed` keeps the rows that carry the profile's inputs
            fields = self.fields.get(estimator)
            if fields is None:
                self.fields[estimator] = {}  # until matched: inputs only
                self.executor.submit(self._match, estimator, rows[:MATCH_ROWS], answers[:MATCH_ROWS])
            named = [{o: a.get(f) for o, f in fields.items()} for a in answers[::stride]] \
                if fields and len(answers) == len(rows) else []
            check = self.line.feed(name, version, estimator, sampled, named)
        except Exception as err:  # noqa: BLE001 - the watch must never fail a prediction
            log.error("drift watch of %s v%s skipped a request: %s", name, version, err)
            return
        if check is not None:
            self.pending = self.executor.submit(self._compare, check, name, version, estimator)

    def _match(self, estimator, rows: list[dict], answers: list[dict]) -> None:
        try:
            outputs = estimator.drift_view(pd.DataFrame.from_records(rows)).outputs
        except Exception as err:  # noqa: BLE001 - then only the inputs are watched
            log.info("drift watch: the answers cannot be matched to the model's outputs (%s); inputs only", err)
            return
        self.fields[estimator] = answer_fields(outputs, answers)

    def _compare(self, check, name: str, version: int, estimator) -> list[dict]:
        try:
            fed = self.fields.get(estimator) or {}
            rows, alerts = check(None)
            rows = [r for r in rows if r["kind"] != "output" or r["input"] in fed]  # unfed outputs say nothing
        except Exception as err:  # noqa: BLE001
            log.error("drift comparison of %s v%s failed: %s", name, version, err)
            return []
        if (rows or alerts) and self.store is not None:
            self.line.store_verdicts(rows, alerts)
        return rows


def answer_fields(outputs: pd.DataFrame, answers: list[dict]) -> dict[str, str]:
    """{profile output: answer field} for each output whose values equal one numeric field's on the same rows."""
    fields = {}
    for output in outputs.columns:
        values = outputs[output].to_numpy()
        for field in answers[0] if answers and len(answers) == len(values) else ():
            if all(isinstance(a.get(field), int | float) and not isinstance(a.get(field), bool)
                   and math.isclose(float(a[field]), float(v), rel_tol=1e-5, abs_tol=1e-9)
                   for a, v in zip(answers, values, strict=True)):
                fields[output] = field
                break
    return fields
