"""A model folder on every executor, once, and loaded once per Python worker.

The driver broadcasts the folder's two files (`model.safetensors`, `manifest.json`) as bytes: Spark sends a
broadcast to each executor once and keeps it there, and it needs no file system shared with the driver (a
real cluster's executors do not see the driver's disk). A Python worker writes the files to a temporary
folder (removed once loaded) and loads them through `shopfloor.load` (safetensors and JSON only, checksums checked) the first time
it scores with that model; Spark reuses Python workers between tasks, so later tasks find it loaded.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from shopfloor.artifacts import MANIFEST, WEIGHTS

_loaded: dict[str, object] = {}  # model id -> estimator, in each Python worker


def model_files(folder: str | os.PathLike) -> dict[str, bytes]:
    folder = Path(folder)
    return {name: (folder / name).read_bytes() for name in (MANIFEST, WEIGHTS)}


def write_model_files(files: dict[str, bytes], folder: str | os.PathLike) -> Path:
    """The files of `model_files` written into `folder` (made if need be): a model folder `shopfloor.load` reads."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


def model_id(files: dict[str, bytes]) -> str:
    return hashlib.sha256(files[MANIFEST]).hexdigest()[:16]


def worker_model(files: dict[str, bytes], key: str):
    """The estimator for these files in this Python worker, loaded at its first use and kept."""
    if key not in _loaded:
        import torch

        import shopfloor

        torch.set_num_threads(1)  # Spark runs one Python worker per core: one thread each
        with tempfile.TemporaryDirectory(prefix=f"shopfloor-{key}-") as scratch:  # `load` reads the weights whole
            _loaded[key] = shopfloor.load(write_model_files(files, scratch))
    return _loaded[key]
