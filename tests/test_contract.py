"""A new task is cheap: a small estimator defined here, registered, and driven through every face.

`LineSpeedModel` (a least-squares line through the numeric columns) lives in this file only; nothing
in `src/` knows it. Registered under a task name of its own, it is saved, then used through the CLI
(`info`, `predict`, `evaluate`, `explain`, `report`, `export`) and the REST service (catalog and
predict route) with no edit outside this file. A capability it lacks gives one line naming the task
and the capability: exit 2 from the CLI, 422 from the service.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from shopfloor.cli import app
from shopfloor.kits.onnx import EXAMPLE_ROWS, check_request, export_module, file_facts, largest_difference, run_onnx, write_onnx
from shopfloor.kits.page import metrics_table, section, write_page
from shopfloor.tasks import TASKS, register
from shopfloor.tasks.base import Estimator, as_frame

TASK = "line-speed"


class LineNet(torch.nn.Module):
    """Standardise the columns, then one linear layer: the preprocessing lives in the module."""

    def __init__(self, n_columns: int):
        super().__init__()
        self.register_buffer("center", torch.zeros(n_columns))
        self.register_buffer("scale", torch.ones(n_columns))
        self.linear = torch.nn.Linear(n_columns, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x - self.center) / self.scale).squeeze(-1)


class LineSpeedModel(Estimator):
    """The line's speed as a straight-line function of its settings (least squares)."""

    task_name = TASK
    title = "line speed"
    described_as = "a line-speed model"
    accepts = "rows"

    def __init__(self, target: str = "speed"):
        self.target = target

    saved_state = {"columns": "columns_"}

    def fit(self, data) -> LineSpeedModel:
        frame, _ = as_frame(data)
        self.columns_ = [c for c in frame.columns if c != self.target]
        x = torch.tensor(frame[self.columns_].to_numpy(np.float32))
        y = torch.tensor(frame[self.target].to_numpy(np.float32))
        self.net_ = LineNet(len(self.columns_))
        self.net_.center.copy_(x.mean(0))
        self.net_.scale.copy_(x.std(0).clamp_min(1e-6))
        z = torch.cat([(x - self.net_.center) / self.net_.scale, torch.ones(len(x), 1)], dim=1)
        solution = torch.linalg.lstsq(z, y[:, None]).solution[:, 0]
        with torch.no_grad():
            self.net_.linear.weight.copy_(solution[:-1][None])
            self.net_.linear.bias.copy_(solution[-1:])
        self.validation_metrics_ = self.evaluate(frame)
        self.training_log_ = [{"epoch": 1, "rows": len(frame)}]
        return self

    def _x(self, data) -> tuple[pd.DataFrame, torch.Tensor]:
        frame, _ = as_frame(data)
        return frame, torch.tensor(frame[self.columns_].to_numpy(np.float32))

    def predict(self, data) -> pd.DataFrame:
        self._check_fitted()
        _, x = self._x(data)
        with torch.no_grad():
            return pd.DataFrame({"speed": self.net_(x).numpy()})

    @property
    def input_columns(self) -> list[str]:
        return self.columns_

    def predict_records(self, rows: list[dict]) -> list[dict]:
        return self.predict(pd.DataFrame.from_records(rows)).to_dict(orient="records")

    def evaluate(self, data, truth=None) -> dict[str, float]:
        self.refuse_truth(truth)
        frame, _ = as_frame(data)
        error = self.predict(frame)["speed"].to_numpy() - frame[self.target].to_numpy()
        return {"rmse": float(np.sqrt(np.mean(error ** 2))), "rows": float(len(frame))}

    def explain(self, data) -> pd.DataFrame:
        """Each column's share of the prediction away from the average row (exact for a line)."""
        _, x = self._x(data)
        weight = (self.net_.linear.weight[0] / self.net_.scale).detach()
        return pd.DataFrame(((x - self.net_.center) * weight).numpy(), columns=self.columns_)

    def export_onnx(self, path, opset: int = 18):
        path = check_request(self, path, opset)
        example = (torch.zeros(EXAMPLE_ROWS, len(self.columns_)),)
        proto, exporter = export_module(self.net_, example, opset, ["settings"], "speed")
        facts = file_facts(self, exporter, ["speed"], "settings: float32 [N, columns], the columns in `inputs` order")
        return write_onnx(proto, path, {**facts, "inputs": json.dumps(self.columns_)})

    def onnx_parity(self, path, data) -> float:
        _, x = self._x(data)
        exported = run_onnx(path, {"settings": x.numpy()})["speed"]
        return largest_difference(path, exported, self.predict(data)["speed"].to_numpy())

    def write_report(self, path, data=None, truth=None):
        metrics = self.evaluate(data, truth) if data is not None else self.validation_metrics_
        return write_page(path, "line speed", section("Metrics", metrics_table(metrics)))

    @classmethod
    def summary(cls, manifest: dict) -> dict:
        out = super().summary(manifest)
        columns = manifest["state"]["columns"]
        out["inputs"] = {"columns": columns}
        out["outputs"] = {"columns": ["speed"]}
        out["lines"] = [f"settings: {', '.join(columns)}"]
        return out

    def _tensors(self) -> dict[str, torch.Tensor]:
        return self._net_tensors()

    def _restore(self, state: dict, tensors: dict[str, torch.Tensor]) -> None:
        self.net_ = self._load_net(lambda: LineNet(len(self.columns_)), tensors)


