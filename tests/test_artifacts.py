"""Model folders: safetensors + JSON only, identical predictions after loading, damage and tampering refused."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES, failure_table, kpi_table, mode_table

import shopfloor
from shopfloor import TabularModel
from shopfloor.artifacts import FORMAT_VERSION, MANIFEST, WEIGHTS, read_manifest, sha256_json
from shopfloor.errors import ModelTooNew, NotAModel

TINY = dict(bags=2, members=2, hidden=16, max_epochs=3, progress=False)
PICKLE_HEADERS = [b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"]
SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def _kinds():
    modes = mode_table(240, seed=0)
    return {
        "binary": (failure_table(240, seed=0), "failure"),
        "multiclass": (modes.drop(columns=["second failure"]), "mode"),
        "multilabel": (modes.assign(hot=(modes["vibration"] > 0.3).astype(int)).drop(columns=["mode"]),
                       ["second failure", "hot"]),
        "regression": (kpi_table(240, seed=0), "kpi"),
    }


@pytest.fixture(scope="module", params=["binary", "multiclass", "multilabel", "regression"])
def saved(request, tmp_path_factory):
    frame, target = _kinds()[request.param]
    model = TabularModel(target, **TINY).fit(frame)
    folder = model.save(tmp_path_factory.mktemp(request.param) / "model")
    return request.param, model, folder, frame


def _copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / "copy")


def _rewrite_manifest(folder, change, recompute_checksum: bool):
    path = folder / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest.pop("manifest_sha256")
    change(manifest)
    manifest["manifest_sha256"] = sha256_json(manifest) if recompute_checksum else "0" * 64
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")


def test_save_load_gives_identical_predictions(saved):
    kind, model, folder, frame = saved
    loaded = shopfloor.load(folder)
    new = frame.sample(frac=1.0, random_state=1)
    before, after = model.predict(new), loaded.predict(new)
    pd.testing.assert_frame_equal(before, after, check_exact=True)
    for column in before.columns:
        assert np.array_equal(before[column].to_numpy(), after[column].to_numpy()), column
    if kind != "regression":
        assert np.array_equal(model.predict_proba(new), loaded.predict_proba(new))
    assert loaded.get_params() == model.get_params()
    assert loaded.validation_metrics_ == model.validation_metrics_
    assert loaded.evaluate(new) == model.evaluate(new)


def test_folder_holds_only_safetensors_and_json(saved):
    _, _, folder, _ = saved
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, WEIGHTS]
    manifest_bytes = (folder / MANIFEST).read_bytes()
    json.loads(manifest_bytes.decode("utf-8"))
    raw = (folder / WEIGHTS).read_bytes()
    for data in (manifest_bytes, raw):
        assert not any(data.startswith(h) for h in PICKLE_HEADERS), "a pickle stream"
        assert not data.startswith(b"PK\x03\x04"), "a zip archive (torch.save)"
    # safetensors: u64 header length, a JSON header, then nothing but the tensors it lists
    (length,) = struct.unpack("<Q", raw[:8])
    header_bytes = raw[8:8 + length]
    assert not any(h in header_bytes for h in PICKLE_HEADERS)
    header = json.loads(header_bytes.decode("utf-8"))
    header.pop("__metadata__", None)
    spans = sorted(tuple(t["data_offsets"]) for t in header.values())
    assert spans[0][0] == 0 and spans[-1][1] == len(raw) - 8 - length
    assert all(a[1] == b[0] for a, b in pairwise(spans)), "gaps between tensors"
    for info in header.values():
        start, stop = info["data_offsets"]
        assert stop - start == int(np.prod(info["shape"])) * SAFETENSORS_BYTES[info["dtype"]]


def test_a_tampered_threshold_is_refused(binary_model, tmp_path):
    folder = _copy(binary_model.folder, tmp_path)
    path = folder / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["state"]["thresholds"] = [0.01]  # edited by hand, checksum left as it was
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    with pytest.raises(NotAModel, match="modified since the model was saved"):
        shopfloor.load(folder)


def test_reformatting_the_manifest_is_not_tampering(binary_model, tmp_path):
    folder = _copy(binary_model.folder, tmp_path)
    path = folder / MANIFEST
    path.write_text(json.dumps(json.loads(path.read_text(encoding="utf-8")), indent=4), encoding="utf-8")
    new = binary_model.new
    assert np.array_equal(shopfloor.load(folder).predict_proba(new), binary_model.model.predict_proba(new))


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "delete", "swap with another model"])
def test_changed_weights_are_refused(binary_model, saved, tmp_path, damage):
    folder = _copy(binary_model.folder, tmp_path)
    weights = folder / WEIGHTS
    raw = bytearray(weights.read_bytes())
    if damage == "flip a byte":
        raw[-3] ^= 0x01
        weights.write_bytes(bytes(raw))
    elif damage == "truncate":
        weights.write_bytes(bytes(raw[: len(raw) // 2]))
    elif damage == "delete":
        weights.unlink()
    else:
        shutil.copyfile(saved[2] / WEIGHTS, weights)
    with pytest.raises(NotAModel, match=WEIGHTS):
        shopfloor.load(folder)


def test_a_newer_format_version_asks_for_an_upgrade(binary_model, tmp_path):
    folder = _copy(binary_model.folder, tmp_path)
    _rewrite_manifest(folder, lambda m: m.update(format_version=FORMAT_VERSION + 1), recompute_checksum=True)
    with pytest.raises(ModelTooNew, match=f"model format {FORMAT_VERSION + 1}.*upgrade shopfloor"):
        shopfloor.load(folder)


def test_an_unknown_task_is_refused(binary_model, tmp_path):
    folder = _copy(binary_model.folder, tmp_path)
    _rewrite_manifest(folder, lambda m: m.update(task="weather"), recompute_checksum=True)
    with pytest.raises(NotAModel, match="'weather' model"):
        shopfloor.load(folder)


def test_unknown_parameters_are_refused(binary_model, tmp_path):
    folder = _copy(binary_model.folder, tmp_path)
    _rewrite_manifest(folder, lambda m: m["params"].update(run_this="rm -rf /"), recompute_checksum=True)
    with pytest.raises(NotAModel, match="run_this"):
        shopfloor.load(folder)


@pytest.mark.parametrize("case", ["absent", "empty", "other files", "a file", "bad json", "foreign manifest",
                                  "no version"])
def test_folders_that_are_not_models(tmp_path, case):
    folder = tmp_path / "thing"
    if case == "a file":
        folder.write_text("hello")
    elif case != "absent":
        folder.mkdir()
    if case == "other files":
        (folder / "notes.txt").write_text("shift report")
    elif case == "bad json":
        (folder / MANIFEST).write_text("{not json")
    elif case == "foreign manifest":
        (folder / MANIFEST).write_text(json.dumps({"name": "my web app", "icons": []}))
    elif case == "no version":
        (folder / MANIFEST).write_text(json.dumps({"format": "shopfloor-model"}))
    with pytest.raises(NotAModel, match=str(folder)):
        shopfloor.load(folder)


@pytest.mark.parametrize("content", ["notes", "foreign manifest", "a file"])
def test_saving_over_something_that_is_not_a_model_is_refused(binary_model, tmp_path, content):
    target = tmp_path / "reports"
    if content == "a file":
        target.write_text("shift report")
    else:
        target.mkdir()
        (target / "notes.txt").write_text("shift report")
        if content == "foreign manifest":
            (target / MANIFEST).write_text(json.dumps({"name": "my web app"}))
    before = {p.name: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(NotAModel, match="refusing to overwrite"):
        binary_model.model.save(target)
    assert {p.name: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["reports"]  # no temporary folder left behind


def test_saving_over_a_model_or_an_empty_folder_works(binary_model, saved, tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    binary_model.model.save(target)
    saved[1].save(target)  # replaces the old model
    assert sorted(p.name for p in target.iterdir()) == [MANIFEST, WEIGHTS]
    assert read_manifest(target)["state"]["kind"] == saved[1].kind_
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


@pytest.mark.parametrize("version", range(1, FORMAT_VERSION + 1))
def test_every_format_version_still_loads_and_predicts_the_same(version):
    """One saved artifact per format version (tests/fixtures/make_model_v*.py) must keep loading."""
    models = FIXTURES / "models"
    folder = models / f"tabular-v{version}"
    assert folder.is_dir(), f"no fixture for model format {version}: write tests/fixtures/make_model_v{version}.py"
    assert read_manifest(folder)["format_version"] == version
    inputs = pd.read_csv(models / f"tabular-v{version}.inputs.csv")
    expected = pd.read_csv(models / f"tabular-v{version}.expected.csv")
    model = shopfloor.load(folder)
    got = model.predict(inputs)
    # outputs keep the date (time) columns since issue 13.6; the format-1 table was written before
    added = [c for c in got.columns if c not in set(expected.columns)]
    assert added == (model.schema_.dates if version == 1 else [])
    got = got.drop(columns=added)
    assert list(got.columns) == list(expected.columns)
    for column in expected.columns:
        if column.endswith("probability"):
            np.testing.assert_allclose(got[column], expected[column], atol=1e-5, rtol=0)
        else:
            assert got[column].tolist() == expected[column].tolist(), column
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 200_000, f"keep the fixture small ({size} bytes)"


def test_a_manifest_nested_past_the_parser_is_refused_before_parsing(binary_model, tmp_path):
    """100,000 brackets overflowed the JSON parser's stack: a RecursionError traceback in the CLI and a 500."""
    folder = _copy(binary_model.folder, tmp_path)
    (folder / MANIFEST).write_text('{"format": "shopfloor-model", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(NotAModel, match=r"nests lists or objects more than \d+ deep"):
        read_manifest(folder)


@pytest.mark.parametrize("key, value", [("state", "mlp"), ("params", []), ("task", 7), ("format_version", True),
                                        ("shopfloor_version", None)])
def test_top_level_keys_of_the_wrong_type_name_the_key(binary_model, tmp_path, key, value):
    folder = _copy(binary_model.folder, tmp_path)
    _rewrite_manifest(folder, lambda m: m.update({key: value}), recompute_checksum=True)
    with pytest.raises(NotAModel, match=f"'{key}' should be|no valid {key}"):
        shopfloor.load(folder)


def test_a_state_of_the_wrong_shape_is_a_damaged_model_not_a_traceback(binary_model, tmp_path):
    folder = _copy(binary_model.folder, tmp_path)
    _rewrite_manifest(folder, lambda m: m["state"].update(architecture="mlp"), recompute_checksum=True)
    with pytest.raises(NotAModel, match="damaged"):
        shopfloor.load(folder)


# -- sizes a manifest declares, against its weights (a checksum anyone can recompute proves nothing) -------
def _set(path: str, value):
    def change(manifest):
        *parents, last = path.split(".")
        node = manifest
        for part in parents:
            node = node[part]
        node[last] = value
    return change


@pytest.mark.parametrize(("path", "value", "named"), [
    ("state.architecture.n_numeric", 5, "state.architecture.n_numeric"),
    ("state.architecture.n_numeric", 1e6, "state.architecture.n_numeric"),
    ("state.architecture.members", 3, "state.architecture.members"),
    ("params.hidden", 17, "params.hidden"),
    ("params.depth", 3, "params.depth"),
    ("params.n_bins", 15, "params.n_bins"),
    ("state.architecture.pairs", False, "state.architecture.pairs"),
    ("state.schema.categorical.Type", ["H", "L", "M", "X"], "'net.category_embeddings.0.weight'"),
])
def test_a_declared_size_that_disagrees_with_the_weights_is_refused_by_name(tmp_path, path, value, named):
    folder = _copy(FIXTURES / "models" / "tabular-v1", tmp_path)
    _rewrite_manifest(folder, _set(path, value), recompute_checksum=True)
    with pytest.raises(NotAModel, match=re.escape(named)) as refused:
        shopfloor.load(folder)
    assert "could not be restored" not in str(refused.value)  # checked before building, not a torch error


def test_absurd_declared_sizes_are_refused_before_any_memory_is_taken(tmp_path):
    """The field test's cases: n_numeric = 1e6 grew `predict` to 22 GB, hidden = 1e7 to 10.5 GB. The load runs
    in a process limited to 3 GB of address space, so that a regression fails here instead of swapping."""
    folders = []
    for path, value in (("state.architecture.n_numeric", 10**6), ("params.hidden", 10**7)):
        folder = shutil.copytree(FIXTURES / "models" / "tabular-v1", tmp_path / path)
        _rewrite_manifest(folder, _set(path, value), recompute_checksum=True)
        folders.append(str(folder))
    script = ("import resource, sys\n"
              "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
              "import shopfloor\n"
              "for folder in sys.argv[1:]:\n"
              "    try:\n"
              "        shopfloor.load(folder)\n"
              "    except Exception as err:\n"
              "        print(type(err).__name__, err)\n")
    done = subprocess.run([sys.executable, "-c", script, *folders], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout + done.stderr
    assert lines[0].startswith("NotAModel") and "state.architecture.n_numeric is 1000000" in lines[0]
    assert lines[1].startswith("NotAModel") and "params.hidden is 10000000" in lines[1]
    assert "'net.head.weight'" in lines[1]


# -- interrupted saves (14.11) ----------------------------------------------------------------------------
KILLED_SAVE = """
import sys, time
import shopfloor, shopfloor.artifacts as artifacts
model = shopfloor.load(sys.argv[1])
swap, step = artifacts._exchange, sys.argv[3]
def paused(a, b):
    if step == "before the swap":
        print("paused", flush=True); time.sleep(120)
    done = swap(a, b)
    print("paused", flush=True); time.sleep(120)
    return done
artifacts._exchange = paused
model.save(sys.argv[2])
"""


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("step", ["before the swap", "after the swap"])
def test_a_save_killed_at_any_step_leaves_a_whole_model_and_the_next_save_clears_its_debris(binary_model, tmp_path,
                                                                                            step):
    target = tmp_path / "model"
    binary_model.model.save(target)
    before = read_manifest(target)
    child = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(FIXTURES / "models" / "tabular-v1"), str(target),
                              step], stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert child.stdout.readline().strip() == "paused"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".model.tmp-{child.pid}", "model"]
    after = read_manifest(target)
    assert after == before if step == "before the swap" else after["params"]["hidden"] == 16  # the fixture's
    shopfloor.load(target)
    binary_model.model.save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_debris_of_dead_saves_is_removed_and_a_running_save_is_left_alone(binary_model, tmp_path):
    dead, running = _dead_pid(), os.getppid()
    for name in (f".model.tmp-{dead}", f".model.old-{dead}", f".model.tmp-{running}", f".other.tmp-{dead}"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"half a model")
    binary_model.model.save(tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".model.tmp-{running}", f".other.tmp-{dead}", "model"]


