"""Several processes training one model (torchrun, gloo on the CPU): gradients averaged, same stopping epoch on
every rank, one writer, and a rank that dies stops the run with one line and no model folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from conftest import failure_table
from typer.testing import CliRunner

import shopfloor
from shopfloor.artifacts import MANIFEST, save_artifact
from shopfloor.cli import app
from shopfloor.distributed import free_port

HERE = Path(__file__).resolve().parent
SOURCE = Path(shopfloor.__file__).resolve().parents[1]
FAST = ["--bags", "2", "--max-epochs", "6", "--quiet", "--seed", "1"]


def environment() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SOURCE), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1"}


def shopfloor_processes(*args, **popen):
    return subprocess.Popen([sys.executable, "-m", "shopfloor", *map(str, args)], env=environment(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


@pytest.mark.slow
def test_two_processes_average_gradients_as_one_process_would(tmp_path):
    """Each rank takes half of every batch and DDP averages: a network without dropout ends where one process
    ends, up to float rounding, and both ranks stop on the same epoch (rank 0's count is the one saved)."""
    from safetensors.torch import load_file

    sys.path.insert(0, str(HERE))
    try:
        from ddp_linear import train
    finally:
        sys.path.remove(str(HERE))
    alone, result = train()
    out = tmp_path / "two.safetensors"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--rdzv-backend",
                          "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--max-restarts", "0",
                          str(HERE / "ddp_linear.py"), str(out)], env=environment(), capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    two = load_file(out)
    assert int(two.pop("epochs_run")) == result.epochs_run
    for name, value in alone.state_dict().items():
        assert torch.allclose(two[name], value, atol=1e-5), name


def test_only_rank_0_writes_a_model_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    folder = save_artifact(tmp_path / "model", task="tabular", params={}, state={}, tensors={"w": torch.ones(2)})
    assert folder == tmp_path / "model" and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_two_processes_give_the_same_model_folder_as_one(tmp_path):
    data = tmp_path / "log.csv"
    failure_table(600).to_csv(data, index=False)
    train = ["train", "tabular", "--data", data, "--target", "failure", *FAST]
    two = shopfloor_processes(*train, "--out", tmp_path / "two", "--processes", "2")
    one = CliRunner().invoke(app, [str(a) for a in [*train, "--out", tmp_path / "one"]])
    assert one.exit_code == 0, one.output
    _, err = two.communicate(timeout=300)
    assert two.returncode == 0, err[-2000:]
    assert err.count("saved ") == 1  # rank 1 trains silently: it saves nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv", "one", "two"]  # nothing else: no debris
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == sorted(p.name for p in (tmp_path / "two").iterdir())
    manifests = [json.loads((tmp_path / name / MANIFEST).read_text()) for name in ("one", "two")]
    assert manifests[0]["params"] == manifests[1]["params"]
    assert sorted(manifests[0]["state"]) == sorted(manifests[1]["state"])
    f1 = [m["state"]["validation_metrics"]["f1"] for m in manifests]
    assert f1[1] > 0.8 and abs(f1[0] - f1[1]) < 0.05, f1


@pytest.mark.slow
def test_a_rank_that_dies_stops_the_others_and_nothing_is_written(tmp_path):
    data = tmp_path / "log.csv"
    failure_table(10_000).to_csv(data, index=False)
    run = shopfloor_processes("train", "tabular", "--data", data, "--target", "failure", "--bags", "2",
                              "--max-epochs", "500", "--quiet", "--out", tmp_path / "model", "--processes", "2")
    victim = wait_for_rank(run.pid, rank=1, cpu_seconds=4.0)
    victim.send_signal(signal.SIGKILL)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 2, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == ["error: training process rank 1 of 2 was killed (SIGKILL); torchrun stopped the others and "
                      "no model folder was written"], err[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]
    assert not [p for p in psutil.Process().children(recursive=True) if p.is_running()
                and p.status() != psutil.STATUS_ZOMBIE and "shopfloor" in " ".join(p.cmdline())]


def wait_for_rank(launcher: int, rank: int, cpu_seconds: float, timeout: float = 120) -> psutil.Process:
    """The worker process of `rank` under the launcher, once it has used `cpu_seconds` (imports are done and
    training has begun)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(launcher).children(recursive=True):
            try:
                if child.environ().get("RANK") == str(rank) and child.cpu_times().user >= cpu_seconds:
                    return child
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        time.sleep(0.2)
    pytest.fail(f"rank {rank} did not start training within {timeout} s")
