"""The `shopfloor` command end to end: the happy path, and every bad input the issue lists.

Bad input must give exit code 2, one line naming the problem, no traceback, and no file written.
Most cases run in-process through Typer's CliRunner; a few run the real executable to check exit
codes and stderr as a shell sees them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import failure_table, kpi_table
from typer.testing import CliRunner

from shopfloor.artifacts import FORMAT_VERSION, MANIFEST, sha256_json
from shopfloor.cli import app
from shopfloor.metrics import CLASSIFICATION_KEYS, REGRESSION_KEYS

FAST = ["--bags", "2", "--max-epochs", "4", "--quiet"]


def shopfloor(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def files_under(folder: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder below `folder`, hidden temporary ones included."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def assert_refused(result, *fragments: str) -> str:
    """Exit 2, no traceback, exactly one error line (warnings aside) that names the problem."""
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def workdir(tmp_path) -> Path:
    failure_table(120, seed=0).to_csv(tmp_path / "train.csv", index=False)
    failure_table(40, seed=1).to_csv(tmp_path / "new.csv", index=False)
    return tmp_path


# -- bad input at training time ------------------------------------------------------------
def _train_refused(workdir: Path, *extra, target: str = "failure", data: str = "train.csv"):
    before = files_under(workdir)
    result = shopfloor("train", "tabular", "--data", workdir / data, "--target", target,
                       "--out", workdir / "model", *FAST, *extra)
    assert files_under(workdir) == before, "something was written"
    return result


def test_train_missing_file(workdir):
    assert_refused(_train_refused(workdir, data="absent.csv"), "absent.csv", "no such file")


def test_train_empty_file(workdir):
    (workdir / "empty.csv").write_bytes(b"")
    assert_refused(_train_refused(workdir, data="empty.csv"), "empty.csv", "empty")


def test_train_header_only_file(workdir):
    (workdir / "header.csv").write_text("UDI,Type,Torque [Nm],failure\n")
    assert_refused(_train_refused(workdir, data="header.csv"), "header.csv", "no data rows")


def test_train_missing_target(workdir):
    assert_refused(_train_refused(workdir, target="Machine failure"), "'Machine failure'", "not a column")


def test_train_target_with_one_class(workdir):
    failure_table(120).assign(failure=0).to_csv(workdir / "train.csv", index=False)
    assert_refused(_train_refused(workdir), "'failure'", "only one class")


def test_train_text_in_a_numeric_column(workdir):
    frame = failure_table(120).astype({"Torque [Nm]": object})
    frame.loc[56, "Torque [Nm]"] = "sensor fault"
    frame.to_csv(workdir / "train.csv", index=False)
    assert_refused(_train_refused(workdir), "'Torque [Nm]'", "row 57", "'sensor fault'")


def test_train_all_missing_column(workdir):
    failure_table(120).assign(**{"Humidity [%]": np.nan}).to_csv(workdir / "train.csv", index=False)
    assert_refused(_train_refused(workdir), "'Humidity [%]'", "no values")


def test_train_refuses_to_overwrite_a_folder_that_is_not_a_model(workdir):
    (workdir / "model").mkdir()
    (workdir / "model" / "notes.txt").write_text("keep me")
    assert_refused(_train_refused(workdir), "refusing to overwrite")


@pytest.mark.parametrize(("option", "value", "fragment"), [("--max-epochs", "0", "max_epochs must be at least 1"),
                                                         ("--bags", "0", "bags and members must be at least 1")])
def test_train_nonsense_counts_are_refused(workdir, option, value, fragment):
    # --max-epochs 0 saved an untrained model with exit code 0
    assert_refused(_train_refused(workdir, option, value), fragment)


def test_train_with_one_bag(workdir):
    result = shopfloor("train", "tabular", "--data", workdir / "train.csv", "--target", "failure",
                       "--out", workdir / "model", "--bags", "1", "--max-epochs", "10", "--quiet")
    assert result.exit_code == 0, result.output
    manifest = json.loads((workdir / "model" / MANIFEST).read_text(encoding="utf-8"))
    metrics = manifest["state"]["validation_metrics"]
    assert all(v is not None for v in metrics.values())
    assert 0 < manifest["state"]["thresholds"][0] < 1


@pytest.mark.parametrize(("extra", "fragments"), [
    (["--split", "time"], ["--split time needs a time column"]),
    (["--split", "sideways"], ["split must be one of auto, random, time, group"]),
    (["--time", "shift start"], ["--time 'shift start' is not a column"]),
])
def test_train_impossible_splits_are_refused(workdir, extra, fragments):
    assert_refused(_train_refused(workdir, *extra), *fragments)


def test_train_validates_in_time_order_and_says_so(tmp_path):
    # rows of a drifting process, hourly: neighbours are near copies, random folds flatter the model
    frame = failure_table(160, seed=0)
    frame.insert(0, "stamp", pd.date_range("2024-01-01", periods=160, freq="h").strftime("%Y-%m-%d %H:%M"))
    frame.to_csv(tmp_path / "train.csv", index=False)
    result = shopfloor("train", "tabular", "--data", tmp_path / "train.csv", "--target", "failure",
                       "--out", tmp_path / "model", "--cv", "2", *FAST)
    assert result.exit_code == 0, result.output
    assert "2-fold cross-validation (train.csv; time order by 'stamp')" in result.stderr
    assert "time order by 'stamp'" in result.stderr.split("out-of-fold validation")[1]
    state = json.loads((tmp_path / "model" / MANIFEST).read_text(encoding="utf-8"))["state"]
    assert state["split"]["kind"] == "time" and state["split"]["column"] == "stamp"
    assert state["validation_metrics"]["split"] == "time order by 'stamp'"
    assert state["cross_validation"]["split"] == "time order by 'stamp'"
    assert state["split"]["validated_rows"] == 80  # the later half
    result = shopfloor("train", "tabular", "--data", tmp_path / "train.csv", "--target", "failure",
                       "--out", tmp_path / "random", "--split", "random", *FAST)
    assert result.exit_code == 0, result.output
    state = json.loads((tmp_path / "random" / MANIFEST).read_text(encoding="utf-8"))["state"]
    assert state["split"]["kind"] == "random" and state["split"]["validated_rows"] == 160


def test_train_names_a_leaking_column_once_with_cross_validation(workdir):
    frame = failure_table(120).assign(**{"repair ticket": lambda f: f["failure"]})  # written after the failure
    frame.to_csv(workdir / "train.csv", index=False)
    result = shopfloor("train", "tabular", "--data", workdir / "train.csv", "--target", "failure",
                       "--out", workdir / "model", "--cv", "2", *FAST)
    assert result.exit_code == 0, result.output
    said = [line for line in result.stderr.splitlines() if "gives the target" in line]
    assert len(said) == 1 and "--drop 'repair ticket'" in said[0], said


def test_train_group_without_cv_holds_out_whole_runs(workdir):
    # --group used to be refused without --cv; it now also decides the model's own validation
    frame = failure_table(120).assign(batch=np.repeat([f"B{i}" for i in range(12)], 10))
    frame.to_csv(workdir / "train.csv", index=False)
    result = shopfloor("train", "tabular", "--data", workdir / "train.csv", "--target", "failure",
                       "--out", workdir / "model", "--group", "batch", *FAST)
    assert result.exit_code == 0, result.output
    state = json.loads((workdir / "model" / MANIFEST).read_text(encoding="utf-8"))["state"]
    assert state["split"]["kind"] == "group" and state["split"]["column"] == "batch"


# -- bad input at predict time -------------------------------------------------------------
def _predict(model: Path, data: Path, out: Path, *extra):
    return shopfloor("predict", "--model", model, "--data", data, "--out", out, *extra)


def test_predict_missing_columns_are_named(binary_model, workdir):
    failure_table(40, 1).drop(columns=["Torque [Nm]", "Type"]).to_csv(workdir / "new.csv", index=False)
    before = files_under(workdir)
    assert_refused(_predict(binary_model.folder, workdir / "new.csv", workdir / "out.csv"),
                   "'Torque [Nm]', 'Type'", "new.csv")
    assert files_under(workdir) == before


def test_predict_text_in_a_later_chunk_names_the_row(binary_model, workdir):
    frame = failure_table(40, 1).astype({"Rotational speed [rpm]": object})
    frame.loc[33, "Rotational speed [rpm]"] = "---"
    frame.to_csv(workdir / "new.csv", index=False)
    before = files_under(workdir)
    result = _predict(binary_model.folder, workdir / "new.csv", workdir / "out.parquet", "--chunk-rows", "10")
    assert_refused(result, "'Rotational speed [rpm]'", "row 34")
    assert files_under(workdir) == before


@pytest.mark.parametrize("content", [b"", b"UDI,Type,Torque [Nm]\n"], ids=["empty", "header only"])
def test_predict_file_without_rows(binary_model, workdir, content):
    (workdir / "nothing.csv").write_bytes(content)
    before = files_under(workdir)
    assert_refused(_predict(binary_model.folder, workdir / "nothing.csv", workdir / "out.csv"), "nothing.csv")
    assert files_under(workdir) == before


@pytest.mark.parametrize("value", ["1e308", "inf", "-Infinity"])
def test_predict_a_reading_beyond_any_plausible_range_names_row_and_column(binary_model, workdir, value):
    # two readings at 1e308 were written as an empty probability and 'predicted 0'
    new = failure_table(40, seed=1).astype({"Torque [Nm]": object, "Rotational speed [rpm]": object})
    new.loc[31, ["Torque [Nm]", "Rotational speed [rpm]"]] = value
    new.to_csv(workdir / "odd.csv", index=False)
    before = files_under(workdir)
    result = _predict(binary_model.folder, workdir / "odd.csv", workdir / "out.csv", "--chunk-rows", "25")
    assert_refused(result, "row 32 of", "'Torque [Nm]'", "not a plausible reading")
    assert files_under(workdir) == before


def test_predict_to_an_unknown_format(binary_model, workdir):
    assert_refused(_predict(binary_model.folder, workdir / "new.csv", workdir / "out.xlsx"), ".csv or .parquet")
    assert not (workdir / "out.xlsx").exists()


def test_outputs_into_a_missing_folder(binary_model, workdir):
    before = files_under(workdir)
    assert_refused(shopfloor("evaluate", "--model", binary_model.folder, "--data", workdir / "new.csv",
                             "--json", workdir / "no-such-folder" / "metrics.json"), "does not exist")
    assert_refused(shopfloor("explain", "--model", binary_model.folder, "--data", workdir / "new.csv",
                             "--out", workdir / "no-such-folder" / "why.csv"), "does not exist")
    assert files_under(workdir) == before


def test_predict_extra_reordered_and_unseen(binary_model, workdir):
    assert shopfloor("predict", "--model", binary_model.folder, "--data", workdir / "new.csv",
                     "--out", workdir / "plain.csv").exit_code == 0
    plain = pd.read_csv(workdir / "plain.csv")

    new = pd.read_csv(workdir / "new.csv")
    new[list(reversed(new.columns))].assign(operator="anna").to_csv(workdir / "odd.csv", index=False)
    result = _predict(binary_model.folder, workdir / "odd.csv", workdir / "odd-out.csv")
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "'operator'" in result.stderr
    pd.testing.assert_frame_equal(pd.read_csv(workdir / "odd-out.csv"), plain)

    new.assign(Type=["Z", "L", None, "M"] * 10).to_csv(workdir / "unseen.csv", index=False)
    result = _predict(binary_model.folder, workdir / "unseen.csv", workdir / "unseen-out.csv")
    assert result.exit_code == 0, result.output
    probability = pd.read_csv(workdir / "unseen-out.csv")["failure probability"]
    assert len(probability) == 40 and probability.between(0, 1).all()


# -- models that cannot be used ----------------------------------------------------------
def _damaged_model(binary_model, tmp_path: Path, how: str) -> Path:
    folder = shutil.copytree(binary_model.folder, tmp_path / "model")
    path = folder / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if how == "tampered":
        manifest["state"]["thresholds"] = [0.999]
    else:
        manifest.pop("manifest_sha256")
        manifest["format_version"] = FORMAT_VERSION + 1
        manifest["manifest_sha256"] = sha256_json(manifest)
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return folder


@pytest.mark.parametrize("command", ["predict", "evaluate", "explain", "info"])
@pytest.mark.parametrize("problem", ["not a model", "newer format", "tampered"])
def test_models_that_cannot_be_used(binary_model, workdir, command, problem):
    if problem == "not a model":
        model = workdir / "reports"
        model.mkdir()
        (model / "notes.txt").write_text("shift report")
        expected = ["is not a shopfloor model"]
    elif problem == "newer format":
        model, expected = _damaged_model(binary_model, workdir, "newer"), ["upgrade shopfloor"]
    else:
        model, expected = _damaged_model(binary_model, workdir, "tampered"), ["modified since the model was saved"]
    args = {"predict": ["--data", workdir / "new.csv", "--out", workdir / "out.csv"],
            "evaluate": ["--data", workdir / "new.csv", "--json", workdir / "out.json"],
            "explain": ["--data", workdir / "new.csv", "--out", workdir / "out.csv"],
            "info": []}[command]
    before = files_under(workdir)
    assert_refused(shopfloor(command, "--model", model, *args), str(model), *expected)
    assert files_under(workdir) == before


# -- the happy path ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    failure_table(240, seed=0).to_csv(folder / "train.csv", index=False)
    failure_table(60, seed=1).to_csv(folder / "new.csv", index=False)
    result = shopfloor("train", "tabular", "--data", folder / "train.csv", "--target", "failure",
                       "--out", folder / "model", "--cv", "2", *FAST)
    assert result.exit_code == 0, result.output
    assert "2-fold cross-validation" in result.stderr and "saved" in result.stderr
    return folder


def test_train_writes_a_model_with_cross_validation(trained):
    assert sorted(p.name for p in (trained / "model").iterdir()) == [MANIFEST, "model.safetensors"]
    manifest = json.loads((trained / "model" / MANIFEST).read_text(encoding="utf-8"))
    cv = manifest["state"]["cross_validation"]
    assert cv["folds"] == 2 and len(cv["per_fold"]) == 2 and set(cv["mean"]) == set(CLASSIFICATION_KEYS)
    assert manifest["params"]["bags"] == 2 and manifest["params"]["max_epochs"] == 4


def test_evaluate_writes_flat_json(trained):
    result = shopfloor("evaluate", "--model", trained / "model", "--data", trained / "new.csv",
                       "--json", trained / "metrics.json")
    assert result.exit_code == 0, result.output
    metrics = json.loads((trained / "metrics.json").read_text())
    assert set(metrics) == set(CLASSIFICATION_KEYS)
    assert all(isinstance(v, float) for v in metrics.values())
    assert 0 <= metrics["accuracy"] <= 1 and -1 <= metrics["mcc"] <= 1
    assert "accuracy" in result.stdout


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_predict_keeps_ids_and_writes_probabilities_and_decisions(trained, suffix):
    out = trained / f"predictions{suffix}"
    result = shopfloor("predict", "--model", trained / "model", "--data", trained / "new.csv", "--out", out,
                       "--chunk-rows", "25")
    assert result.exit_code == 0, result.output
    assert "60 rows" in result.stderr
    table = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert list(table.columns) == ["UDI", "Product ID", "failure probability", "failure predicted"]
    new = pd.read_csv(trained / "new.csv")
    assert table["UDI"].tolist() == new["UDI"].tolist() and table["Product ID"].tolist() == new["Product ID"].tolist()
    assert table["failure probability"].between(0, 1).all() and set(table["failure predicted"]) <= {0, 1}


def test_explain_writes_attributions(trained):
    result = shopfloor("explain", "--model", trained / "model", "--data", trained / "new.csv",
                       "--out", trained / "why.csv")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(trained / "why.csv")
    assert len(table) == 60
    assert {"UDI", "prediction", "baseline", "Torque [Nm]", "Rotational speed [rpm]", "Type"} <= set(table.columns)


def test_info_describes_the_model(trained):
    result = shopfloor("info", "--model", trained / "model")
    assert result.exit_code == 0, result.output
    assert "tabular (binary)" in result.stdout and "Torque [Nm]" in result.stdout
    assert "out-of-fold validation" in result.stdout  # the label every task but forecasting keeps


def test_regression_evaluate_keys(tmp_path):
    kpi_table(200, seed=0).to_csv(tmp_path / "kpi.csv", index=False)
    result = shopfloor("train", "tabular", "--data", tmp_path / "kpi.csv", "--target", "kpi",
                       "--out", tmp_path / "model", *FAST)
    assert result.exit_code == 0, result.output
    result = shopfloor("evaluate", "--model", tmp_path / "model", "--data", tmp_path / "kpi.csv",
                       "--json", tmp_path / "metrics.json")
    assert result.exit_code == 0, result.output
    assert set(json.loads((tmp_path / "metrics.json").read_text())) == {*REGRESSION_KEYS, "interval_coverage"}


@pytest.mark.slow
def test_real_ai4i_subsample_end_to_end(shared_data, tmp_path):
    source = shared_data / "ai4i2020" / "ai4i2020.csv"
    if not source.is_file():
        pytest.skip(f"{source} is absent from the shared data folder")
    frame = pd.read_csv(source, encoding="utf-8-sig").sample(800, random_state=0)
    frame.iloc[:600].to_csv(tmp_path / "train.csv", index=False, encoding="utf-8-sig")  # with the BOM, as shipped
    frame.iloc[600:].drop(columns=["Machine failure"]).to_csv(tmp_path / "new.csv", index=False, sep=";",
                                                             decimal=",")
    result = shopfloor("train", "tabular", "--data", tmp_path / "train.csv", "--target", "Machine failure",
                       *[arg for name in ["TWF", "HDF", "PWF", "OSF", "RNF"] for arg in ("--drop", name)],
                       "--out", tmp_path / "model", *FAST)
    assert result.exit_code == 0, result.output
    result = _predict(tmp_path / "model", tmp_path / "new.csv", tmp_path / "out.parquet")
    assert result.exit_code == 0, result.output  # TWF..RNF are extra here: a warning, not an error
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["UDI", "Product ID", "Machine failure probability", "Machine failure predicted"]
    assert out["UDI"].tolist() == frame["UDI"].iloc[600:].tolist()


# -- the real executable -----------------------------------------------------------------
def _run(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shopfloor", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_help_runs():
    done = _run("--help")
    assert done.returncode == 0, done.stderr
    for command in ("train", "predict", "evaluate", "explain", "info"):
        assert command in done.stdout


def test_real_exit_code_for_a_missing_file(tmp_path):
    done = _run("train", "tabular", "--data", tmp_path / "absent.csv", "--target", "failure",
                "--out", tmp_path / "model")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"error: {tmp_path / 'absent.csv'}: no such file"]
    assert list(tmp_path.iterdir()) == []


def test_real_exit_code_for_a_tampered_model(binary_model, tmp_path):
    model = _damaged_model(binary_model, tmp_path, "tampered")
    failure_table(10, seed=2).to_csv(tmp_path / "new.csv", index=False)
    done = _run("predict", "--model", model, "--data", tmp_path / "new.csv", "--out", tmp_path / "out.csv")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "modified since the model was saved" in lines[0]
    assert not (tmp_path / "out.csv").exists()
