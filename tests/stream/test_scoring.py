"""Which saved models the stream applies, decided by asking each model's class what it takes (issue 15)."""

from __future__ import annotations

import pytest
from conftest import FIXTURES

from shopfloor.artifacts import MANIFEST
from shopfloor.registry import Registry

SAVED = sorted(p for p in (FIXTURES / "models").iterdir() if (p / MANIFEST).is_file())


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Registry:
    """Every saved model fixture, live in a registry."""
    registry = Registry(tmp_path_factory.mktemp("stream") / "models", create=True)
    for folder in SAVED:
        registry.add(folder.name, folder)
    return registry


def test_the_stream_applies_table_and_run_models_only_deciding_from_the_manifest(registry, monkeypatch):
    """Images and optimisers are never loaded by the stream; a yes/no table model scores a risk per reading and
    a RUL model a remaining useful life per message, a monitor model an anomaly score per reading, a diagnose model a
    verdict per window of a block of samples; a forecaster gives nothing the line judges and is not loaded."""
    from shopfloor.stream.scoring import Models, streamed

    task = {f.name: registry.manifest(f.name, 1)["task"] for f in SAVED}
    by_task = {"tabular": True, "rul": True, "defects": False, "anomaly": False, "optimize": False, "monitor": True,
               "diagnose": True, "forecast": False}
    assert {name: streamed(registry.manifest(name, 1)) for name in task} == {name: by_task[task[name]] for name in task}
    assert not streamed({"task": "schedule"})  # a task this shopfloor does not know: skipped, not a tabular model
    loaded = []
    monkeypatch.setattr(registry, "live", lambda name, _live=registry.live: loaded.append(name) or _live(name))
    models = Models(registry)
    kinds = {"tabular": "risk", "rul": "rul", "monitor": "score", "diagnose": "verdict"}
    assert {name: s.kind for name, s in models.scorers.items()} == {n: kinds[t] for n, t in task.items() if t in kinds}
    assert sorted(loaded) == sorted(n for n, t in task.items() if by_task[t])
    loaded.clear()
    models.refresh(force=True)
    assert loaded == []  # a live version already loaded is not loaded again every refresh
