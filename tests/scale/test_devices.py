"""Devices: `--device` resolution, one line for a GPU that is not there, and model folders that never depend
on where a model trained (weights saved from the CPU, loaded onto the CPU)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import failure_table
from typer.testing import CliRunner

import shopfloor
from shopfloor.artifacts import MANIFEST, WEIGHTS
from shopfloor.cli import app
from shopfloor.devices import current_device, resolve_device
from shopfloor.errors import BadOption
from shopfloor.training import TrainConfig, fit_module

FAST = ["--bags", "2", "--max-epochs", "4", "--quiet"]
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: 'no GPU' cannot be shown")
TIMINGS = {"created", "manifest_sha256"}  # and state.train_seconds: the only parts of a manifest a rerun changes


def shopfloor_cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_device_names_resolve_and_a_bad_name_is_refused():
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(None)
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(BadOption, match="not a device; give auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")


@no_gpu
def test_cuda_without_a_gpu_is_one_line_and_exit_2(tmp_path):
    with pytest.raises(BadOption, match="no GPU was found"):
        resolve_device("cuda:1")
    data = tmp_path / "log.csv"
    failure_table(200).to_csv(data, index=False)
    result = shopfloor_cli("train", "tabular", "--data", data, "--target", "failure", "--out", tmp_path / "m",
                           "--device", "cuda", *FAST)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --device cuda: no GPU was found (torch " + torch.__version__ + " sees no CUDA device); "
        "use --device cpu or auto"]
    assert not (tmp_path / "m").exists()
    result = shopfloor_cli("predict", "--model", tmp_path / "m", "--data", data, "--out", tmp_path / "p.csv",
                           "--device", "cuda:0")
    assert result.exit_code == 2 and "no GPU was found" in result.output and not (tmp_path / "p.csv").exists()


def test_use_device_is_a_context_the_training_loop_reads_and_leaves_on_the_cpu():
    seen = []

    def loss(module, x, y):
        seen.append(x.device)
        return torch.nn.functional.mse_loss(module(x), y)

    x = torch.randn(64, 2)
    module = torch.nn.Linear(2, 1)
    with shopfloor.use_device("auto") as device:
        assert current_device() == device
        fit_module(module, loss, (x, x[:, :1]), (x, x[:, :1]), TrainConfig(max_epochs=2, batch_size=16, progress=False))
    assert current_device() == torch.device("cpu")
    assert {d.type for d in seen} == {device.type}
    assert all(p.device.type == "cpu" for p in module.parameters())  # back on the CPU, whatever trained it


def test_model_folders_do_not_depend_on_the_device_and_load_onto_the_cpu(tmp_path):
    data = tmp_path / "log.csv"
    failure_table(300).to_csv(data, index=False)
    for name, device in (("default", []), ("cpu", ["--device", "cpu"])):
        result = shopfloor_cli("train", "tabular", "--data", data, "--target", "failure", "--out", tmp_path / name,
                               "--seed", 3, *FAST, *device)
        assert result.exit_code == 0, result.output
    manifests = [json.loads((tmp_path / name / MANIFEST).read_text()) for name in ("default", "cpu")]
    for manifest in manifests:
        manifest["state"].pop("train_seconds")
        for key in TIMINGS:
            manifest.pop(key)
    assert manifests[0] == manifests[1]
    assert (tmp_path / "default" / WEIGHTS).read_bytes() == (tmp_path / "cpu" / WEIGHTS).read_bytes()
    assert "device" not in manifests[0]["params"]
    model = shopfloor.load(tmp_path / "cpu")
    assert {p.device.type for p in model.net_.parameters()} == {"cpu"}
