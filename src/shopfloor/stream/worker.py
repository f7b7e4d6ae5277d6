"""The stream worker: MQTT telemetry in, failure risk and remaining useful life out, everything stored.

    shopfloor stream --broker mqtt://HOST:1883 --topic 'plant/+/+/telemetry' --models DIR [--database URL]

Message format (details and limits in `stream.payload`): topic `plant/<line>/<machine>/telemetry`,
payload UTF-8 JSON, one reading or a list of readings of that machine (a gateway's batch); a reading is
a flat object `{"time": <cycle or epoch s>, "sent_at": <epoch s, optional>, "<sensor>": <number>, ...}`.

Delivery: MQTT 5, QoS 1, and a persistent session (clean_start False, session expiry) so that the broker
keeps what arrives while a worker or the broker itself restarts (a clean restart: Mosquitto writes its
state at shutdown; after a crash, what arrived since its last autosave is gone). Messages are acknowledged by hand, and
only after their batch is committed to the database: a crash before the commit means redelivery, never
loss, and redelivered readings are stored once (readings are unique per line, machine and time). The
broker sends at most RECEIVE_MAXIMUM unacknowledged messages, which bounds the worker's memory.

Several workers split a plant in one of two ways:
- by lines (the default, and the one to use with RUL models, which need each machine's whole history in
  one worker): each worker subscribes to its own lines, `--topic 'plant/line-1/+/telemetry'` (repeatable);
- with `group`, an MQTT 5 shared subscription `$share/<group>/<topic>`: the broker deals the messages to
  the group's workers, so a machine's messages spread among them (fine for failure risk, which scores each
  reading on its own). Measured on Mosquitto 2.0.11 (Debian 12): a shared subscription does not survive a
  restart of the broker itself, and what is published before the workers subscribe again is lost (420 of
  1,060 readings in one test; 0 with plain subscriptions), so the default is a plain subscription.

Scoring: messages are gathered for `batch_ms` (or `max_batch` readings) and each live model runs once on
the batch (`stream.scoring`). Every prediction (a risk per reading, a RUL per message) is judged, in time
order, by its model's alarm rule (enter at one level, leave at another: `shopfloor models alarm`;
`stream.judging`); alerts go to `plant/<line>/<machine>/alerts` when a machine enters the alarm state
(`stream.machines.Fleet`), the same alerts however the readings were batched.
Malformed messages are counted, logged, stored and published to
the dead-letter topic with their reason, then acknowledged: one bad gateway must not stall the line.
A reading stamped implausibly far ahead goes there alone (`stream.stamps`), so that it cannot freeze its
machine. The worker's own output (dead letters, alerts) is never read as telemetry, also where a subscription
such as '#' matches it: each dead letter would have come back as a new one, without end.
A block of high-rate samples (`stream.payload`) goes to the fault-diagnosis models whose channels it carries
(`stream.blocks`); one at another rate than its model's is a dead letter.
Outcomes (labels that arrive later) on `<prefix>/<line>/<machine>/outcome` go to `stream.outcomes` once the batch
is committed, so that one in the same batch as its reading finds its prediction (five lines here).
Length: about 415 lines, 42 of them this docstring; the MQTT session, the loop and the batch's one transaction read
best together; the drift watch is a call into `watch.line` (four lines).
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import sys
import threading
import time as clock
from pathlib import Path

import numpy as np
import orjson

from shopfloor.stream.broker import BrokerUnreachable, mqtt_client, parse_url, stable_client_id
from shopfloor.stream.judging import judge
from shopfloor.stream.machines import Fleet
from shopfloor.stream.outcomes import is_outcome, record_outcomes
from shopfloor.stream.payload import MAX_PAYLOAD, BadMessage, parse
from shopfloor.stream.scoring import Models
from shopfloor.stream.stamps import Stamps
from shopfloor.stream.stats import Stats
from shopfloor.watch.line import LineWatch, watch_enabled

log = logging.getLogger("shopfloor.stream")
DEAD_LETTER_TOPIC = "shopfloor/dead-letter"
SESSION_EXPIRY = 7 * 24 * 3600  # seconds the broker keeps a worker's queue while it is away
# Flow control: the broker sends at most this many unacknowledged messages, and the worker acknowledges a
# batch only once it is stored, so a worker that falls behind leaves the backlog queued at the broker (on
# its disk with persistence) instead of growing without bound in its own memory.
RECEIVE_MAXIMUM = 1_000


class Refused(Exception):
    """The database refused a batch for what it holds (not because it is unreachable): retrying cannot help."""


class Worker:
    """One MQTT consumer: gathers messages, scores and stores them in batches, then acknowledges them."""

    def __init__(self, broker: str, topic: str | list[str], store, models: Models, group: str | None = None,
                 client_id: str | None = None, rul_alert: float | None = None, batch_ms: float = 20.0,
                 max_batch: int = RECEIVE_MAXIMUM, dead_letter_topic: str = DEAD_LETTER_TOPIC, max_payload: int = MAX_PAYLOAD,
                 progress: float | None = 5.0, stop: threading.Event | None = None, ready: threading.Event | None = None,
                 ready_file: Path | None = None):
        self.host, self.port = parse_url(broker)
        self.topic, self.group = topic, group
        self.client_id = client_id or stable_client_id(topic, group)
        self.store, self.models = store, models
        self.fleet = Fleet()
        self.rul_alert = rul_alert  # the rule of RUL models without one of their own
        self.stamps = Stamps()  # readings stamped implausibly far ahead go to the dead letters (`stream.stamps`)
        self.fleet.restore(self.stamps.restore(store.fleet(), clock.time()))
        self.batch_seconds, self.max_batch = batch_ms / 1000, max_batch
        self.dead_letter_topic, self.max_payload, self.progress = dead_letter_topic, max_payload, progress
        self.stats = Stats()
        self.watch = LineWatch(store) if watch_enabled() else None  # drift per live model (`watch.line`)
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.stopping = stop or threading.Event()
        self.ready = ready  # set once subscribed (tests and the demo wait for it before publishing)
        self.ready_file = Path(ready_file) if ready_file else None  # the same for another process (the demo's line)
        self.connected = threading.Event()
        self.refused = threading.Event()  # the broker answered the CONNECT with a refusal: no use waiting
        self.leaving = False  # the worker itself is disconnecting: not a lost broker
        self.session = 0  # bumps at every (re)connection: acks of messages from an older session are not sent
        self.client = None
        self.mqtt5 = True

    # -- MQTT -------------------------------------------------------------------------------------------
    @property
    def subscriptions(self) -> list[str]:
        topics = [self.topic] if isinstance(self.topic, str) else list(self.topic)
        return [f"$share/{self.group}/{t}" if self.group and self.mqtt5 else t for t in topics]

    def connect(self, timeout: float = 15.0) -> None:
        """MQTT 5; MQTT 3.1.1 (no shared subscription, clean_session False) for brokers without 5, like amqtt.

        A broker that refuses MQTT 5 outright gets 3.1.1 at once; amqtt 0.12 instead misreads the MQTT 5 CONNECT's
        properties and stays silent until the 5 s are out. Whoever publishes must wait for the subscription (the
        `ready` event or file): a broker keeps nothing for a session it has not heard of yet, and the demo, which
        waited for the service only, lost the readings replayed during those seconds.
        """
        import paho.mqtt.client as mqtt

        for protocol in (mqtt.MQTTv5, mqtt.MQTTv311):
            if self._try_connect(protocol, timeout if protocol == mqtt.MQTTv311 else min(timeout, 5.0)):
                if protocol == mqtt.MQTTv311:
                    log.warning("the broker speaks MQTT 3.1.1 only: no shared subscription, so run one worker")
                return
        raise BrokerUnreachable(f"the MQTT broker at {self.host}:{self.port} did not accept the connection")

    def _try_connect(self, protocol: int, timeout: float) -> bool:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.refused.clear()
        self.leaving = False
        client = self.client = mqtt_client(self.client_id, protocol=protocol, manual_ack=True)
        client.on_connect, client.on_message, client.on_disconnect = self._on_connect, self._on_message, self._on_disconnect
        client.on_subscribe = self._on_subscribe
        self.mqtt5 = protocol == 5
        try:
            if self.mqtt5:
                properties = Properties(PacketTypes.CONNECT)
                properties.SessionExpiryInterval = SESSION_EXPIRY
                properties.ReceiveMaximum = RECEIVE_MAXIMUM
                client.connect(self.host, self.port, keepalive=30, clean_start=False, properties=properties)
            else:
                client.connect(self.host, self.port, keepalive=30)
        except OSError as err:
            raise BrokerUnreachable(f"cannot reach the MQTT broker at {self.host}:{self.port} ({err})") from None
        client.loop_start()
        deadline = clock.monotonic() + timeout
        while not self.connected.wait(0.05):
            if self.refused.is_set() or clock.monotonic() >= deadline:
                self.leaving = True
                client.loop_stop()
                client.disconnect()
                self.client = None
                return False
        return True

    def _on_connect(self, client, _userdata, _flags, reason, _properties) -> None:
        if reason.is_failure:
            self.refused.set()
            if self.mqtt5 and str(reason) == "Unsupported protocol version":
                log.info("the broker does not speak MQTT 5; trying MQTT 3.1.1")
            else:
                log.error("the broker refused the connection: %s", reason)
            return
        self.session += 1
        client.subscribe([(topic, 1) for topic in self.subscriptions])
        log.info("connected to %s:%d, subscribing to %s", self.host, self.port, ", ".join(self.subscriptions))

    def _on_subscribe(self, _client, _userdata, _mid, reasons, _properties) -> None:
        failed = [r for r in reasons if r.is_failure]
        if failed:
            log.error("the broker refused the subscription: %s", ", ".join(map(str, failed)))
            return
        self.connected.set()  # subscribed: from here on the broker keeps what arrives for this worker

    def _on_disconnect(self, _client, _userdata, _flags, reason, _properties) -> None:
        self.connected.clear()
        if not self.stopping.is_set() and not self.leaving:
            log.warning("lost the broker (%s); reconnecting, unacknowledged messages will come again", reason)

    def _on_message(self, _client, _userdata, message) -> None:
        self.inbox.put((self.session, message))

    def is_own_output(self, topic: str) -> bool:
        """The dead-letter topic, or an alert (`<prefix>/<line>/<machine>/alerts`): what this worker publishes."""
        return topic == self.dead_letter_topic or topic.rsplit("/", 1)[-1] == "alerts"

    # -- the loop ---------------------------------------------------------------------------------------
    def run(self) -> Stats:
        if self.ready_file is not None:
            self.ready_file.unlink(missing_ok=True)
        self.connect()
        if self.ready is not None:
            self.ready.set()
        if self.ready_file is not None:  # read by another process (the demo's line): whole or not there
            from shopfloor.artifacts import atomic_write

            atomic_write(self.ready_file, f"subscribed to {', '.join(self.subscriptions)}\n")
        last_progress = clock.monotonic()
        try:
            while not self.stopping.is_set():
                batch = self._gather()
                if batch:
                    self.process(batch)
                self.models.refresh()
                if self.progress and clock.monotonic() - last_progress >= self.progress:
                    last_progress = clock.monotonic()
                    self._print_progress()
        finally:
            self.close()
        return self.stats

    def _gather(self) -> list:
        try:
            first = self.inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        if first is None:  # `stop`'s wake-up
            return []
        batch, deadline = [first], clock.monotonic() + self.batch_seconds
        while len(batch) < self.max_batch:
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                break
            try:
                item = self.inbox.get(timeout=remaining)
            except queue.Empty:
                break
            if item is None:  # `stop`'s wake-up
                break
            batch.append(item)
        return batch

    def process(self, batch: list) -> None:
        """Parse, score, store (one transaction), publish alerts and dead letters, then acknowledge."""
        readings, dead, outcomes = [], [], []
        numeric = self.models.numeric
        now = clock.time()
        for _session, message in batch:
            if self.is_own_output(message.topic):
                continue  # acknowledged with the batch, neither a reading nor a dead letter
            if is_outcome(message.topic):  # a label that arrived later: taken once the batch is committed
                outcomes.append(message)
                continue
            try:
                parsed = parse(message.topic, message.payload, numeric, self.max_payload)
            except BadMessage as err:
                self.stats.reasons[err.kind] += 1
                dead.append({"topic": message.topic, "reason": str(err), "payload": bytes(message.payload[:self.max_payload])})
                continue
            for position, reading in enumerate(parsed):
                ahead = self.stamps.check(reading["line"], reading["machine"], reading["time"], now)
                reason = ahead or self.models.refusal(reading)  # a block at another rate than its model's (`stream.blocks`)
                if reason is None:
                    readings.append(reading)
                    continue
                self.stats.reasons["time ahead" if ahead else "rate"] += 1
                body = {"time": reading["time"], **reading["values"]}  # the reading alone, as its gateway sent it
                dead.append({"topic": message.topic, "reason": reason, "payload": orjson.dumps(body), "position": position})
        received = clock.time()
        for reading in readings:
            reading["received_at"] = received
        predictions, alerts = self._score(readings)
        if self.watch is not None:
            self.watch.observe(self.models, readings, predictions, self.client.publish if self.client else None)
        touched = {}
        for reading in readings:
            state = touched.get((reading["line"], reading["machine"]))
            if state is None:
                state = touched[(reading["line"], reading["machine"])] = self.fleet.state(reading["line"], reading["machine"])
            if state.time is None or reading["time"] > state.time:
                state.time = reading["time"]
        machines = [state.row() for state in touched.values()]
        try:
            stored_at = self._store(readings, predictions, alerts, machines, dead, self.models.tails())
        except Refused as err:  # nothing of the batch was stored: every message of it goes to the dead letters
            self.fleet.forget(touched)  # nor were the alarm states it moved: back to the stored ones
            self.fleet.restore([row for key in touched if (row := self.store.machine(*key))])
            log.error("the database refused a batch of %d messages (%s); they go to the dead letters", len(batch), err)
            readings, predictions, alerts, outcomes = [], [], [], []  # the outcomes are in the dead letters too
            dead = [{"topic": m.topic, "reason": f"could not be stored: {err}", "payload": bytes(m.payload[:self.max_payload])}
                    for _, m in batch]
            self.stats.reasons["refused by the database"] += len(dead)
            stored_at = self._store([], [], [], [], dead)
        if stored_at is None:
            return  # stopping while the database is down: nothing acknowledged, the broker delivers again
        dead += record_outcomes(self.store, self.models, outcomes) if outcomes else []
        prefixes = {(r["line"], r["machine"]): r["prefix"] for r in readings}
        for alert in alerts:
            prefix = prefixes.get((alert["line"], alert["machine"]), "plant")
            topic = "/".join(part for part in (prefix, alert["line"], alert["machine"], "alerts") if part)
            self.client.publish(topic, json.dumps(alert), qos=1)
        for letter in dead:
            log.warning("dead letter from %s: %s", letter["topic"], letter["reason"])
            body = {"topic": letter["topic"], "reason": letter["reason"],
                    "payload": letter["payload"][:4096].decode("utf-8", errors="replace")}
            self.client.publish(self.dead_letter_topic, json.dumps(body), qos=1)
        session = self.session
        for message_session, message in batch:
            if message_session == session:
                self.client.ack(message.mid, message.qos)
        self._count(batch, readings, predictions, alerts, dead, stored_at)

    def _score(self, readings: list[dict]) -> tuple[list[dict], list[dict]]:
        """Predictions and the alerts they raise (`stream.judging`); a model that failed is counted."""
        predictions, alerts, failed = judge(self.models, self.fleet, readings, self.rul_alert, self._histories,
                                            self.store.block_tails)
        self.stats.scoring_errors += failed
        return predictions, alerts

    def _histories(self, machines, first: int, last: int) -> dict:
        """The store's histories without readings stamped beyond the clock (`stream.stamps`)."""
        return self.store.histories(machines, first, last, until=clock.time() + self.stamps.ahead_of_clock)

    def _store(self, readings, predictions, alerts, machines, dead, tails=()) -> float | None:
        """Commit the batch. While the database is unreachable, retry (the messages stay unacknowledged); a batch
        the database refuses for what it holds raises `Refused`, so that its messages become dead letters
        instead of stalling the line."""
        import sqlalchemy as sa

        while True:
            try:
                return self.store.write_batch(readings, predictions, alerts, machines, dead, tails)
            except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError) as err:
                self.stats.store_retries += 1
                log.error("could not store a batch of %d readings (%s); retrying in 1 s", len(readings), err)
                if self.stopping.wait(1.0):
                    return None
            except sa.exc.SQLAlchemyError as err:
                raise Refused(" ".join(str(err.orig if getattr(err, "orig", None) else err).split())[:300]) from None

    def _count(self, batch, readings, predictions, alerts, dead, stored_at: float) -> None:
        stats = self.stats
        stats.batches += 1
        stats.messages += len(batch)
        stats.readings += len(readings)
        stats.predictions += len(predictions)
        stats.alerts += len(alerts)
        stats.dead_letters += len(dead)
        sent = [r["sent_at"] for r in readings if r["sent_at"] is not None]
        if sent:
            stats.add_latencies(stored_at - np.asarray(sent))

    def _print_progress(self) -> None:
        s = self.stats
        seconds = max(clock.time() - s.started, 1e-9)
        p99 = s.latency_percentiles().get("p99_ms")
        print(f"stream: {s.readings:,} readings ({s.readings / seconds:,.0f}/s), {s.predictions:,} predictions, "
              f"{s.alerts:,} alerts, {s.dead_letters:,} dead letters, {len(self.fleet):,} machines"
              + (f", p99 latency {p99:.0f} ms" if p99 is not None else ""), file=sys.stderr, flush=True)

    def stop(self, *_args) -> None:
        """Stop after the batch at hand; the inbox gets a wake-up, as CPython 3.11's `SimpleQueue.get(timeout)` waits
        for good when a signal lands near its deadline (a benchmark's worker sat there after SIGTERM until killed)."""
        self.stopping.set()
        self.inbox.put(None)

    def close(self) -> None:
        if self.ready_file is not None:
            self.ready_file.unlink(missing_ok=True)
        if self.client is not None:
            self.leaving = True
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None


