"""Dead letters: the worker never reads its own output back, and a redelivered message's dead letter is stored once."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa
from services import Listener, OfflineMessage, mosquitto, offline_worker, wait_for

from shopfloor.registry import Registry
from shopfloor.store import Store

BAD = b"{not json"


def _worker(tmp_path):
    root = tmp_path / "models"
    Registry(root, create=True)
    store = Store(f"sqlite:///{tmp_path / 'plant.db'}")
    return offline_worker(root, store), store


def test_the_worker_skips_its_own_dead_letters_and_alerts(tmp_path):
    worker, store = _worker(tmp_path)
    own = [OfflineMessage("shopfloor/dead-letter", b'{"topic": "x", "reason": "payload is not JSON", "payload": ""}', 1),
           OfflineMessage("plant/line-1/press-1/alerts", b'{"kind": "risk"}', 2)]
    worker.process([(worker.session, m) for m in own])
    assert store.counts()["dead_letters"] == 0 and worker.client.published == []
    assert worker.client.acked == [1, 2]  # acknowledged all the same: the broker must not deliver them again


def test_a_redelivered_message_gives_one_dead_letter(tmp_path):
    """A worker killed after the commit but before the acknowledgement gets the batch again from the broker."""
    worker, store = _worker(tmp_path)
    for mid in (1, 2):  # the delivery, then the redelivery (a new packet id)
        worker.process([(worker.session, OfflineMessage("plant/line-1/press-1/telemetry", BAD, mid))])
    other = OfflineMessage("plant/line-1/press-2/telemetry", BAD, 3)  # the same bytes from another machine
    worker.process([(worker.session, other)])
    letters = store.dead_letters()
    assert sorted(d["topic"] for d in letters) == ["plant/line-1/press-1/telemetry", "plant/line-1/press-2/telemetry"]


def test_a_database_from_before_dead_letter_keys_is_upgraded(tmp_path):
    path = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as db:
        db.exec_driver_sql("CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, reason TEXT NOT NULL, "
                           "payload BLOB NOT NULL, at FLOAT NOT NULL)")
        db.exec_driver_sql("INSERT INTO dead_letters (topic, reason, payload, at) VALUES ('t', 'old', x'00', 1.0)")
    engine.dispose()
    store = Store(path)
    for _ in range(2):
        store.write_dead_letter("plant/l/m/telemetry", BAD, "payload is not JSON")
    assert [d["reason"] for d in store.dead_letters()] == ["payload is not JSON", "old"]
    store.close()


def test_a_worker_subscribed_to_everything_does_not_feed_on_its_dead_letters(tmp_path):
    """`shopfloor stream --topic '#'`: 342, 687, 1,046, 1,393 dead letters 5 s apart in the field test, from one."""
    from test_stream import publish_raw

    from shopfloor.stream.worker import run_worker

    root = tmp_path / "models"
    Registry(root, create=True)
    database = f"sqlite:///{tmp_path / 'plant.db'}"
    store = Store(database)
    stop, ready = threading.Event(), threading.Event()
    with mosquitto() as broker:
        listener = Listener(broker.url, "shopfloor/dead-letter")
        thread = threading.Thread(target=run_worker, args=(broker.url, "#", root, database),
                                  kwargs={"progress": None, "stop": stop, "ready": ready}, daemon=True)
        thread.start()
        try:
            assert ready.wait(30)
            time.sleep(0.2)  # the SUBACK
            publish_raw(broker.url, [("plant/line-1/press-1/telemetry", BAD)])
            assert wait_for(lambda: len(listener.messages) >= 1, 10)
            time.sleep(1.5)  # a loop would have gone round dozens of times by now
        finally:
            stop.set()
            thread.join(30)
            listener.close()
    assert store.counts()["dead_letters"] == 1 and len(listener.messages) == 1
