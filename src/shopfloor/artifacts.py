"""Model folders: `model.safetensors` + `manifest.json`. The only place that touches model files.

A model folder can never run code when loaded: weights are safetensors, everything else is
JSON. The manifest records the format version, the task, the package version, the
constructor parameters, the learned non-tensor state (schema, thresholds, metrics) and
checksums of itself and of the weights, so that a damaged or hand-edited folder is refused
with a clear message instead of giving silently different answers. Checksums catch accidents, not
intent (anyone can recompute them): every size a manifest declares is also checked against the
shapes in the weights' header before a network is built from it.

Saving is atomic: the folder is written under a temporary name and swapped into place in one step;
`atomic_write` is the one way the package writes a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from shopfloor.errors import ModelTooNew, NotAModel

if TYPE_CHECKING:  # torch is imported where tensors are, so that writers of plain files import atomic_write cheaply
    import torch

FORMAT = "shopfloor-model"
# 1: the first format; 2 (issue 15): every task keeps the common state of `tasks.base.COMMON_STATE`, its training
# log a list of records (format 1 kept one dict in two tasks). Older formats are read through `upgrade_state`.
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
MAX_NESTING = 64  # a real manifest nests 6 deep; Python's JSON parser recurses once per level
TOP_LEVEL = {"format": str, "format_version": int, "task": str, "shopfloor_version": str, "created": str,
             "params": dict, "state": dict, "weights_sha256": str, "manifest_sha256": str}


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(data: dict) -> str:
    """SHA-256 of JSON written canonically (a manifest's checksum, a registry signature): indenting changes neither."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def save_artifact(folder: str | os.PathLike, *, task: str, params: dict, state: dict,
                  tensors: dict[str, torch.Tensor]) -> Path:
    """Write a model folder atomically and return its path.

    The folder is written under a temporary name and swapped into place in one step, so that the path holds
    the old model or the new one at every instant, also when the process is killed. What a killed save left
    (`.NAME.tmp-PID`, `.NAME.old-PID` of a process that is gone) is removed by the next save to that path.
    """
    from safetensors.torch import save_file

    from shopfloor import __version__
    from shopfloor.distributed import is_writer

    folder = Path(folder)
    if not is_writer():  # a multi-process run: every rank holds the same model, rank 0 writes it
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    for debris in (f".{folder.name}.tmp-", f".{folder.name}.old-"):
        remove_debris(folder.parent, debris)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / WEIGHTS))
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "task": task, "shopfloor_version": __version__,
                    "created": datetime.now(UTC).isoformat(timespec="seconds"), "params": params, "state": state,
                    "weights_sha256": _sha256_file(tmp / WEIGHTS)}
        manifest["manifest_sha256"] = sha256_json(manifest)
        atomic_write(tmp / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
        if folder.exists():
            check_destination(folder)
            _swap(tmp, folder)  # tmp now holds the old model, removed below
        else:
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _swap(new: Path, folder: Path) -> None:
    """Put `new` at `folder` and the old `folder` at `new`, in one step where the system can."""
    if _exchange(new, folder):
        return
    # without an atomic exchange: two renames, and a kill between them leaves the old model at .NAME.old-PID
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    os.replace(folder, old)
    os.replace(new, folder)
    os.replace(old, new)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False where it is not available
    (another system, an old C library, a file system that does not support it)."""
    import ctypes
    import errno

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def atomic_write(path: str | os.PathLike, content: str | bytes | Callable[[Path], object], mode: int = 0o644,
                 replace: bool = True) -> Path:
    """Write a file so that readers find the old content or the new one, never half a file.

    `content` is text (UTF-8), bytes, or a function that writes the file at the path it is given (safetensors,
    ONNX). It goes to `.NAME.tmp-PID-THREAD` beside the target (its own name per process and thread, created
    with `mode`), is flushed to disk and renamed over the target; any failure removes it, and what a killed
    process left is removed by the next write to the same file. With `replace=False` the file is only created:
    `FileExistsError` when another process made it first (a key that must be made once, whole).
    """
    path = Path(path)
    remove_debris(path.parent, f".{path.name}.tmp-")
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(handle, "wb") as file:
            if not callable(content):
                file.write(content.encode("utf-8") if isinstance(content, str) else content)
                file.flush()
                os.fsync(file.fileno())
        if callable(content):
            content(temporary)
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # fails if anything is at path, a link included
            temporary.unlink()
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def remove_debris(folder: Path, prefix: str) -> None:
    """Remove what processes that died half-way left in `folder`: entries named `<prefix><pid>[-...]` whose
    process is gone (a live process's own work in progress is left alone)."""
    for path in folder.glob(f"{prefix}*"):
        pid = path.name[len(prefix):].split("-")[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user
        return True
    return True


def check_destination(folder: str | os.PathLike) -> None:
    """Refuse early to save a model over a file or a folder that is not a shopfloor model."""
    folder = Path(folder)
    if folder.exists() and not _replaceable(folder):
        raise NotAModel(f"{folder} exists and is not a shopfloor model; refusing to overwrite it")


def _replaceable(folder: Path) -> bool:
    """Only an empty folder or a shopfloor model may be replaced by a new model."""
    if not folder.is_dir():
        return False
    if not any(folder.iterdir()):
        return True
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # no manifest, or one that is not JSON: someone else's folder
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def read_manifest(folder: str | os.PathLike) -> dict:
    """The verified manifest of a model folder (weights checked by `read_artifact`)."""
    folder = Path(folder)
    if folder.is_file():
        raise NotAModel(f"{folder} is a file, not a model folder: give the folder that 'shopfloor train' wrote "
                        f"(it holds {MANIFEST} and {WEIGHTS})")
    if not folder.is_dir():
        raise NotAModel(f"{folder} is not a model folder (no such folder)")
    path = folder / MANIFEST
    if not path.is_file():
        raise NotAModel(f"{folder} is not a shopfloor model: it has no {MANIFEST}")
    try:
        text = path.read_text(encoding="utf-8")
        check_nesting(text, path)
        manifest = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise NotAModel(f"{path} is not valid JSON ({err}); the model folder is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise NotAModel(f"{folder} is not a shopfloor model: its {MANIFEST} is not a shopfloor manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise NotAModel(f"{path} has no valid format_version")
    if version > FORMAT_VERSION:
        raise ModelTooNew(
            f"{folder} was saved by shopfloor {manifest.get('shopfloor_version', '?')} in model format "
            f"{version}; this shopfloor reads formats up to {FORMAT_VERSION}: upgrade shopfloor to load it"
        )
    claimed = manifest.pop("manifest_sha256", None)
    if claimed != sha256_json(manifest):
        raise NotAModel(f"{path} has been modified since the model was saved (checksum mismatch); "
                        "retrain or restore the original folder")
    check_manifest_shape(manifest, path)
    upgrade_state(manifest)
    return manifest


def upgrade_state(manifest: dict) -> None:
    """Read an older format's state as the current format writes it (the manifest keeps saying which format
    its file is in). Format 1: a training log of one dict is one record."""
    state = manifest["state"]
    if manifest["format_version"] < 2 and isinstance(state.get("training_log"), dict):
        state["training_log"] = [state["training_log"]]


def check_nesting(text: str, path: Path) -> None:
    """Refuse JSON nested deeper than MAX_NESTING before it is parsed: 100,000 brackets overflow the parser's stack."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
        if deepest > MAX_NESTING:
            raise NotAModel(f"{path} nests lists or objects more than {MAX_NESTING} deep, which no shopfloor "
                            "manifest does; the model folder is damaged")


_STRING, _BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"'), re.compile(r"[\[\]{}]")


def check_manifest_shape(manifest: dict, path: Path) -> None:
    """The top-level keys of a manifest have the types every loader relies on (a string `state` would fail deep
    inside a task's loader with a traceback instead of naming the file)."""
    for key, kind in TOP_LEVEL.items():
        value = manifest.get(key)
        if key == "manifest_sha256" or (key == "created" and value is None):
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            found = "missing" if key not in manifest else f"a {type(value).__name__}"
            raise NotAModel(f"{path}: '{key}' should be {_KIND_WORDS[kind]} but is {found}; the model folder is damaged "
                            "or was edited by hand: restore it or train the model again")


_KIND_WORDS = {str: "text", int: "a whole number", dict: "an object"}


def read_artifact(folder: str | os.PathLike, check=None) -> tuple[dict, dict[str, torch.Tensor]]:
    """The verified manifest and the weights of a model folder.

    `check(manifest, shapes)` runs after the checksums and before any tensor is made: `shapes` are the
    tensors' shapes from the safetensors header, so that a manifest whose sizes disagree with its weights
    is refused before a network is built from it (a recomputed checksum does not make sizes true). The
    weights are read once: the bytes checked are the bytes loaded, even if the file changes meanwhile.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    weights = folder / WEIGHTS
    try:
        data = weights.read_bytes()
    except FileNotFoundError:
        raise NotAModel(f"{folder} has a manifest but no {WEIGHTS}") from None
    except OSError as err:
        raise NotAModel(f"{weights} could not be read: {err}") from None
    if hashlib.sha256(data).hexdigest() != manifest.get("weights_sha256"):
        raise NotAModel(f"{weights} does not match its manifest (checksum mismatch); the model folder is damaged")
    if check is not None:
        check(manifest, header_shapes(data, weights))
    from safetensors import SafetensorError
    from safetensors.torch import load as load_weights

    try:
        tensors = load_weights(data)
    except (SafetensorError, OSError) as err:
        raise NotAModel(f"{weights} could not be read: {err}") from None
    return manifest, tensors


def header_shapes(data: bytes, source: str | os.PathLike = WEIGHTS) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor in safetensors bytes, from the header alone: a little-endian u64
    length, then that many bytes of JSON (no tensor is made)."""
    try:
        (length,) = struct.unpack("<Q", data[:8])
        if length > len(data) - 8:
            raise ValueError("the header runs past the end of the file")
        header = json.loads(data[8:8 + length].decode("utf-8"))
        header.pop("__metadata__", None)
        shapes = {name: tuple(info["shape"]) for name, info in header.items()}
        if not all(isinstance(n, int) and n >= 0 for shape in shapes.values() for n in shape):
            raise ValueError("a shape is not a list of sizes")
    except (struct.error, ValueError, UnicodeDecodeError, AttributeError, KeyError, TypeError) as err:
        raise NotAModel(f"{source} is not a safetensors file ({err}); the model folder is damaged") from None
    return shapes


# -- sizes declared by a manifest, against the weights ------------------------------------------
MAX_SIZE = 1 << 24  # the largest size a manifest may declare at all (a network is never built from more)


def declared_size(manifest: dict, path: str, limit: int = MAX_SIZE) -> int:
    """The whole number at `path` ("params.window", "state.architecture.n_numeric") of a manifest, 0..limit."""
    value = manifest
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise NotAModel(f"the manifest's {path} is {value!r}; a size from 0 to {limit} was expected "
                        "(the folder was damaged or edited)")
    return value


def check_size(path: str, value: int, shapes: dict[str, tuple[int, ...]], key: str, axis: int) -> None:
    """Refuse a manifest whose size at `path` is not the length of axis `axis` of tensor `key` in the weights."""
    shape = shapes.get(key)
    if shape is None or len(shape) <= axis:
        raise NotAModel(f"{WEIGHTS} has no tensor '{key}' of {axis + 1} or more axes, which the manifest's {path} "
                        "sizes (the folder was damaged or edited)")
    if shape[axis] != value:
        raise NotAModel(f"the manifest's {path} is {value} but '{key}' in {WEIGHTS} has {shape[axis]} "
                        f"(shape {list(shape)}): the manifest and the weights disagree (the folder was damaged or edited)")


def check_count(path: str, value: int, shapes: dict[str, tuple[int, ...]], pattern: str) -> None:
    """Refuse a manifest whose count at `path` (layers, columns) is not the number of tensors named like `pattern`
    (a regular expression such as `net\\.backbone\\.\\d+\\.weight`: one per layer)."""
    found = sum(1 for name in shapes if re.fullmatch(pattern, name))
    if found != value:
        raise NotAModel(f"the manifest's {path} is {value} but {WEIGHTS} holds {found} tensors named like "
                        f"'{pattern}': the manifest and the weights disagree (the folder was damaged or edited)")


def check_shapes(built: dict[str, tuple[int, ...]], saved: dict[str, tuple[int, ...]], prefix: str = "") -> None:
    """Refuse weights whose tensors are not exactly those of the network the manifest describes."""
    for key, shape in built.items():
        if key not in saved:
            raise NotAModel(f"{WEIGHTS} has no tensor '{prefix}{key}', which the network the manifest describes "
                            "needs (the folder was damaged or edited)")
        if tuple(saved[key]) != tuple(shape):
            raise NotAModel(f"'{prefix}{key}' is {list(saved[key])} in {WEIGHTS} but {list(shape)} in the network "
                            "the manifest describes (the folder was damaged or edited)")
    extra = sorted(set(saved) - set(built))
    if extra:
        raise NotAModel(f"{WEIGHTS} holds tensors the network the manifest describes does not have: "
                        f"{', '.join(prefix + k for k in extra[:5])} (the folder was damaged or edited)")
