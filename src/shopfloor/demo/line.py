"""Part 6 of `shopfloor demo`: the demo's models on a simulated line.

1. the models trained in parts 1-5 go into a registry (`<out>/line/models`) and a read token is made;
2. an MQTT broker starts (Mosquitto when installed, else the pure-Python amqtt), then the REST service
   and a stream worker, each in its own process as they would run in a plant;
3. the 100 C-MAPSS FD001 test engines are replayed as `line-1` (RUL with its interval per engine and
   cycle) and the AI4I hold-out rows as 20 machines of `line-2` (failure risk per reading), and the monitoring
   part's three pumps as `line-3` (an anomaly score per reading; the wearing bearing raises a score alert naming
   the vibration);
4. a few generated parts are sent to the inspection endpoint;
5. the demo checks what arrived (every reading stored, else it stops with an error saying how many are
   missing; the fleet page answering) and prints the dashboard's address. Interactively it keeps serving
   until Ctrl-C; otherwise for `serve_seconds`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from shopfloor.display import plain

ENGINES_RATE = 4_000  # readings/s: the 13,096 test cycles in a few seconds
SNAPSHOT_MACHINES = 20


@dataclass
class Line:
    """A running simulated line: registry, broker, REST service and stream worker."""

    registry: object
    broker: object
    url: str
    token: str
    folder: Path


@contextlib.contextmanager
def simulated_line(folder: Path, models: dict[str, Path], port: int = 8000, rul_alert: float = 20,
                   broker_kind: str = "auto") -> Iterator[Line]:
    """Start a broker, the service and a stream worker over a fresh registry of `models` (name -> model folder);
    everything stops, and the processes are reaped, when the block ends. Logs go to `folder`. The block starts
    once the service answers and the worker is subscribed: what is published from then on reaches the worker.
    `broker_kind`: "auto" (Mosquitto when installed, else amqtt), or "amqtt" to try a fresh machine's path."""
    from shopfloor.registry import Registry
    from shopfloor.serve.auth import create_token
    from shopfloor.stream.broker import free_port, start_broker, stop_process

    shutil.rmtree(folder, ignore_errors=True)
    registry = Registry(folder / "models", create=True)
    for name, model in models.items():
        registry.add(name, model)
    if "rul" in models:  # on the estimate, not the low end of its interval (wide while the evidence is thin), and
        registry.set_alarm("rul", f"rul<={rul_alert:g}", f"rul>={rul_alert + 10:g}")  # left only 10 cycles higher
    token = create_token(registry.root, "demo", "read")
    (folder / "demo-token.txt").write_text(token + "\n", encoding="utf-8")
    with contextlib.ExitStack() as stack:  # whatever started is stopped, also when a later step fails
        broker = stack.enter_context(start_broker(folder=folder / "broker", kind=broker_kind))
        port = _port_or_free(port, free_port)
        url = f"http://127.0.0.1:{port}"
        cli = [sys.executable, "-m", "shopfloor"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the processes share the cores
        commands = {"service": [*cli, "serve", "--models", str(registry.root), "--port", str(port)],
                    "worker": [*cli, "stream", "--broker", broker.url, "--models", str(registry.root), "--rul-alert",
                               str(rul_alert), "--client-id", "shopfloor-demo-worker", "--ready-file",
                               str(folder / "worker.ready")]}
        processes = []
        for name, command in commands.items():
            log = stack.enter_context((folder / f"{name}.log").open("w"))
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env))
            stack.callback(stop_process, processes[-1])
        _wait_ready(url, processes, folder, folder / "worker.ready")
        yield Line(registry, broker, url, token, folder)


