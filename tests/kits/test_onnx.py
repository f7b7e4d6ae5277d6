"""The ONNX kit every exporter uses: checks before work, torch.export with its fallback, the file, parity."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from onnx import helper

import shopfloor
from shopfloor import artifacts
from shopfloor.errors import BadOption, NotAModel, NotFitted, NotSupported
from shopfloor.kits import onnx as kit
from shopfloor.tasks.base import Estimator


class Doubler(torch.nn.Module):
    """A network with two inputs and two outputs, as the RUL and image graphs have."""

    def forward(self, left, right):
        return 2 * left + right.sum(1, keepdim=True), left.amax(1)


class Tiny(Estimator):
    """A fitted estimator of a task that is no shopfloor task: the kit must not care which."""

    task_name = "tiny"
    fitted_attribute = "net_"

    def __init__(self, fitted: bool = True):
        self.fitted = fitted
        self.net_ = Doubler() if fitted else None


def example() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(kit.EXAMPLE_ROWS, 3, generator=generator), torch.rand(kit.EXAMPLE_ROWS, 2, generator=generator)


def write(tmp_path, opset: int = 18, name: str = "tiny.onnx"):
    model = Tiny()
    path = kit.check_request(model, tmp_path / name, opset)
    proto, exporter = kit.export_module(kit.frozen_copy(model.net_), example(), opset, ["left", "right"], ["sum", "top"])
    facts = kit.file_facts(model, exporter, ["sum", "top"], "left [N, 3], right [N, 2]") | {"size": "3"}
    return kit.write_onnx(proto, path, facts)


def assert_same_as_torch(path, rows: int = 7) -> None:
    left, right = torch.rand(rows, 3), torch.rand(rows, 2)  # a batch size the export never saw
    exported = kit.run_onnx(path, {"left": left.numpy(), "right": right.numpy()})
    expected = Doubler()(left, right)
    assert list(exported) == ["sum", "top"]
    for name, value in zip(exported, expected, strict=True):
        assert kit.largest_difference(path, exported[name], value.numpy()) <= 1e-6


def test_a_module_exports_with_a_dynamic_batch_and_the_common_metadata(tmp_path):
    path = write(tmp_path)
    assert_same_as_torch(path)
    meta = kit.read_metadata(path)
    assert meta["task"] == "tiny" and meta["exporter"] == "torch.export" and meta["size"] == "3"
    assert meta["shopfloor_version"] == shopfloor.__version__ and json.loads(meta["outputs"]) == ["sum", "top"]
    assert meta["input_contract"] == "left [N, 3], right [N, 2]"
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic write left nothing behind


def test_the_torchscript_fallback_takes_over_when_torch_export_fails(tmp_path, monkeypatch):
    real_export = torch.onnx.export

    def dynamo_broken(*args, dynamo=True, **kwargs):
        if dynamo:
            raise RuntimeError("simulated torch.export failure")
        return real_export(*args, dynamo=False, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", dynamo_broken)
    path = write(tmp_path)
    assert kit.read_metadata(path)["exporter"] == "torchscript"
    assert_same_as_torch(path)
    assert kit.read_metadata(write(tmp_path, opset=17, name="old.onnx"))["exporter"] == "torchscript"


def test_the_file_is_written_through_the_one_atomic_write(tmp_path, monkeypatch):
    written = []

    def recording(path, content, mode=0o644):
        written.append(path)
        return artifacts.atomic_write(path, content, mode)

    monkeypatch.setattr(kit, "atomic_write", recording)
    path = write(tmp_path / "new" / "folder")  # a missing folder is made
    assert written == [path] and path.exists()


def test_unfitted_models_other_formats_and_opsets_are_refused_before_any_work(tmp_path):
    with pytest.raises(NotFitted):
        kit.check_request(Tiny(fitted=False), tmp_path / "model.onnx", 18)
    with pytest.raises(BadOption, match="'.onnx' file"):
        kit.check_request(Tiny(), tmp_path / "model.pt", 18)
    with pytest.raises(BadOption, match="opset 9"):
        kit.check_request(Tiny(), tmp_path / "model.onnx", 9)
    assert not list(tmp_path.iterdir())


def test_outputs_of_another_shape_mean_another_model():
    assert kit.largest_difference("m.onnx", np.array([1.0, 2.0]), np.array([1.5, 1.0])) == 1.0
    assert kit.largest_difference("m.onnx", np.zeros((0, 3)), np.zeros((0, 3))) == 0.0
    with pytest.raises(NotAModel, match="m.onnx gives outputs of shape"):
        kit.largest_difference("m.onnx", np.zeros((2, 3)), np.zeros((2, 4)))


def test_each_opset_domain_is_imported_once():
    graph = helper.make_graph([], "empty", [], [])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("ai.onnx.ml", 3),
                                                    helper.make_opsetid("", 18)])
    kit.dedupe_opsets(proto)
    assert sorted((entry.domain, entry.version) for entry in proto.opset_import) == [("", 18), ("ai.onnx.ml", 3)]


def test_a_task_without_an_exporter_says_so_through_the_contract(tmp_path):
    from shopfloor.tasks.optimize.model import ProcessOptimizer

    with pytest.raises(NotSupported, match="ONNX export"):
        ProcessOptimizer().export_onnx(tmp_path / "optimizer.onnx")
    with pytest.raises(NotSupported, match="ONNX export"):
        Tiny().export_onnx(tmp_path / "tiny.onnx")  # the base default: no tabular fall-through
    assert not list(tmp_path.iterdir())



class Sequence(torch.nn.Module):
    """A network over sequences [batch, channels, time], as the monitor task's: one output per step, one per
    channel and step, each step with the one before it (the first with itself)."""

    def forward(self, readings):
        pairs = readings + torch.nn.functional.pad(readings, (1, 0), mode="replicate")[..., :-1]
        return pairs.amax(dim=1), pairs * 2


@pytest.mark.parametrize("dynamo", [True, False])
def test_named_axes_beyond_the_batch_are_dynamic_with_either_exporter(tmp_path, monkeypatch, dynamo):
    if not dynamo:
        real_export = torch.onnx.export

        def dynamo_broken(*args, dynamo=True, **kwargs):
            if dynamo:
                raise RuntimeError("simulated torch.export failure")
            return real_export(*args, dynamo=False, **kwargs)

        monkeypatch.setattr(torch.onnx, "export", dynamo_broken)
    axes = {"readings": {0: "batch", 2: "time"}, "top": {0: "batch", 1: "time"}, "all": {0: "batch", 2: "time"}}
    proto, exporter = kit.export_module(Sequence(), (torch.rand(kit.EXAMPLE_ROWS, 3, 9),), 18, ["readings"],
                                        ["top", "all"], dynamic=axes)
    assert exporter == ("torch.export" if dynamo else "torchscript")
    path = kit.write_onnx(proto, tmp_path / "sequence.onnx", kit.file_facts(Tiny(), exporter, ["top", "all"], ""))
    for batch, steps in [(1, 1), (2, 5), (7, 40)]:
        readings = torch.rand(batch, 3, steps)
        out = kit.run_onnx(path, {"readings": readings.numpy()})
        top, every = Sequence()(readings)
        assert kit.largest_difference(path, out["top"], top.numpy()) <= 1e-5
        assert kit.largest_difference(path, out["all"], every.numpy()) <= 1e-5
