"""Fixtures of the REST service tests (a pytest plugin: `pytest_plugins = ["rest_service"]` in each test module).

The REST service over real HTTP: tiny models of every task in a registry, uvicorn on a free port, httpx.

The models are trained here in a few seconds (a handful of epochs on generated data): these tests are
about the service, not the models, so their answers are checked against the same model called directly.
One service runs for the whole session; tests that change the registry use their own model names.
Not a conftest.py: a second conftest module would take the name `conftest` from tests/conftest.py, which
test modules import helpers from.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from conftest import RUL_COLUMNS, failure_table, run_histories


@pytest.fixture(scope="session")
def line_models(tmp_path_factory) -> SimpleNamespace:
    """Saved model folders: failure (table), rul, defects, anomaly, reactor (optimiser), and a second failure model."""
    from shopfloor import TabularModel
    from shopfloor.tasks.anomaly.model import AnomalyModel
    from shopfloor.tasks.defects.model import DefectModel
    from shopfloor.tasks.optimize.model import ProcessOptimizer
    from shopfloor.tasks.optimize.simulators import SIMULATORS
    from shopfloor.tasks.rul.model import RULModel
    from shopfloor.vision.surfaces import write_defect_classes, write_inspection_set

    root = tmp_path_factory.mktemp("line-models")
    train = failure_table(300, seed=0)
    failure = TabularModel("failure", bags=2, members=1, max_epochs=3, progress=False).fit(train)
    failure_b = TabularModel("failure", bags=2, members=1, max_epochs=2, seed=1, progress=False).fit(train)
    histories = run_histories(8, conditions=1, seed=0)
    rul = RULModel(**RUL_COLUMNS, window=10, rul_cap=60, members=1, max_epochs=2, patience=2, progress=False).fit(histories)
    classes = write_defect_classes(root / "classes", per_class=8, size=32, seed=0)
    inspection = write_inspection_set(root / "inspection", train_good=12, test_good=3, test_per_defect=2, size=64, seed=0)
    defects = DefectModel(backbone="scratch", image_size=32, max_epochs=2, patience=2, augment=False, progress=False).fit(classes)
    anomaly = AnomalyModel(image_size=64, bank_size=500, progress=False).fit(inspection)
    sim = SIMULATORS["snar"]
    reactor = ProcessOptimizer(list(sim.settings), maximize=[sim.objective], constraints=list(sim.constraints),
                               batch=2).fit(sim.history(30, seed=3))
    folders = {name: model.save(root / name) for name, model in [
        ("failure", failure), ("failure-b", failure_b), ("rul", rul), ("defects", defects), ("anomaly", anomaly),
        ("reactor", reactor)]}
    return SimpleNamespace(folders=folders, failure=failure, failure_b=failure_b, rul=rul, defects=defects,
                           anomaly=anomaly, reactor=reactor, histories=histories, classes=classes,
                           inspection=inspection, sim=sim)


def free_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


class Service:
    """uvicorn serving `create_app(root, **options)` in a thread of this process, on a port nobody else has."""

    def __init__(self, root: Path, **options):
        import uvicorn

        from shopfloor.serve.app import create_app

        self.app = create_app(root, **options)
        self.sock = free_socket()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", loop="uvloop", http="httptools"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Service:
        self.thread.start()
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/ready", timeout=5).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the service at {self.url} was not ready in 60 s: {httpx.get(self.url + '/ready').text}")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def signed_in_page(root: Path, token: str, next_path: str = "/"):
    """A Chromium page of a `Service` on `root`, signed in with `token` through the login form, on `next_path`."""
    from playwright.sync_api import sync_playwright

    with Service(root) as running, sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = chromium.new_page()
            page.goto(f"{running.url}/login?next={next_path}")
            page.fill("input[name=token]", token)
            page.click("button[type=submit]")
            yield page
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def service(line_models, tmp_path_factory):
    """The service over a registry of every task, with a read and an admin token; `client(token)` gives httpx."""
    from shopfloor.registry import Registry
    from shopfloor.serve.auth import create_token

    root = tmp_path_factory.mktemp("plant") / "models"
    registry = Registry(root, create=True)
    for name in ("failure", "rul", "defects", "anomaly", "reactor"):
        registry.add(name, line_models.folders[name])
    read, admin = create_token(root, "mes", "read"), create_token(root, "quality-lead", "admin")
    with Service(root, max_body_bytes=256 * 1024, max_image_bytes=64 * 1024, max_images=4, max_rows=500) as running:
        running.app.state.tokens.recheck = 0.0  # revocations take effect at once here (a second in production)
        clients = []

        def client(token: str | None = read) -> httpx.Client:
            made = httpx.Client(base_url=running.url, timeout=30,
                                headers={"Authorization": f"Bearer {token}"} if token else {})
            clients.append(made)
            return made

        yield SimpleNamespace(url=running.url, root=root, registry=registry, read=read, admin=admin, client=client,
                              app=running.app, models=line_models)
        for made in clients:
            made.close()


@pytest.fixture
def api(service) -> httpx.Client:
    """An httpx client with the read token."""
    return service.client()
