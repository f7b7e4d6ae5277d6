"""The real executable: help that says what it means, and damaged manifests as one line instead of a traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from conftest import failure_table

from shopfloor.artifacts import MANIFEST, sha256_json


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shopfloor", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_help_keeps_brackets_and_shows_flags_as_flags():
    """rich markup ate '[pretrained]' ('needs shopfloor'), and every flag showed '<bool>' though it takes no value."""
    done = _run("train", "defects", "--help")
    assert done.returncode == 0, done.stderr
    assert "shopfloor[pretrained]" in done.stdout
    assert "<bool>" not in done.stdout
    assert "--no-augment" in done.stdout and "--quiet" in done.stdout


def _edited(binary_model, tmp_path, name: str, change=None, text: str | None = None):
    folder = shutil.copytree(binary_model.folder, tmp_path / name)
    if text is not None:
        (folder / MANIFEST).write_text(text)
        return folder
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    manifest.pop("manifest_sha256")
    change(manifest)
    manifest["manifest_sha256"] = sha256_json(manifest)  # edited with care: the checksum matches
    (folder / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def test_damaged_manifests_are_one_line_for_info_and_predict(binary_model, tmp_path):
    failure_table(5, seed=2).to_csv(tmp_path / "new.csv", index=False)
    deep = _edited(binary_model, tmp_path, "deep", text='{"format": "shopfloor-model", "x": ' + "[" * 100_000
                   + "]" * 100_000 + "}")
    architecture = _edited(binary_model, tmp_path, "architecture", lambda m: m["state"].update(architecture="mlp"))
    schema = _edited(binary_model, tmp_path, "schema", lambda m: m["state"].update(schema="x"))
    state = _edited(binary_model, tmp_path, "state", lambda m: m.update(state="x"))
    predict = ("predict", "--data", tmp_path / "new.csv", "--out", tmp_path / "out.csv", "--model")
    cases = [(("info", "--model", deep), "deep"), ((*predict, deep), "deep"), ((*predict, architecture), "damaged"),
             (("info", "--model", schema), "damaged"), ((*predict, state), "'state' should be")]
    for command, words in cases:
        done = _run(*command)
        assert done.returncode == 2, (command, done.stderr[-500:])
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], (command, lines)
    assert not (tmp_path / "out.csv").exists()
