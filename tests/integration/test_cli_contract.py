"""The command line asks the estimator: what a task lacks is one line and exit 2, never a wrong-task answer.

Run through the real executable on the saved-model fixtures, as a shell sees it (exit code, stderr).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

from conftest import FIXTURES

from shopfloor.artifacts import MANIFEST

MODELS = FIXTURES / "models"


def _run(*args, python: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *python, "-m", "shopfloor", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def _one_error_line(done: subprocess.CompletedProcess, *fragments: str) -> str:
    assert done.returncode == 2, done.stderr[-800:]
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def test_help_imports_no_torch():
    """`shopfloor --help` answers at once: the tasks' command modules are read, but no estimator, torch or pandas."""
    done = _run("--help", python=("-X", "importtime"))
    assert done.returncode == 0, done.stderr[-800:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert "shopfloor.cli.app" in imported and "shopfloor.cli.line" in imported
    assert "shopfloor.tasks.tabular.command" in imported and "shopfloor.tasks.optimize.command" in imported
    heavy = [name for name in imported if name.split(".")[0] in ("torch", "pandas", "numpy")
             or name.startswith("shopfloor.tasks") and name.rpartition(".")[2] not in ("tasks", "command")
             and name.count(".") > 2]
    assert not heavy


def test_exporting_an_optimiser_is_one_line_naming_the_task_and_the_capability(tmp_path):
    done = _run("export", "--model", MODELS / "optimize-v1", "--out", tmp_path / "optimiser.onnx")
    _one_error_line(done, "process optimiser", "ONNX export")
    assert list(tmp_path.iterdir()) == []


def test_a_true_rul_file_for_a_table_model_is_refused_by_evaluate_and_report(tmp_path):
    table = MODELS / "tabular-v1"
    evaluate = _run("evaluate", "--model", table, "--data", MODELS / "tabular-v1.inputs.csv", "--rul", tmp_path / "x.txt")
    _one_error_line(evaluate, "--rul")
    report = _run("report", "--model", table, "--out", tmp_path / "page.html", "--rul", tmp_path / "x.txt")
    _one_error_line(report, "--rul")
    assert list(tmp_path.iterdir()) == []


def test_info_of_a_task_this_shopfloor_does_not_know_names_it(tmp_path):
    """It used to fall through to the table model's lines and print 'targets: None'."""
    folder = shutil.copytree(MODELS / "tabular-v1", tmp_path / "model")
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    manifest.pop("manifest_sha256")
    manifest["task"] = "scheduling"  # a task no shopfloor has (it said "forecast" before issue 18)
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    manifest["manifest_sha256"] = hashlib.sha256(canonical.encode()).hexdigest()  # edited with care: it checks out
    (folder / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    line = _one_error_line(_run("info", "--model", folder), "'scheduling'")
    assert "targets" not in line