def run_worker(broker: str, topic: str | list[str], models: Path | None, database: str | None = None,
               group: str | None = None, client_id: str | None = None, model_names: list[str] | None = None,
               rul_alert: float | None = None,
               batch_ms: float = 20.0, dead_letter_topic: str = DEAD_LETTER_TOPIC, max_payload: int = MAX_PAYLOAD,
               progress: float | None = 5.0, stats_file: Path | None = None, stop: threading.Event | None = None,
               ready: threading.Event | None = None, ready_file: Path | None = None) -> dict:
    """Run a worker until SIGINT/SIGTERM (or `stop` is set); returns (and writes to `stats_file`) its counts and latency.

    `models`: the registry folder (every live failure or RUL model applies, or only `model_names`);
    `database`: a SQLAlchemy URL, by default `sqlite:///<models>/shopfloor.db`; `rul_alert`: for RUL models
    without an alarm rule of their own, alert when the low end of a machine's RUL interval is at or below this
    many cycles (no alerts from such models when None); `ready_file`:
    written once the worker is subscribed and removed when it stops, for a process that must not publish before.
    """
    from shopfloor.registry import Registry
    from shopfloor.store import Store, default_url

    registry = Registry(models) if models is not None else None
    if database is None and models is None:
        from shopfloor.errors import BadOption

        raise BadOption("give --models DIR (the database defaults to DIR/shopfloor.db) or --database URL")
    store = Store(database or default_url(models))
    worker = Worker(broker, topic, store, Models(registry, model_names), group=group, client_id=client_id,
                    rul_alert=rul_alert, batch_ms=batch_ms, dead_letter_topic=dead_letter_topic, max_payload=max_payload,
                    progress=progress, stop=stop, ready=ready, ready_file=ready_file)
    previous = {s: signal.signal(s, worker.stop) for s in (signal.SIGINT, signal.SIGTERM)} \
        if threading.current_thread() is threading.main_thread() else {}
    try:
        worker.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        store.close()
    summary = worker.stats.summary()
    if stats_file is not None:
        from shopfloor.artifacts import atomic_write

        atomic_write(stats_file, json.dumps(summary, indent=2) + "\n")
    if progress:
        worker._print_progress()
    return summary
