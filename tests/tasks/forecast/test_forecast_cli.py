"""The forecast task through the command line: `train forecast`, `predict --future`, `backtest`, and the faces every
task shares; and the bad inputs of issue 18, each one line and exit 2 with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from shopfloor.cli import app
from tasks.forecast.forecast_series import plant_output

TRAIN = 640
OPTIONS = ["--time", "time", "--target", "output", "--known", "planned", "--horizon", "12", "--lookback", "48",
           "--max-epochs", "4", "--quiet"]


def shopfloor(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def files_under(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def assert_refused(result, *fragments: str) -> str:
    """Exit 2, no traceback, exactly one error line (warnings aside) that names the problem."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("forecast-cli")
    data = plant_output(steps=800)
    data.to_csv(folder / "all.csv", index=False)
    data.iloc[:TRAIN].to_csv(folder / "history.csv", index=False)
    data.iloc[TRAIN:TRAIN + 12][["time", "planned"]].to_csv(folder / "future.csv", index=False)
    result = shopfloor("train", "forecast", "--data", folder / "history.csv", "--out", folder / "model", *OPTIONS)
    assert result.exit_code == 0, result.output
    return folder


def test_train_predict_backtest_evaluate_explain_export_report_info(trained: Path, tmp_path: Path):
    result = shopfloor("predict", "--model", trained / "model", "--data", trained / "history.csv",
                       "--future", trained / "future.csv", "--out", tmp_path / "next.csv")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "next.csv")
    assert list(table.columns) == ["time", "target", "forecast", "q0.1", "q0.5", "q0.9"] and len(table) == 12

    result = shopfloor("backtest", "--model", trained / "model", "--data", trained / "all.csv", "--start",
                       "2024-01-27T16:00", "--stride", "6", "--out", tmp_path / "bt.parquet", "--json", tmp_path / "bt.json")
    assert result.exit_code == 0, result.output
    rows, metrics = pd.read_parquet(tmp_path / "bt.parquet"), json.loads((tmp_path / "bt.json").read_text())
    assert list(rows.columns) == ["origin", "time", "target", "actual", "forecast", "q0.1", "q0.5", "q0.9"]
    assert rows["origin"].min() == pd.Timestamp("2024-01-27T16:00") and metrics["origins"] == (800 - TRAIN - 12) // 6 + 1
    assert {"mase", "smape", "rmse", "mae", "quantile_loss", "coverage_80"} <= set(metrics)

    result = shopfloor("evaluate", "--model", trained / "model", "--data", trained / "all.csv", "--json", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    assert all(isinstance(v, float) for v in json.loads((tmp_path / "m.json").read_text()).values())

    assert shopfloor("explain", "--model", trained / "model", "--data", trained / "history.csv",
                     "--out", tmp_path / "why.csv").exit_code == 0
    assert {"input", "lags", "attribution", "share"} <= set(pd.read_csv(tmp_path / "why.csv").columns)

    result = shopfloor("export", "--model", trained / "model", "--out", tmp_path / "f.onnx", "--data", trained / "history.csv")
    assert result.exit_code == 0, result.output
    assert float(result.stderr.split("difference")[-1]) <= 1e-4

    result = shopfloor("report", "--model", trained / "model", "--out", tmp_path / "r.html", "--data", trained / "all.csv")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text()
    assert "forecast fan" in page and "Errors by horizon" in page and "Interval coverage" in page

    result = shopfloor("info", "--model", trained / "model")
    assert result.exit_code == 0 and "forecast output 12 steps ahead" in " ".join(result.output.split())


def test_a_target_with_text_names_the_column_and_row(tmp_path: Path):
    data = plant_output(steps=300).astype({"output": object})
    data.loc[41, "output"] = "12,5 kWh"
    data.to_csv(tmp_path / "bad.csv", index=False)
    assert_refused(shopfloor("train", "forecast", "--data", tmp_path / "bad.csv", "--out", tmp_path / "m", *OPTIONS),
                   "target 'output'", "row 42", "'12,5 kWh'")
    assert not (tmp_path / "m").exists()


def test_a_horizon_longer_than_the_history_supports_is_refused(tmp_path: Path):
    plant_output(steps=300).to_csv(tmp_path / "short.csv", index=False)
    options = [o if o != "12" else "200" for o in OPTIONS]
    assert_refused(shopfloor("train", "forecast", "--data", tmp_path / "short.csv", "--out", tmp_path / "m", *options),
                   "a horizon of 200 steps", "needs at least 449 steps", "has 300")
    assert not (tmp_path / "m").exists()


def test_irregular_steps_are_refused_naming_the_rows(tmp_path: Path):
    data = plant_output(steps=300)
    data.loc[[100, 200], "time"] += pd.Timedelta(minutes=20)
    data.to_csv(tmp_path / "odd.csv", index=False)
    assert_refused(shopfloor("train", "forecast", "--data", tmp_path / "odd.csv", "--out", tmp_path / "m", *OPTIONS),
                   "irregular time steps", "101 (2024-01-05 04:20:00)", "201")
    assert not (tmp_path / "m").exists()


def test_a_known_covariate_missing_from_the_future_names_it_and_the_first_time(trained: Path, tmp_path: Path):
    future = pd.read_csv(trained / "future.csv")
    future.drop(index=[4, 5]).to_csv(tmp_path / "gappy.csv", index=False)
    before = files_under(tmp_path)
    assert_refused(shopfloor("predict", "--model", trained / "model", "--data", trained / "history.csv",
                             "--future", tmp_path / "gappy.csv", "--out", tmp_path / "next.csv"),
                   "known covariate 'planned'", "2024-01-27 20:00:00")
    future.drop(columns="planned").to_csv(tmp_path / "none.csv", index=False)
    assert_refused(shopfloor("predict", "--model", trained / "model", "--data", trained / "history.csv",
                             "--future", tmp_path / "none.csv", "--out", tmp_path / "next.csv"),
                   "known covariate 'planned'", "2024-01-27 16:00:00")
    assert_refused(shopfloor("predict", "--model", trained / "model", "--data", trained / "history.csv",
                             "--out", tmp_path / "next.csv"), "--future FILE", "planned")
    assert files_under(tmp_path) == {**before, "none.csv": (tmp_path / "none.csv").read_bytes()}


def test_a_series_shorter_than_the_lookback_is_refused_naming_it(trained: Path, tmp_path: Path):
    pd.read_csv(trained / "history.csv").tail(20).to_csv(tmp_path / "recent.csv", index=False)
    assert_refused(shopfloor("predict", "--model", trained / "model", "--data", tmp_path / "recent.csv",
                             "--future", trained / "future.csv", "--out", tmp_path / "next.csv"),
                   "has 20 steps", "looks back 48 steps")
    assert not (tmp_path / "next.csv").exists()


def test_a_future_file_for_a_model_that_does_not_forecast_is_refused(tmp_path: Path):
    from conftest import FIXTURES

    models = FIXTURES / "models"
    assert_refused(shopfloor("predict", "--model", models / "tabular-v1", "--data", models / "tabular-v1.inputs.csv",
                             "--future", models / "tabular-v1.inputs.csv", "--out", tmp_path / "p.csv"),
                   "--future is for forecasting models", "tabular")
    assert_refused(shopfloor("backtest", "--model", models / "tabular-v1", "--data", models / "tabular-v1.inputs.csv",
                             "--start", "2024-01-01", "--out", tmp_path / "bt.csv"), "has no backtests")
    assert list(tmp_path.iterdir()) == []