def line_table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    feed, heat = rng.uniform(1, 5, rows), rng.uniform(150, 250, rows)
    return pd.DataFrame({"feed": feed, "heat": heat, "speed": 3 * feed + 0.05 * heat + rng.normal(0, 0.1, rows)})


@pytest.fixture
def line_model(tmp_path, monkeypatch):
    """The task registered for this test only, and a saved model of it with a file of new rows."""
    monkeypatch.setitem(TASKS, TASK, TASKS.get(TASK))  # restored (removed) after the test
    register(LineSpeedModel)
    folder = LineSpeedModel().fit(line_table(200, seed=0)).save(tmp_path / "line-model")
    rows = tmp_path / "rows.csv"
    line_table(50, seed=1).to_csv(rows, index=False)
    return folder, rows


def shopfloor(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_the_cli_drives_a_task_it_has_never_heard_of(line_model, tmp_path):
    folder, rows = line_model
    info = shopfloor("info", "--model", folder)
    assert info.exit_code == 0, info.output
    assert "settings: feed, heat" in info.output and "rmse" in info.output

    assert shopfloor("predict", "--model", folder, "--data", rows, "--out", tmp_path / "p.csv").exit_code == 0
    predicted = pd.read_csv(tmp_path / "p.csv")
    expected = 3 * pd.read_csv(rows)["feed"] + 0.05 * pd.read_csv(rows)["heat"]
    assert len(predicted) == 50 and np.abs(predicted["speed"] - expected).max() < 0.1

    scored = shopfloor("evaluate", "--model", folder, "--data", rows, "--json", tmp_path / "m.json")
    assert scored.exit_code == 0, scored.output
    assert json.loads((tmp_path / "m.json").read_text())["rmse"] < 0.2

    assert shopfloor("explain", "--model", folder, "--data", rows, "--out", tmp_path / "e.csv").exit_code == 0
    assert list(pd.read_csv(tmp_path / "e.csv").columns) == ["feed", "heat"]

    assert shopfloor("report", "--model", folder, "--data", rows, "--out", tmp_path / "r.html").exit_code == 0
    assert "line speed" in (tmp_path / "r.html").read_text()

    exported = shopfloor("export", "--model", folder, "--out", tmp_path / "m.onnx", "--data", rows)
    assert exported.exit_code == 0, exported.output
    assert "max abs difference" in exported.output


def test_what_a_task_lacks_is_one_line_naming_it(line_model, tmp_path):
    folder, rows = line_model
    result = shopfloor("evaluate", "--model", folder, "--data", rows, "--rul", rows)
    assert result.exit_code == 2
    assert "line-speed model" in result.output and "Traceback" not in result.output

    del LineSpeedModel.write_report  # the base class's default: this task has no report page
    try:
        result = shopfloor("report", "--model", folder, "--out", tmp_path / "r.html")
    finally:
        LineSpeedModel.write_report = _write_report
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "a line-speed model has no report page" in result.output.replace("\n", " ")
    assert not (tmp_path / "r.html").exists()


_write_report = LineSpeedModel.write_report


def test_the_service_catalogs_and_predicts_with_it(line_model, tmp_path):
    from fastapi.testclient import TestClient

    from shopfloor.registry import Registry
    from shopfloor.serve.app import create_app
    from shopfloor.serve.auth import create_token

    folder, rows = line_model
    root = tmp_path / "models"
    Registry(root, create=True).add("line-3", folder)
    token = create_token(root, "mes", "read")
    with TestClient(create_app(root), headers={"Authorization": f"Bearer {token}"}) as client:
        detail = client.get("/api/models/line-3").json()
        assert detail["manifests"]["1"]["task"] == TASK
        assert detail["manifests"]["1"]["inputs"] == {"columns": ["feed", "heat"]}
        body = {"rows": pd.read_csv(rows).drop(columns="speed").head(3).to_dict(orient="records")}
        answer = client.post("/api/models/line-3/predict", json=body)
        assert answer.status_code == 200, answer.text
        expected = LineSpeedModel().fit(line_table(200, seed=0)).predict(pd.read_csv(rows).head(3))["speed"]
        assert np.allclose([p["speed"] for p in answer.json()["predictions"]], expected, atol=1e-5)
        lacking = client.post("/api/models/line-3/predict", json={"rows": [{"feed": 2.0}]})
        assert lacking.status_code == 422 and "'heat'" in lacking.text
        refused = client.post("/api/models/line-3/inspect", files={"image": ("a.png", b"not a png")})
        assert refused.status_code == 422 and "line-speed model" in refused.text
