"""Real services for the tests: Mosquitto on a free port, and a throw-away PostgreSQL cluster.

Each starts only what is installed and skips with a reason otherwise:
- Mosquitto: through `shopfloor.stream.broker.start_broker(kind="mosquitto")`, the same config the demo uses
  (Debian: `apt-get install mosquitto`);
- PostgreSQL: the cluster named by SHOPFLOOR_TEST_POSTGRES (a URL to a role that may create databases;
  `.ci/run` starts one and exports it), else a cluster of our own made with `initdb` + `pg_ctl` in a
  temporary folder, on a free port, run as a non-root user (PostgreSQL refuses root). Every test gets a
  fresh database in it, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES_ENV = "SHOPFLOOR_TEST_POSTGRES"
PG_BINARIES = ("/usr/local/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/bin")


@contextlib.contextmanager
def mosquitto() -> Iterator:
    """A Mosquitto broker on 127.0.0.1 with persistence on; skips the test when Mosquitto is not installed."""
    from shopfloor.stream.broker import mosquitto_path, start_broker

    if mosquitto_path() is None:
        pytest.skip("Mosquitto is not installed (apt-get install mosquitto); the stream tests need a real broker")
    broker = start_broker(kind="mosquitto")
    try:
        yield broker
    finally:
        broker.close()


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in PG_BINARIES:
        if os.access(Path(folder) / name, os.X_OK):
            return str(Path(folder) / name)
    return None


def _as_user() -> list[str]:
    """The command prefix that runs PostgreSQL's tools as a non-root user."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        if shutil.which("runuser"):
            return ["runuser", "-u", user, "--"]
    pytest.skip("PostgreSQL cannot run as root and there is no 'postgres' user to run it as")


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """A server URL (to its 'postgres' database): from SHOPFLOOR_TEST_POSTGRES, or a cluster started here."""
    if os.environ.get(POSTGRES_ENV):
        yield os.environ[POSTGRES_ENV]
        return
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip(f"PostgreSQL is not installed (no initdb/pg_ctl) and {POSTGRES_ENV} is not set")
    from shopfloor.stream.broker import free_port

    prefix = _as_user()
    folder = Path(tempfile.mkdtemp(prefix="shopfloor-pg-"))
    data = folder / "data"
    if prefix:
        user = pwd.getpwnam(prefix[2])
        os.chown(folder, user.pw_uid, user.pw_gid)
        owner = prefix[2]
    else:
        owner = pwd.getpwuid(os.geteuid()).pw_name
    port = free_port()
    log = folder / "server.log"
    try:
        subprocess.run([*prefix, initdb, "-D", str(data), "-U", owner, "--auth=trust", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"],
                       check=True, capture_output=True, timeout=90)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        detail = getattr(err, "stderr", b"") or b""
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"could not start a throw-away PostgreSQL cluster: {detail.decode(errors='replace')[-300:]}")
    try:
        yield f"postgresql://{owner}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server for one test; dropped afterwards."""
    import psycopg

    name = f"shopfloor_test_{uuid.uuid4().hex[:12]}"
    conninfo = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = conninfo.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the stream worker in tests --------------------------------------------------------------------------------
@contextlib.contextmanager
def running_worker(broker_url: str, models, database: str, **options):
    """run_worker in a thread; stopped (cleanly, as by SIGTERM) on leaving the block."""
    from shopfloor.stream.worker import run_worker

    stop, ready, result, failed = threading.Event(), threading.Event(), {}, []

    def work():
        try:
            result.update(run_worker(broker_url, "plant/+/+/telemetry", models, database, progress=None, stop=stop, ready=ready,
                                     **options))
        except BaseException as err:  # surfaced in the test below
            failed.append(err)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    ready.wait(30)
    time.sleep(0.2)  # the SUBACK
    try:
        yield result
    finally:
        stop.set()
        thread.join(30)
    if failed:
        raise failed[0]


def wait_for(condition, timeout: float = 30.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    return condition()


class Listener:
    """A plain MQTT subscriber that collects what the worker publishes (alerts, dead letters)."""

    def __init__(self, url: str, topic: str):
        from shopfloor.stream.broker import mqtt_client, parse_url

        self.messages, self.ready = [], threading.Event()
        self.client = mqtt_client(f"listener-{id(self)}")
        self.client.on_connect = lambda c, *_: (c.subscribe(topic, qos=1), self.ready.set())
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
        host, port = parse_url(url)
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.ready.wait(10)
        time.sleep(0.2)  # the SUBACK

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


# -- the stream worker without a broker ------------------------------------------------------------------------
class OfflineClient:
    """Stands in for the paho client of `Worker.process`: records acknowledgements and publications."""

    def __init__(self):
        self.acked, self.published = [], []

    def publish(self, topic, payload, qos=0):
        self.published.append((topic, payload))

    def ack(self, mid, qos):
        self.acked.append(mid)


class OfflineMessage:
    """An MQTT message as paho hands it to the worker."""

    qos = 1

    def __init__(self, topic: str, payload: bytes, mid: int):
        self.topic, self.payload, self.mid = topic, payload, mid


def offline_worker(registry_root, store):
    """A Worker over the registry and store whose batches are fed by hand: `worker.process([(worker.session, m)])`."""
    from shopfloor.registry import Registry
    from shopfloor.stream.scoring import Models
    from shopfloor.stream.worker import Worker

    worker = Worker("mqtt://127.0.0.1:1", "plant/+/+/telemetry", store, Models(Registry(registry_root)), progress=None)
    worker.client = OfflineClient()
    return worker
