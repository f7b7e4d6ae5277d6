"""Outcomes over MQTT (`stream.outcomes`): labels on plant/<line>/<machine>/outcome are joined to the predictions the
worker stored, also in the batch of their readings; those that cannot be taken are dead letters with the reason."""

from __future__ import annotations

import time

import orjson
import sqlalchemy as sa
from conftest import failure_table
from services import OfflineMessage, offline_worker

from shopfloor.registry import Registry
from shopfloor.store import Store
from shopfloor.store_schema import outcomes, predictions
from shopfloor.stream.payload import encode_message, encode_reading


def test_outcomes_in_the_batch_of_their_readings_are_joined_and_bad_ones_are_dead_letters(binary_model, tmp_path):
    root = tmp_path / "models"
    Registry(root, create=True).add("failure", binary_model.folder)
    store = Store(f"sqlite:///{tmp_path / 'plant.db'}")
    worker = offline_worker(root, store)
    rows = failure_table(6, seed=3).drop(columns=["failure", "UDI", "Product ID"]).to_dict(orient="records")
    now = time.time()
    readings = [OfflineMessage("plant/line-1/mill-1/telemetry", encode_message([encode_reading(float(t), row)], now), t)
                for t, row in enumerate(rows)]
    labels = [{"model": "failure", "time": float(t), "outcome": t % 2} for t in range(6)] + [
        {"model": "failure", "time": 9.0, "outcome": 1},  # no reading at 9 (yet): stored unmatched
        {"model": "failure", "time": 2.0, "outcome": "scrap"}, {"model": "kiln", "time": 1.0, "outcome": 1},
        {"model": "failure", "outcome": 1}]
    outcome = OfflineMessage("plant/line-1/mill-1/outcome", orjson.dumps(labels), 100)
    worker.process([(worker.session, m) for m in [*readings, outcome, OfflineMessage("plant/line-1/mill-1/outcome",
                                                                                     b"{not json", 101)]])
    assert sorted(worker.client.acked) == [*range(6), 100, 101]
    with store.engine.connect() as db:
        joined = db.execute(sa.select(outcomes.c.time, outcomes.c.outcome, predictions.c.time.label("predicted"))
                            .select_from(outcomes.outerjoin(predictions, outcomes.c.prediction_id == predictions.c.id))
                            .order_by(outcomes.c.time)).all()
    assert [tuple(r) for r in joined] == [(float(t), str(t % 2), float(t)) for t in range(6)] + [(9.0, "1", None)]
    reasons = sorted(d["reason"] for d in store.dead_letters())
    assert reasons == ["an outcome's time must be a finite number (the time of the reading it belongs to)",
                       "no live model 'kiln' on this stream",
                       "outcome 'scrap' is not a class of model 'failure' (0, 1)",
                       "payload is not JSON"]
    assert sorted(orjson.loads(p)["reason"] for t, p in worker.client.published if t == "shopfloor/dead-letter") == reasons
    store.close()
