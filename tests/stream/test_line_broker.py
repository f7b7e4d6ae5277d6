"""The demo's line on the pure-Python broker, as on a fresh machine without Mosquitto: nothing lost."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from conftest import RUL_COLUMNS, run_histories
from services import running_worker, wait_for

from shopfloor.errors import ShopfloorError
from shopfloor.registry import Registry
from shopfloor.store import Store
from shopfloor.stream.broker import start_broker
from shopfloor.stream.replay import replay


def test_the_demo_line_on_amqtt_stores_every_reading_replayed_as_soon_as_it_is_up(tmp_path):
    """The demo replays as soon as `simulated_line` yields. It used to wait for the service only, while the worker
    spent 5 s on an MQTT 5 connection that amqtt leaves unanswered: what came before its subscription was lost
    (5,666 of 15,096 readings stored in the field test)."""
    from shopfloor.demo.data import demo_file
    from shopfloor.demo.line import simulated_line

    with simulated_line(tmp_path / "line", {}, port=0, broker_kind="amqtt") as line:
        assert line.broker.kind == "amqtt"
        sent = replay(demo_file("test_FD001.txt.gz"), line.broker.url, rate=4_000, limit=1_000, progress=None)
        store = Store(line.registry.root / "shopfloor.db")
        assert wait_for(lambda: store.counts()["readings"] >= sent["readings"], 30)
        assert store.counts()["readings"] == sent["readings"] == 1_000
        store.close()


def test_amqtt_keeps_what_arrives_while_the_worker_is_away(tmp_path, caplog):
    """amqtt keeps nothing for an anonymous client, and its anonymous-login plugin made every client one: the
    embedded broker's own plugin keeps the worker's persistent session and its queue across a reconnection.
    And the worker's own goodbye to its MQTT 5 attempt, which amqtt leaves unanswered, is no 'lost the broker
    (Normal disconnection)': that line in the field test's log sent the search the wrong way."""
    database = f"sqlite:///{tmp_path / 'plant.db'}"
    store = Store(database)
    Registry(tmp_path / "models", create=True)
    history = run_histories(units=3, seed=2, min_life=40, max_life=50).head(120)
    columns = {"unit": RUL_COLUMNS["unit"], "time": RUL_COLUMNS["time"]}
    with start_broker(kind="amqtt") as amqtt:
        with running_worker(amqtt.url, tmp_path / "models", database, client_id="away-worker"):
            first = replay(history.head(40), amqtt.url, rate=2_000, progress=None, **columns)
            assert wait_for(lambda: store.counts()["readings"] >= first["readings"], 20)
        away = replay(history.iloc[40:], amqtt.url, rate=2_000, progress=None, **columns)  # nobody subscribed now
        with running_worker(amqtt.url, tmp_path / "models", database, client_id="away-worker"):
            assert wait_for(lambda: store.counts()["readings"] >= len(history), 20)
    assert first["readings"] + away["readings"] == len(history) == store.counts()["readings"]
    assert not [r for r in caplog.records if "lost the broker" in r.getMessage()]


def test_the_demo_stops_with_an_error_when_readings_are_missing(tmp_path):
    from shopfloor.demo.line import check_nothing_lost

    line = SimpleNamespace(broker=SimpleNamespace(kind="amqtt"), folder=tmp_path)
    check_nothing_lost(15_096, 15_096, line)
    with pytest.raises(ShopfloorError, match="lost 9,430 of 15,096 readings"):
        check_nothing_lost(5_666, 15_096, line)