def test_saving_over_a_model_works_without_an_atomic_exchange(binary_model, tmp_path, monkeypatch):
    import shopfloor.artifacts as artifacts

    monkeypatch.setattr(artifacts, "_exchange", lambda a, b: False)
    target = tmp_path / "model"
    shutil.copytree(FIXTURES / "models" / "tabular-v1", target)
    binary_model.model.save(target)
    assert read_manifest(target)["params"]["hidden"] == binary_model.model.hidden
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


# -- the one atomic write (15) --------------------------------------------------------------------------
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    from shopfloor.artifacts import atomic_write

    target = atomic_write(tmp_path / "metrics.json", '{"f1": 0.8}\n')

    def half_then_crash(path):
        path.write_text('{"f1": 0.')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_crash)
    assert target.read_text() == '{"f1": 0.8}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_killed_writer_debris_is_removed_by_the_next_write_and_modes_are_kept(tmp_path):
    from shopfloor.artifacts import atomic_write

    dead = _dead_pid()
    (tmp_path / f".tokens.json.tmp-{dead}-1").write_text("{half")
    atomic_write(tmp_path / "tokens.json", b"{}\n", mode=0o600)
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.json"]
    assert (tmp_path / "tokens.json").stat().st_mode & 0o777 == 0o600


def test_a_create_only_write_keeps_what_was_there_first_and_leaves_no_temporary(tmp_path):
    from shopfloor.artifacts import atomic_write

    atomic_write(tmp_path / "key", "first\n", mode=0o600, replace=False)
    with pytest.raises(FileExistsError):
        atomic_write(tmp_path / "key", "second\n", mode=0o600, replace=False)
    assert (tmp_path / "key").read_text() == "first\n"
    assert [p.name for p in tmp_path.iterdir()] == ["key"]


def test_every_file_the_package_writes_goes_through_the_one_atomic_write():
    """Six copies of the same few lines had drifted apart (a fixed temporary name never cleaned up, JSON
    written in place); a new copy should be a conscious exception listed here."""
    exceptions = {"artifacts.py": "the atomic write itself and the folder swap",
                  "registry.py": "a checked version folder renamed into place",
                  "data/tables.py": "a table written in chunks, renamed when complete",
                  "cli/spark.py": "a Parquet folder written by Spark's executors, renamed when the job succeeded",
                  "kits/quantise.py": "the float and int8 files, scored in a temporary folder, moved in only when int8 "
                                      "keeps the tolerance"}
    source = Path(shopfloor.__file__).parent
    found = sorted(str(p.relative_to(source)) for p in source.rglob("*.py") if "os.replace(" in p.read_text())
    assert found == sorted(exceptions)
