"""The model registry: named models, numbered versions, and which version is live.

A registry is a plain folder that the REST service, the stream worker and the CLI share:

    models/
      tokens.json              API tokens, hashed (see serve/auth.py)
      failure/
        registry.json          {"live": 2, "history": [{"version": 1, "event": "promote", "at": ...}, ...]}
        1/                     a model folder (model.safetensors + manifest.json)
        2/

Names and versions are checked against a strict pattern before any path is built from them,
so a name that arrives in a URL can never walk out of the registry. Models are loaded through
`shopfloor.load`, which reads only safetensors and JSON.

`add` copies only the model's two files, loads the copy to check it whole, and signs it; the service and
the stream load only versions whose signature matches (what is trusted, and why, is in `registry_signing`).
Changes take a lock on the registry folder (so that two processes adding or promoting at once cannot lose a
version or a history entry) and replace `registry.json` atomically; readers notice a promotion or a rollback
made by another process at their next look.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shopfloor.artifacts import atomic_write, read_manifest, remove_debris
from shopfloor.errors import NotAModel, ShopfloorError
from shopfloor.registry_signing import SIGNATURE, copy_model_files, refuse_links, registry_key, signature_check, write_signature

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")  # \Z: '$' would let a trailing newline through
STATE = "registry.json"


@contextlib.contextmanager
def locked_file(path: Path) -> Iterator[None]:
    """An exclusive lock between processes, held while the block runs (a lock file beside what it guards)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class UnknownModel(ShopfloorError):
    """A model name or version that the registry does not hold."""


class DamagedRegistry(NotAModel):
    """A model's registry.json that cannot be read (HTTP 503, as a damaged model folder)."""


class BadName(ShopfloorError):
    """A model name that could not be a folder name in the registry."""


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise BadName(f"'{name}' is not a valid model name: use 1-64 letters, digits, '-' or '_', starting with "
                      "a letter or digit")
    return name


@dataclass(frozen=True)
class LiveModel:
    name: str
    version: int
    task: str
    estimator: object


