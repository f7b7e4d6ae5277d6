"""The catalog (GET /api/models/{name}) describes a version from its task's own `summary` (issue 15): every saved
model fixture, put in a registry, is described with the same keys as before the service asked the task."""

from __future__ import annotations

import pytest
from conftest import FIXTURES

from shopfloor.artifacts import MANIFEST
from shopfloor.errors import NotAModel
from shopfloor.registry import Registry
from shopfloor.serve.catalog import summary

SAVED = sorted(p for p in (FIXTURES / "models").iterdir() if (p / MANIFEST).is_file())
ALWAYS = ["task", "created", "shopfloor_version", "params", "metrics"]
METRICS = {"validation", "cross_validation", "train_seconds", "training_data"}
# task -> (inputs' keys, outputs' keys or None where none were sent), as the catalog sent them before;
# every fixture of the task (each format version) is described the same way
BEFORE = {
    "tabular": ({"numeric", "dates", "categorical", "ids"}, {"kind", "classes", "thresholds"}),
    "rul": ({"unit", "time", "settings", "sensors"}, None),
    "defects": ({"image_size", "channels"}, {"classes"}),
    "anomaly": ({"image_size", "channels"}, {"threshold"}),
    "optimize": ({"settings", "fixed"}, {"columns"}),
    "monitor": ({"time", "machine", "sensors"}, {"score", "sensors"}),
    "diagnose": ({"channels", "rate", "window"}, {"class", "unknown"}),
    "forecast": ({"time", "series", "targets", "past", "known"}, {"forecast", "q0.1", "q0.5", "q0.9"}),
}


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Registry:
    registry = Registry(tmp_path_factory.mktemp("catalog") / "models", create=True)
    for folder in SAVED:
        registry.add(folder.name, folder)
    return registry


def test_every_fixture_is_described_with_the_keys_it_had(registry):
    tasks = {folder.name: registry.manifest(folder.name, 1)["task"] for folder in SAVED}
    assert set(tasks.values()) == set(BEFORE), "a new task's fixture: add the keys its catalog entry should have"
    for folder in SAVED:
        described = summary(registry.manifest(folder.name, 1))
        inputs, outputs = BEFORE[tasks[folder.name]]
        assert list(described) == ALWAYS + ["inputs"] + (["outputs"] if outputs else []), folder.name
        assert set(described["inputs"]) == inputs, folder.name
        assert outputs is None or set(described["outputs"]) == outputs, folder.name
        assert set(described["metrics"]) == METRICS, folder.name
        assert described["task"] == registry.manifest(folder.name, 1)["task"]


def test_a_task_this_shopfloor_does_not_know_is_one_line_naming_it(registry):
    manifest = {**registry.manifest("tabular-v1", 1), "task": "schedule"}
    with pytest.raises(NotAModel, match="model 'press' version 3 is a 'schedule' model, which this shopfloor does not know"):
        summary(manifest, "model 'press' version 3")


def test_a_manifest_its_task_cannot_read_is_damaged_not_another_tasks_summary(registry):
    manifest = {**registry.manifest("rul-v1", 1), "state": {"unit": "engine"}}  # no time, settings, sensors
    with pytest.raises(NotAModel, match="model 'rul' version 1: its manifest could not be read .* damaged"):
        summary(manifest, "model 'rul' version 1")
