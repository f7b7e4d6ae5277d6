"""The model registry: versions, promote, roll back, names that cannot walk out of the folder."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import subprocess
import sys

import pytest
from conftest import FIXTURES
from manifests import edited_copy

import shopfloor
from shopfloor.artifacts import MANIFEST, WEIGHTS
from shopfloor.errors import NotAModel
from shopfloor.registry import BadName, Registry, UnknownModel
from shopfloor.registry_signing import KEY, SIGNATURE

SAVED = FIXTURES / "models" / "tabular-v1"


@pytest.fixture
def registry(tmp_path):
    return Registry(tmp_path / "models", create=True)


def test_add_numbers_versions_and_makes_the_newest_live(registry):
    assert registry.add("failure", SAVED) == 1
    assert registry.add("failure", SAVED) == 2
    assert registry.versions("failure") == [1, 2]
    assert registry.live_version("failure") == 2
    live = registry.live("failure")
    assert (live.version, live.task) == (2, "tabular")
    assert registry.names() == ["failure"]


def test_staged_version_is_not_live_until_promoted(registry):
    registry.add("failure", SAVED)
    assert registry.add("failure", SAVED, promote=False) == 2
    assert registry.live_version("failure") == 1
    registry.promote("failure", 2)
    assert registry.live("failure").version == 2


def test_rollback_returns_to_the_previous_live_version(registry):
    for _ in range(3):
        registry.add("failure", SAVED)
    assert registry.rollback("failure") == 2
    assert registry.live("failure").version == 2
    assert registry.rollback("failure") == 3  # the version before 2 went live was 3
    events = [h["event"] for h in registry.state("failure")["history"]]
    assert events.count("rollback") == 2


def test_rollback_without_history_is_refused(registry):
    registry.add("failure", SAVED)
    with pytest.raises(UnknownModel, match="no earlier live version"):
        registry.rollback("failure")


def test_another_process_promotion_is_seen(registry, tmp_path):
    registry.add("failure", SAVED)
    registry.add("failure", SAVED, promote=False)
    assert registry.live("failure").version == 1
    Registry(registry.root).promote("failure", 2)  # as the CLI would, from another process
    assert registry.live("failure").version == 2


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden", "x" * 65, "tokens.json", "a b", "..", "na\0me"])
def test_names_that_could_reach_outside_are_refused(registry, name):
    with pytest.raises(BadName):
        registry.live(name)
    with pytest.raises(BadName):
        registry.add(name, SAVED)


def test_unknown_model_and_version_name_what_exists(registry):
    registry.add("failure", SAVED)
    with pytest.raises(UnknownModel, match="models: failure"):
        registry.live("rul")
    with pytest.raises(UnknownModel, match=r"versions: 1\)"):
        registry.promote("failure", 7)


def test_only_shopfloor_model_folders_can_be_added(registry, tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(NotAModel):
        registry.add("failure", other)
    assert registry.names() == []


def test_a_tampered_version_is_refused_at_load(registry):
    registry.add("failure", SAVED)
    folder = registry.path("failure", 1)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["params"]["target"] = "something else"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(NotAModel, match="modified"):
        registry.live("failure")


def test_a_missing_registry_says_how_to_create_one(tmp_path):
    with pytest.raises(UnknownModel, match="shopfloor models add"):
        Registry(tmp_path / "nowhere")


def test_deleted_live_folder_is_reported(registry):
    registry.add("failure", SAVED)
    shutil.rmtree(registry.path("failure", 1))
    with pytest.raises(UnknownModel, match="no version 1"):
        registry.live("failure")


def test_an_alarm_rule_is_kept_per_model_checked_against_its_task_and_removable(registry):
    from shopfloor.alarms import BadAlarm

    registry.add("failure", SAVED)
    assert registry.alarm("failure") is None
    rule = registry.set_alarm("failure", "risk>=0.7", "risk<0.5")
    assert registry.alarm("failure") == rule and rule.text == "risk>=0.7 (clears at risk<0.5)"
    state = json.loads((registry.root / "failure" / "registry.json").read_text())
    assert state["alarm"] == {"enter": "risk>=0.7", "clear": "risk<0.5"} and state["history"][-1]["event"] == "alarm"
    assert [e["alarm"] for e in registry.describe()] == [{"enter": "risk>=0.7", "clear": "risk<0.5"}]
    for enter, clear, words in [("rul<=20", None, "only remaining-useful-life models give"),
                                ("risk>=0.7", "risk<=0.8", "both hold"), ("risk>=0.7", "risk>=0.9", "same way"),
                                ("risk>=0.7", "rul>30", "same value"), ("risk=>0.7", None, "not an alarm condition"),
                                ("torque>=40", None, "not a value an alarm can watch")]:
        with pytest.raises(BadAlarm, match=words):
            registry.set_alarm("failure", enter, clear)
    assert registry.alarm("failure") == rule  # a refused rule changes nothing
    registry.set_alarm("failure", None)
    assert registry.alarm("failure") is None


def test_a_name_with_a_trailing_newline_is_refused(registry):
    """'$' matches before a final newline: `models add $'nl\\n'` made a folder with a newline in its name."""
    with pytest.raises(BadName):
        registry.add("nl\n", SAVED)
    assert [p.name for p in registry.root.iterdir() if p.name != KEY] == []


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"live": "2", "history": []}', '{"live": 1, "history": 3}',
                                     "[" * 100_000])
def test_a_damaged_registry_file_is_one_model_s_problem(registry, content):
    registry.add("press", SAVED)
    registry.add("failure", SAVED)
    (registry.root / "press" / "registry.json").write_text(content)
    entries = {e["name"]: e for e in Registry(registry.root).describe()}
    assert entries["failure"]["live"] == 1 and "problem" not in entries["failure"]
    assert "press/registry.json" in entries["press"]["problem"] and entries["press"]["live"] is None
    with pytest.raises(NotAModel, match="registry.json"):
        Registry(registry.root).live("press")


# -- the registry's signature (14.7) and what `add` lets in (14.8) ------------------------------------
def test_the_signing_key_is_random_private_and_made_with_the_registry(tmp_path):
    keys = []
    for name in ("a", "b"):
        Registry(tmp_path / name, create=True)
        path = tmp_path / name / KEY
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        keys.append(path.read_text().strip())
    assert all(len(bytes.fromhex(k)) == 32 for k in keys) and keys[0] != keys[1]


def test_registries_opened_at_once_share_one_whole_key(tmp_path):
    """The key is made once and whole (written aside, then linked into place only if none is there): processes
    opening a new registry at the same moment all sign with the same key, and a kill never leaves it empty."""
    from concurrent.futures import ThreadPoolExecutor

    from shopfloor.registry_signing import registry_key

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: registry_key(tmp_path, create=True), range(16)))
    assert len(keys) == 1 and len(keys.pop()) == 32
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY]


@pytest.mark.parametrize("change", ["threshold, checksum recomputed", "weights of another model, checksums recomputed",
                                    "signature removed", "signature of another version"])
def test_a_version_changed_without_the_key_is_refused(registry, tmp_path, change):
    registry.add("failure", SAVED)
    registry.add("failure", SAVED, promote=False)
    folder = registry.path("failure", 1)
    if change.startswith("threshold"):
        edited = edited_copy(folder, tmp_path / "edited", state__thresholds=[0.01])
        shutil.copyfile(edited / MANIFEST, folder / MANIFEST)
    elif change.startswith("weights"):
        other = tmp_path / "other"
        other.mkdir()
        (other / WEIGHTS).write_bytes((folder / WEIGHTS).read_bytes()[:-4] + b"\0\0\0\0")
        edited = edited_copy(folder, tmp_path / "edited",
                             weights_sha256=hashlib.sha256((other / WEIGHTS).read_bytes()).hexdigest())
        shutil.copyfile(edited / MANIFEST, folder / MANIFEST)
        shutil.copyfile(other / WEIGHTS, folder / WEIGHTS)
    elif change == "signature removed":
        (folder / SIGNATURE).unlink()
    else:
        shutil.copyfile(registry.path("failure", 2) / SIGNATURE, folder / SIGNATURE)
    shopfloor.load(folder)  # the checksums alone do not notice: anyone can recompute them
    with pytest.raises(NotAModel, match="signature|signed|SIGNATURE"):
        Registry(registry.root).live("failure")
    with pytest.raises(NotAModel, match="add the model folder again|add its model folder again"):
        Registry(registry.root).load("failure", 1)
    assert Registry(registry.root).load("failure", 2).is_fitted  # the other version is untouched


def test_a_registry_whose_key_is_gone_trusts_nothing(registry):
    registry.add("failure", SAVED)
    (registry.root / KEY).unlink()
    with pytest.raises(NotAModel, match="no signing key"):
        Registry(registry.root).live("failure")


def _nothing_added(registry):
    assert registry.names() == []
    assert [p.name for p in registry.root.iterdir() if p.name not in (KEY, ".registry.lock")] == []


@pytest.mark.parametrize("link", ["passwd -> /etc/passwd", "loop -> loop", "weights -> elsewhere", "sub/deep -> /",
                                  "manifest -> elsewhere"])
def test_a_model_folder_with_a_symbolic_link_is_refused_and_leaves_nothing(registry, tmp_path, link):
    folder = shutil.copytree(SAVED, tmp_path / "model")
    if link.startswith("passwd"):
        (folder / "passwd").symlink_to("/etc/passwd")
    elif link.startswith("loop"):
        (folder / "loop").symlink_to(folder / "loop")
    elif link.startswith(("weights", "manifest")):
        name = WEIGHTS if link.startswith("weights") else MANIFEST
        shutil.move(folder / name, tmp_path / "elsewhere")
        (folder / name).symlink_to(tmp_path / "elsewhere")
    else:
        (folder / "sub").mkdir()
        (folder / "sub" / "deep").symlink_to("/")
    with pytest.raises(NotAModel, match="symbolic link"):
        registry.add("failure", folder)
    _nothing_added(registry)


@pytest.mark.parametrize("damage", ["weights of another model", "a size edited, checksum recomputed", "no weights"])
def test_a_model_that_does_not_load_is_not_added(registry, binary_model, tmp_path, damage):
    folder = shutil.copytree(SAVED, tmp_path / "model")
    if damage == "weights of another model":
        shutil.copyfile(binary_model.folder / WEIGHTS, folder / WEIGHTS)
    elif damage == "no weights":
        (folder / WEIGHTS).unlink()
    else:
        folder = edited_copy(SAVED, tmp_path / "edited", params__hidden=10**7)
    with pytest.raises(NotAModel):
        registry.add("failure", folder)
    _nothing_added(registry)
    registry.add("failure", SAVED)
    assert sorted(p.name for p in registry.path("failure", 1).iterdir()) == [MANIFEST, WEIGHTS, SIGNATURE]


def test_only_the_model_files_are_copied(registry, tmp_path):
    folder = shutil.copytree(SAVED, tmp_path / "model")
    (folder / "notes.txt").write_text("trained on the March data")
    registry.add("failure", folder)
    assert sorted(p.name for p in registry.path("failure", 1).iterdir()) == [MANIFEST, WEIGHTS, SIGNATURE]


def test_an_add_killed_half_way_leaves_debris_that_the_next_add_removes(registry):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    registry.add("failure", SAVED)
    debris = registry.root / "failure" / f".add.tmp-{child.pid}-1"
    shutil.copytree(SAVED, debris)
    registry.add("failure", SAVED)
    assert sorted(p.name for p in (registry.root / "failure").iterdir()) == ["1", "2", "registry.json"]


def test_a_registry_from_before_signatures_is_signed_once_and_a_tampered_version_stays_refused(registry, tmp_path):
    registry.add("failure", SAVED)
    registry.add("failure", SAVED, promote=False)
    (registry.path("failure", 1) / SIGNATURE).unlink()  # as a registry written before signatures left it
    with pytest.raises(NotAModel, match="models sign"):
        Registry(registry.root).live("failure")
    edited = edited_copy(registry.path("failure", 2), tmp_path / "edited", state__thresholds=[0.01])
    shutil.copyfile(edited / MANIFEST, registry.path("failure", 2) / MANIFEST)  # changed without the key
    assert Registry(registry.root).sign() == [("failure", 1)]
    assert Registry(registry.root).live("failure").version == 1
    with pytest.raises(NotAModel, match="does not match the signature"):
        Registry(registry.root).load("failure", 2)
    assert Registry(registry.root).sign("failure") == []