class Registry:
    """Versions of named models in one folder; thread-safe, and shared safely between processes."""

    def __init__(self, root: str | os.PathLike, create: bool = False):
        self.root = Path(root)
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
            registry_key(self.root, create=True)
        if not self.root.is_dir():
            raise UnknownModel(f"the model registry {self.root} does not exist: create it with "
                               f"'shopfloor models add --models {self.root} NAME MODEL_FOLDER'")
        self._lock = threading.Lock()
        self._loaded: dict[tuple[str, int], object] = {}
        self._states: dict[str, tuple[int, dict]] = {}  # name -> (mtime_ns of registry.json, its content)

    # -- reading ----------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and NAME.match(p.name) and (p / STATE).is_file())

    def versions(self, name: str) -> list[int]:
        folder = self._folder(name)
        return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())

    def state(self, name: str) -> dict:
        """The content of `<name>/registry.json`, re-read only when the file has changed."""
        path = self._folder(name) / STATE
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            raise UnknownModel(self._unknown(name)) from None
        cached = self._states.get(name)
        if cached and cached[0] == mtime:
            return cached[1]
        state = _checked_state(path)
        self._states[name] = (mtime, state)
        return state

    def live_version(self, name: str) -> int | None:
        return self.state(name).get("live")

    def alarm(self, name: str):
        """The model's alarm rule (an `AlarmRule`), or None when it has none of its own (see `set_alarm`)."""
        from shopfloor.alarms import AlarmRule

        rule = self.state(name).get("alarm")
        return AlarmRule.from_dict(rule) if rule else None

    def path(self, name: str, version: int | None = None) -> Path:
        """The model folder of a version (the live one by default), after checking both exist."""
        if version is None:
            version = self.live_version(name)
            if version is None:
                raise UnknownModel(f"model '{name}' has no live version: promote one with "
                                   f"'shopfloor models promote --models {self.root} {name} VERSION'")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise UnknownModel(f"'{version}' is not a version number (versions are 1, 2, 3, ...)")
        folder = self._folder(name) / str(version)
        if not folder.is_dir():
            raise UnknownModel(f"model '{name}' has no version {version} (versions: "
                               f"{', '.join(map(str, self.versions(name))) or 'none'})")
        return folder

    def manifest(self, name: str, version: int | None = None) -> dict:
        return read_manifest(self.path(name, version))

    def load(self, name: str, version: int) -> object:
        """A version of a model, loaded after checking that the registry signed exactly these files."""
        from shopfloor.tasks.base import load

        folder = self.path(check_name(name), version)
        return load(folder, verify=signature_check(self.root, folder, name, version))

    def live(self, name: str) -> LiveModel:
        """The live version of a model, loaded once and kept until another version goes live."""
        version = self.live_version(check_name(name))
        self.path(name, version)
        with self._lock:
            estimator = self._loaded.get((name, version))
            if estimator is None:
                estimator = self.load(name, version)
                self._loaded = {k: v for k, v in self._loaded.items() if k[0] != name}  # the old version goes
                self._loaded[(name, version)] = estimator
        return LiveModel(name, version, estimator.task_name, estimator)

    def describe(self) -> list[dict]:
        """One entry per model: task, versions, live version, and the live version's manifest summary."""
        out = []
        for name in self.names():
            try:
                out.append(self._entry(name))
            except ShopfloorError as err:  # one damaged model must not hide the others
                out.append({"name": name, "versions": [], "live": None, "history": [], "problem": str(err)})
        return out

    def _entry(self, name: str) -> dict:
        state = self.state(name)
        live = state.get("live")
        entry = {"name": name, "versions": self.versions(name), "live": live, "history": state.get("history", []),
                 "alarm": state.get("alarm")}
        if live is not None:
            manifest = self.manifest(name, live)
            entry.update(task=manifest["task"], created=manifest.get("created"),
                         shopfloor_version=manifest.get("shopfloor_version"))
        return entry

    # -- changing ---------------------------------------------------------------------
    def add(self, name: str, model_folder: str | os.PathLike, promote: bool = True) -> int:
        """Copy a saved model folder in as the next version of `name`; it goes live unless `promote=False`.

        Only the model's files are copied, and the copy is loaded (checksums, sizes against weights) before it
        becomes a version: a folder with a symbolic link anywhere in it, or one that does not load, is refused,
        and nothing of it stays in the registry.
        """
        check_name(name)
        source = Path(model_folder)
        refuse_links(source)  # before anything is read through one
        read_manifest(source)  # a clear message first when it is not a shopfloor model at all
        folder = self.root / name
        created = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        remove_debris(folder, ".add.tmp-")
        tmp = folder / f".add.tmp-{os.getpid()}-{threading.get_ident()}"
        try:
            copy_model_files(source, tmp)
            from shopfloor.tasks.base import load

            try:
                load(tmp)  # the copy, not the original: what is checked is what goes in
            except NotAModel as err:
                raise NotAModel(str(err).replace(str(tmp), str(source))) from None
            manifest = read_manifest(tmp)
            with self._changing():
                existing = [int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]
                version = max(existing, default=0) + 1
                write_signature(tmp, registry_key(self.root, create=True), name, version, manifest)
                os.replace(tmp, folder / str(version))
                state = self._read_state(name)
                state.setdefault("task", manifest["task"])
                state["history"].append({"version": version, "event": "add", "at": _now()})
                self._write_state(name, state)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if created:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only if empty: a first version that failed leaves no trace
            raise
        if promote:
            self.promote(name, version)
        return version

    def sign(self, name: str | None = None) -> list[tuple[str, int]]:
        """Sign the versions that have no signature yet (a registry from before signatures), each after loading it
        whole (checksums, sizes against weights); versions already signed are left as they are, so that this never
        makes a tampered version trusted again. Returns the (name, version) pairs signed."""
        from shopfloor.tasks.base import load

        signed = []
        with self._changing():
            key = registry_key(self.root, create=True)
            for model in [check_name(name)] if name else self.names():
                for version in self.versions(model):
                    folder = self.path(model, version)
                    if (folder / SIGNATURE).exists():
                        continue
                    load(folder)
                    write_signature(folder, key, model, version, read_manifest(folder))
                    signed.append((model, version))
        return signed

    def promote(self, name: str, version: int) -> None:
        self.path(check_name(name), version)
        with self._changing():
            state = self._read_state(name)
            state["live"] = version
            state["history"].append({"version": version, "event": "promote", "at": _now()})
            self._write_state(name, state)

    def rollback(self, name: str) -> int:
        """Make live again the version that was live before the current one; returns it. A second rollback
        therefore undoes the first."""
        state = self.state(check_name(name))
        promoted = [h["version"] for h in state.get("history", []) if h["event"] in ("promote", "rollback")]
        current = state.get("live")
        earlier = [v for v in promoted if v != current and (self._folder(name) / str(v)).is_dir()]
        if not earlier:
            raise UnknownModel(f"model '{name}' has no earlier live version to roll back to")
        previous = earlier[-1]
        with self._changing():
            state = self._read_state(name)
            state["live"] = previous
            state["history"].append({"version": previous, "event": "rollback", "at": _now()})
            self._write_state(name, state)
        return previous

    def set_alarm(self, name: str, enter: str | None, clear: str | None = None):
        """Set the model's alarm rule (enter at `enter`, leave at `clear`: see shopfloor.alarms), or remove it
        with `enter=None`; the stream workers apply it within seconds. Returns the rule (None when removed)."""
        from shopfloor.alarms import AlarmRule

        folder = self._folder(name)
        rule = None
        if enter is not None:
            versions = self.versions(name)
            task = self.state(name).get("task") or (read_manifest(folder / str(versions[-1]))["task"] if versions else None)
            rule = AlarmRule.parse(enter, clear, task=task)
        with self._changing():
            state = self._read_state(name)
            if rule is None:
                state.pop("alarm", None)
            else:
                state["alarm"] = rule.as_dict()
            state["history"].append({"event": "alarm", "rule": rule.text if rule else None, "at": _now()})
            self._write_state(name, state)
        return rule

    # -- internals --------------------------------------------------------------------
    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        with self._lock, locked_file(self.root / ".registry.lock"):
            yield

    def _folder(self, name: str) -> Path:
        folder = self.root / check_name(name)
        if not folder.is_dir():
            raise UnknownModel(self._unknown(name))
        return folder

    def _unknown(self, name: str) -> str:
        known = self.names()
        return f"no model named '{name}' in {self.root} (models: {', '.join(known) or 'none yet'})"

    def _read_state(self, name: str) -> dict:
        path = self.root / name / STATE
        if path.is_file():
            state = dict(_checked_state(path))
        else:
            state = {"live": None, "history": []}
        state.setdefault("history", [])
        return state

    def _write_state(self, name: str, state: dict) -> None:
        atomic_write(self.root / name / STATE, json.dumps(state, indent=2) + "\n")
        self._states.pop(name, None)