def run_line_demo(out: Path, console: Console, port: int = 8000, serve_seconds: float = 0.0) -> dict:
    from shopfloor.demo.data import demo_file
    from shopfloor.stream.replay import replay

    console.rule("[bold]6. On the line: REST service, MQTT stream worker and live dashboard")
    models = {name: out / folder for name, folder in [("failure", "ai4i-model"), ("rul", "cmapss-model"),
                                                      ("defects", "defects-model"), ("anomaly", "anomaly-model"),
                                                      ("reactor", "reactor-model"), ("pumps", "pumps-model")]
              if (out / folder).is_dir()}
    with simulated_line(out / "line", models, port) as line:
        console.print(f"registry {plain(line.registry.root)}: {', '.join(models)}; a read token is in "
                      f"{plain(line.folder / 'demo-token.txt')}")
        console.print(f"{line.broker.kind} broker at {line.broker.url}; service at {line.url}; stream worker "
                      f"subscribed (logs in {plain(line.folder)})")
        engines = replay(demo_file("test_FD001.txt.gz"), line.broker.url, ENGINES_RATE, line="line-1", progress=None)
        snapshots = replay(out / "ai4i-holdout.csv", line.broker.url, ENGINES_RATE, line="line-2",
                           machines=SNAPSHOT_MACHINES, progress=None)
        pumps = {"readings": 0, "machines": 0}
        if (out / "pumps-today.csv").exists():
            pumps = replay(out / "pumps-today.csv", line.broker.url, ENGINES_RATE, line="line-3", unit="pump",
                           time="time", progress=None)
        sent = engines["readings"] + snapshots["readings"] + pumps["readings"]
        console.print(f"replayed {engines['readings']:,} cycles of {engines['machines']} engines (line-1), "
                      f"{snapshots['readings']:,} AI4I snapshots over {snapshots['machines']} machines (line-2) and "
                      f"{pumps['readings']:,} minutes of {pumps['machines']} pumps (line-3)")
        inspected = _inspect_parts(line.url, line.token, out, list(models))
        summary = _wait_stored(line.registry.root, sent)
        console.print(f"stored {summary['readings']:,} of {sent:,} readings and {summary['predictions']:,} predictions; "
                      f"{summary['alerting']} machines in alarm, {summary['alerts']} alerts published; "
                      f"{inspected} parts inspected")
        check_nothing_lost(summary["readings"], sent, line)
        summary.update(_check_dashboard(line.url, line.token))
        summary["inspected"] = inspected
        console.print(f"dashboard: {summary['machines']} machines rendered in {summary['render_ms']:.0f} ms")
        console.print(f"[bold]dashboard[/] {line.url}/login  (token: {line.token})   API docs {line.url}/docs")
        _keep_serving(console, serve_seconds, line.registry.root)
        return summary


def _port_or_free(port: int, free_port) -> int:
    import socket

    if port:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    return free_port()  # none asked for, or something else listens on the usual port


def check_nothing_lost(stored: int, sent: int, line: Line) -> None:
    """The line stores every reading it is sent: a shortfall stops the demo with an error, not a figure to skim past."""
    from shopfloor.errors import ShopfloorError

    if stored < sent:
        raise ShopfloorError(f"the line lost {sent - stored:,} of {sent:,} readings ({line.broker.kind} broker): see "
                             f"worker.log and broker/broker.log in {plain(line.folder)}")


def _wait_ready(url: str, processes: list, line: Path, ready_file: Path, timeout: float = 120.0) -> None:
    """Until the service answers and the worker is subscribed (its ready file): a broker keeps nothing for a
    subscriber it has not heard of yet, so readings replayed earlier would be lost."""
    import httpx

    from shopfloor.errors import ShopfloorError

    deadline, service = time.time() + timeout, False
    while time.time() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise ShopfloorError(f"a demo process stopped (exit {process.returncode}); see the logs in {line}")
        try:
            service = service or httpx.get(f"{url}/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            pass
        if service and ready_file.exists():
            return
        time.sleep(0.25)
    waiting = "worker did not subscribe" if service else "service did not become ready"
    raise ShopfloorError(f"the demo {waiting} in {timeout:.0f} s; see the logs in {line}")


def _inspect_parts(url: str, token: str, out: Path, models: list[str], parts: int = 6) -> int:
    """Send a few of the generated test parts to each inspection model, as a camera station would."""
    import httpx

    done = 0
    folders = {"defects": out / "surfaces" / "classes-test", "anomaly": out / "surfaces" / "inspection" / "test"}
    for name, folder in folders.items():
        if name not in models:
            continue
        images = sorted(folder.rglob("*.png"))[:: max(1, len(sorted(folder.rglob("*.png"))) // parts)][:parts]
        for image in images:
            response = httpx.post(f"{url}/api/models/{name}/inspect", headers={"Authorization": f"Bearer {token}"},
                                  files={"image": (image.name, image.read_bytes(), "image/png")}, timeout=60)
            done += response.status_code == 200
    return done


def _wait_stored(models: Path, sent: int, timeout: float = 120.0) -> dict:
    from shopfloor.store import Store, default_url

    store = Store(default_url(models))
    deadline = time.time() + timeout
    counts = store.counts()
    while counts["readings"] < sent and time.time() < deadline:
        time.sleep(0.5)
        counts = store.counts()
    store.close()
    return counts


def _check_dashboard(url: str, token: str) -> dict:
    import httpx

    started = time.perf_counter()
    page = httpx.get(f"{url}/", cookies={"shopfloor_token": token}, timeout=30)
    elapsed = time.perf_counter() - started
    return {"render_ms": elapsed * 1000, "fleet_status": page.status_code, "machines": page.text.count('class="machine')}


def _keep_serving(console: Console, serve_seconds: float, models: Path) -> None:
    if sys.stdin.isatty():
        console.print("serving until Ctrl-C")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            console.print("stopping")
    elif serve_seconds > 0:
        console.print(f"serving for {serve_seconds:.0f} s (not interactive)")
        time.sleep(serve_seconds)
    else:
        console.print("not run from a terminal, so the line stops here; to look at it, run `make demo` from a "
                      f"terminal, or `shopfloor serve --models {plain(models)}` (the stored readings stay)")
