"""Every task trains and scores on the chosen device: shown without a GPU on the stand-in of `device_spy`.

A fit or a prediction under `use_device(<stand-in>)` must (1) never mix a CPU tensor with a device tensor in one
call (what CUDA refuses), (2) really run the network there (calls on device tensors were seen), and (3) give the
same model and the same answers as on the CPU, bit for bit (the stand-in computes on the CPU: any difference is a
step that went another way). Before every step followed the model's device, the monitor, diagnose and forecast
fits failed (1) and every prediction failed (2).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FIXTURES, RUL_COLUMNS, failure_table, run_histories
from typer.testing import CliRunner

import shopfloor
from scale.device_spy import FAKE_GPU, DeviceMismatch, stand_in_gpu
from shopfloor.artifacts import read_manifest
from shopfloor.cli import app
from shopfloor.training import TrainConfig, fit_module

TESTS = Path(__file__).resolve().parents[1]
MODELS = FIXTURES / "models"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tabular(_):
    return shopfloor.TabularModel("failure", bags=2, members=2, hidden=16, max_epochs=1, progress=False), \
        failure_table(120, seed=0)


def _tabular_numbers_only(_):  # no category column: the network's empty category block
    return shopfloor.TabularModel("failure", bags=1, members=2, hidden=16, max_epochs=2, progress=False), \
        failure_table(160, seed=0).drop(columns=["Type"])


def _rul(_):
    from shopfloor.tasks.rul.model import RULModel

    return RULModel(**RUL_COLUMNS, window=10, rul_cap=50, members=2, channels=8, layers=1, hidden=16,
                    baseline_cycles=3, max_epochs=2, progress=False), run_histories(6, seed=0)


def _monitor(_):
    from shopfloor.tasks.monitor.model import MonitorModel

    pump = _load(TESTS / "tasks" / "monitor" / "monitor_processes.py", "monitor_processes").pump
    return MonitorModel(time="time", window=8, channels=8, latent=2, crop=32, max_epochs=2, seed=0,
                        progress=False), pump(300, seed=0)


def _diagnose(_):
    from shopfloor.tasks.diagnose.model import DiagnoseModel

    cycles = _load(FIXTURES / "make_diagnose_v2.py", "make_diagnose_v2").cycles
    return DiagnoseModel(window=32, time="second", label="condition", run="cycle", width=8, embedding=16,
                         max_epochs=2, seed=0, progress=False), cycles(24, seed=0)


def _forecast(_):
    from shopfloor.tasks.forecast.model import ForecastModel

    lines = _load(FIXTURES / "make_forecast_v2.py", "make_forecast_v2").lines
    return ForecastModel(time="time", targets=["output"], series="line", horizon=6, lookback=24, max_epochs=2,
                         architecture={"width": 8, "patch": 8, "stride": 4, "kernel": 5}, seed=0,
                         progress=False), lines(120, seed=0, start="2024-01-01")


def _defects(folder: Path, backbone: str):
    from shopfloor.tasks.defects.model import DefectModel
    from shopfloor.vision.surfaces import write_defect_classes

    return DefectModel(image_size=32, backbone=backbone, max_epochs=2, patience=2, batch_size=8, progress=False), \
        write_defect_classes(folder / "classes", per_class=6, size=32, seed=0)


def _anomaly(folder: Path):
    from shopfloor.tasks.anomaly.model import AnomalyModel
    from shopfloor.vision.surfaces import write_inspection_set

    return AnomalyModel(image_size=64, blocks=(1, 3), bank_size=100, candidates=400, progress=False), \
        write_inspection_set(folder / "inspection", train_good=8, test_good=2, test_per_defect=1, size=64, seed=0)


FITS = {"tabular": _tabular, "tabular-numbers-only": _tabular_numbers_only, "rul": _rul, "monitor": _monitor,
        "diagnose": _diagnose, "forecast": _forecast,
        "defects-scratch": lambda folder: _defects(folder, "scratch"),
        "defects-lite0": lambda folder: _defects(folder, "lite0"), "anomaly": _anomaly}


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.net_.state_dict().items()}


@pytest.mark.parametrize("task", list(FITS))
def test_a_fit_on_the_device_mixes_no_cpu_tensor_and_learns_what_the_cpu_learns(task, tmp_path, monkeypatch):
    model, data = FITS[task](tmp_path / "cpu")
    on_cpu = _weights(model.fit(data))
    model, data = FITS[task](tmp_path / "device")
    with stand_in_gpu(monkeypatch) as spy, shopfloor.use_device(FAKE_GPU):
        model.fit(data)
        assert spy.device_calls > 0, "nothing ran on the device"
        assert not any(spy.marked(t) for t in model.net_.state_dict().values()), "the fitted model stayed on the device"
    weights = _weights(model)
    assert weights.keys() == on_cpu.keys()
    for name, value in weights.items():
        assert torch.equal(value, on_cpu[name]), name


SAVED = [p for p in sorted(MODELS.iterdir()) if p.name.endswith("-v2") and read_manifest(p)["task"] != "optimize"]


def _inputs(folder: Path):
    table = MODELS / f"{folder.name}.inputs.csv"
    return pd.read_csv(table) if table.is_file() else MODELS / f"{folder.name}.inputs"


@pytest.mark.parametrize("folder", SAVED, ids=[p.name for p in SAVED])
def test_a_prediction_on_the_device_runs_the_network_there_and_answers_as_the_cpu(folder, monkeypatch):
    model = shopfloor.load(folder)
    saved = _weights(model)
    on_cpu = model.predict(_inputs(folder))
    with stand_in_gpu(monkeypatch) as spy, shopfloor.use_device(FAKE_GPU):
        answer = model.predict(_inputs(folder))
    assert spy.device_calls > 0, "the prediction never ran on the device"
    pd.testing.assert_frame_equal(answer, on_cpu, check_exact=True)
    for name, value in _weights(model).items():  # the loaded model is unchanged, and on the CPU
        assert value.device.type == "cpu" and torch.equal(value, saved[name]), name
    # moved outside inference mode: weights that became inference tensors would refuse any later fit or update
    assert not any(t.is_inference() for t in model.net_.state_dict().values())
    assert np.array_equal(on_cpu.to_numpy(), model.predict(_inputs(folder)).to_numpy())  # and still answers the same


def test_the_stand_in_refuses_what_cuda_refuses_and_allows_what_it_allows(monkeypatch):
    """The helper itself: a loss that cuts its batch from a CPU series (the monitor's defect before this issue) fails,
    as do a CPU tensor created in a step and a device tensor turned into numpy; CPU scalars and CPU indices pass."""
    series = torch.randn(200)

    def cut_on_the_cpu(net, starts):
        return net(series[starts[:, None] + torch.arange(2, device=starts.device)]).mean()

    def created_on_the_cpu(net, starts):
        return (net(starts[:, None].float().expand(-1, 2)) + torch.ones(len(starts), 1)).mean()

    def scalars_and_cpu_indices(net, starts):
        x = starts[:, None].float().expand(-1, 2)[torch.arange(len(starts))]
        return (net(x) * torch.tensor(2.0)).mean()

    config = TrainConfig(max_epochs=1, batch_size=16, progress=False)
    with stand_in_gpu(monkeypatch), shopfloor.use_device(FAKE_GPU):
        for loss, message in ((cut_on_the_cpu, "a CPU tensor .* indexed with a tensor on the device"),
                              (created_on_the_cpu, "meet tensors on the device")):
            with pytest.raises(DeviceMismatch, match=message):
                fit_module(torch.nn.Linear(2, 1), loss, (torch.arange(64),), (torch.arange(64),), config)
        fit_module(torch.nn.Linear(2, 1), scalars_and_cpu_indices, (torch.arange(64),), (torch.arange(64),), config)
        with pytest.raises(DeviceMismatch, match="numpy"):
            torch.ones(3).to(FAKE_GPU).numpy()


def test_predict_and_evaluate_commands_score_on_the_chosen_device(tmp_path, monkeypatch):
    folder, data = MODELS / "tabular-v2", tmp_path / "labelled.csv"
    _load(FIXTURES / "make_model_v1.py", "make_model_v1").plant_table(200, seed=1).to_csv(data, index=False)
    runner = CliRunner()
    on_cpu = runner.invoke(app, ["predict", "--model", str(folder), "--data", str(data), "--out", str(tmp_path / "cpu.csv")])
    assert on_cpu.exit_code == 0, on_cpu.output
    with stand_in_gpu(monkeypatch) as spy:
        result = runner.invoke(app, ["predict", "--model", str(folder), "--data", str(data),
                                     "--out", str(tmp_path / "device.csv"), "--device", "xpu"])
        assert result.exit_code == 0, result.output
        predicted = spy.device_calls
        result = runner.invoke(app, ["evaluate", "--model", str(folder), "--data", str(data), "--device", "xpu"])
        assert result.exit_code == 0, result.output
    assert 0 < predicted < spy.device_calls
    assert (tmp_path / "device.csv").read_bytes() == (tmp_path / "cpu.csv").read_bytes()


def test_scoring_blocks_inside_each_other_keep_the_network_on_the_device_until_the_outer_ends(monkeypatch):
    from shopfloor.devices import scoring_on

    net = torch.nn.Linear(2, 1)
    with stand_in_gpu(monkeypatch) as spy, shopfloor.use_device(FAKE_GPU):
        with scoring_on(net) as device:
            with scoring_on(net):
                net(torch.ones(1, 2).to(device))
            assert spy.marked(net.weight), "the inner block took the network off the device"
            net(torch.ones(1, 2).to(device))
        assert not spy.marked(net.weight)