def _checked_state(path: Path) -> dict:
    """`<name>/registry.json`, refused with a message naming it when it is not what this module writes."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:  # not JSON, not UTF-8, or nested past the parser's stack
        raise DamagedRegistry(f"{path} is not valid JSON ({type(err).__name__}); restore it from a backup, or "
                              "delete it and add the model's versions again with 'shopfloor models add'") from None
    live = state.get("live") if isinstance(state, dict) else None
    history = state.get("history", []) if isinstance(state, dict) else None
    if (not isinstance(state, dict) or (live is not None and (not isinstance(live, int) or isinstance(live, bool)))
            or not isinstance(history, list) or not all(isinstance(h, dict) for h in history)):
        raise DamagedRegistry(f"{path} is not a registry file (it needs a live version number or null, and a history "
                              "list); restore it from a backup, or delete it and add the model's versions again")
    return state


def settle_memory(forgotten: bool = False) -> None:
    """Take loaded models out of the garbage collector's sight (`gc.freeze`), in long-running processes.

    With the four demo models loaded a process holds ~310,000 objects, and one full collection over them
    took 250 ms: a pause that every request or reading in flight waits out, whenever allocation triggers
    it. Frozen objects are never scanned. When a model was let go (`forgotten`), everything is unfrozen
    first so that its memory can be collected.
    """
    import gc

    if forgotten:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
