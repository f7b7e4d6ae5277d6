"""MQTT plumbing: broker URLs, paho clients, and an embedded broker for the demo and the tests.

`start_broker()` runs Mosquitto when it is installed (Debian: `apt-get install mosquitto`) with a config
written for this purpose, and otherwise amqtt, a pure-Python MQTT 3.1.1 broker, in a subprocess. Either
listens on 127.0.0.1 only, on a free port. The Mosquitto config matters for "a broker restart loses
nothing": persistence on (queued QoS 1 messages of persistent sessions are written to disk at shutdown and
read back at start), and no limit on queued or in-flight messages (Mosquitto's defaults, 1,000 queued and
20 in flight per client, would drop readings while the worker is away and throttle a worker that
acknowledges a whole batch at once). A plant's own broker needs the same three settings:

    persistence true
    max_queued_messages 0      (or a bound larger than what arrives while a worker may be down)
    max_inflight_messages 0

amqtt (0.12), the fallback, is weaker: its queues live in memory only (a restart of amqtt loses them), and a
QoS 1 message it sent is forgotten when no PUBACK comes within 5 s, so a worker that took longer to store it
and then lost its connection does not get it again. Its clients keep their sessions while away only through
this package's login plugin (`stream.amqtt_local`), and a worker's MQTT 5 attempt gets no answer from it, so
the worker subscribes 5 s after it starts: whoever publishes waits for the worker's ready event or file.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from shopfloor.errors import BadOption, ShopfloorError

MOSQUITTO = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


class BrokerUnreachable(ShopfloorError):
    """The MQTT broker does not answer, or an embedded broker could not be started."""


def parse_url(url: str) -> tuple[str, int]:
    """(host, port) from mqtt://HOST[:PORT] (port 1883 by default) or HOST[:PORT]."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise BadOption(f"'{url}' is not a broker address: use mqtt://HOST:PORT (TLS brokers are not supported yet)")
    try:
        return parts.hostname, parts.port or 1883
    except ValueError:
        raise BadOption(f"'{url}' has a port that is not a number between 1 and 65535") from None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mqtt_client(client_id: str, protocol: int | None = None, manual_ack: bool = False):
    """A paho 2.x client (MQTT 5 unless told otherwise) with no cap on queued or in-flight messages."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    protocol = protocol or mqtt.MQTTv5
    # MQTT 3.1.1 has no clean_start; clean_session False is its persistent session
    session = {} if protocol == mqtt.MQTTv5 else {"clean_session": False}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, manual_ack=manual_ack,
                         **session)
    client.max_inflight_messages_set(1_000)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(0.1, 2)
    return client


def stable_client_id(topic: str | list[str], group: str | None) -> str:
    """The same id at every start on this host for the same subscriptions: the broker keeps a persistent session
    (and the readings queued while the worker was away) under its client id, so a random id would lose them."""
    import hashlib

    topics = [topic] if isinstance(topic, str) else sorted(topic)
    digest = hashlib.sha1("\n".join([*topics, group or ""]).encode()).hexdigest()[:10]
    # the workers of a group share the subscription, not the session: two with one id would throw each other off
    worker = f"-{os.getpid()}" if group else ""
    return f"shopfloor-stream-{socket.gethostname()[:32]}-{digest}{worker}"


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def mosquitto_path() -> str | None:
    for name in MOSQUITTO:
        path = shutil.which(name) or (name if os.path.isfile(name) and os.access(name, os.X_OK) else None)
        if path:
            return path
    return None


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM and wait (a broker saves its state, a service or worker finishes its batch); SIGKILL if it hangs."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@dataclass
class Broker:
    """A running embedded broker; `restart()` stops it cleanly (state saved) and starts it on the same port."""

    kind: str  # "mosquitto" or "amqtt"
    port: int
    folder: Path
    command: list[str]
    owns_folder: bool = True
    env: dict | None = field(default=None, repr=False)
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.folder / "broker.log"

    def start(self) -> Broker:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder,
                                            env=self.env)
        if not wait_for_port("127.0.0.1", self.port, 15):
            self.stop()
            tail = self.log.read_text(errors="replace")[-600:] if self.log.exists() else ""
            raise BrokerUnreachable(f"the embedded {self.kind} broker did not open port {self.port}: {tail}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, so that Mosquitto writes its persistence file; SIGKILL only if it hangs."""
        process, self.process = self.process, None
        if process is not None:
            stop_process(process, timeout)

    def restart(self, pause: float = 0.0) -> None:
        self.stop()
        time.sleep(pause)
        self.start()

    def close(self) -> None:
        """Stop, and remove the broker's folder when it made it."""
        self.stop()
        if self.owns_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start_broker(port: int | None = None, folder: str | os.PathLike | None = None, kind: str = "auto") -> Broker:
    """Start Mosquitto (or amqtt when Mosquitto is absent, or kind="amqtt") on 127.0.0.1:<port>."""
    binary = mosquitto_path()
    if kind == "mosquitto" and binary is None:
        raise BrokerUnreachable("Mosquitto is not installed: apt-get install mosquitto (Debian/Ubuntu)")
    if kind not in ("auto", "mosquitto", "amqtt"):
        raise BadOption(f"broker kind '{kind}' is not one of auto, mosquitto, amqtt")
    port = port or free_port()
    owns = folder is None
    folder = Path(folder or tempfile.mkdtemp(prefix="shopfloor-broker-")).resolve()  # mosquitto runs elsewhere
    folder.mkdir(parents=True, exist_ok=True)
    if binary and kind != "amqtt":
        config = folder / "mosquitto.conf"
        config.write_text(mosquitto_config(port, folder), encoding="utf-8")
        _let_mosquitto_write(folder)
        broker = Broker("mosquitto", port, folder, [binary, "-c", str(config)], owns)
    else:
        config = folder / "amqtt.yaml"
        config.write_text(f"listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\n"
                          "plugins:\n  shopfloor.stream.amqtt_local.LocalClients: {}\n", encoding="utf-8")
        script = Path(sys.executable).with_name("amqtt")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "amqtt.scripts.broker_script"]
        # the plugin comes from this very shopfloor, wherever it was imported from (the broker runs in its folder)
        package_root = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        broker = Broker("amqtt", port, folder, [*command, "-c", str(config)], owns, env={**os.environ, "PYTHONPATH": path})
    return broker.start()


def mosquitto_config(port: int, folder: Path) -> str:
    return "\n".join([
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",  # bound to localhost only: this broker is for the demo and the tests
        "persistence true",
        f"persistence_location {folder}/",
        "autosave_interval 5",
        "max_queued_messages 0",
        "max_queued_bytes 0",
        "max_inflight_messages 0",
        "max_keepalive 60",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "",
    ])


def _let_mosquitto_write(folder: Path) -> None:
    # Started as root, Mosquitto drops to the 'mosquitto' user, which must be able to write its persistence file.
    if os.geteuid() != 0:
        return
    try:
        user = pwd.getpwnam("mosquitto")
    except KeyError:
        return
    os.chown(folder, user.pw_uid, user.pw_gid)
    folder.chmod(0o755)
