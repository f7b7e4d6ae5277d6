"""Editing a saved model's manifest as someone who recomputes its checksum would (for tests of what loading refuses)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from shopfloor.artifacts import MANIFEST, sha256_json


def edited_copy(folder: Path, target: Path, **changes) -> Path:
    """A copy of a model folder whose manifest has `changes` ("params.window" spelt params__window), checksum fixed."""
    copy = shutil.copytree(folder, target)
    path = copy / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest.pop("manifest_sha256")
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = manifest
        for part in parents:
            node = node[part]
        node[last] = value
    manifest["manifest_sha256"] = sha256_json(manifest)
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return copy
