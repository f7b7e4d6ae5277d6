"""What a model registry trusts: plain files copied in without following links, signed with the registry's key.

`models add` copies only a model's manifest and weights (a folder with a symbolic link anywhere in it is refused),
and `<version>/signature.json` holds an HMAC-SHA256, under the registry's own key (`.registry.key`, 256 random bits,
readable by its owner only), of the model's name, version, manifest and weights. The service and the stream load
only versions whose signature matches. The checksums in a manifest catch accidental damage; the signature catches a
version folder changed by someone without the key; neither helps against someone who holds the key or can write the
service's own files.

Apart from `registry.py` so that what decides trust can be audited on its own: the folder format (versions, the
live one, history, alarm rules) is the registry's, the key and the signatures are here.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from shopfloor.artifacts import MANIFEST, WEIGHTS, atomic_write, sha256_json
from shopfloor.errors import NotAModel

KEY = ".registry.key"
SIGNATURE = "signature.json"


def registry_key(root: Path, create: bool = False) -> bytes:
    """The registry's signing key: 256 random bits in `.registry.key`, mode 0600, made once (with `create`)."""
    path = root / KEY
    if create and not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            atomic_write(path, secrets.token_hex(32) + "\n", mode=0o600, replace=False)  # never an empty key
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        raise NotAModel(f"the registry {root} has no signing key ({KEY}), so no model in it can be trusted: "
                        "add the models again with 'shopfloor models add'") from None
    except (OSError, ValueError):
        raise NotAModel(f"{path} is not a registry key (64 hex digits); restore it from a backup") from None
    if len(key) != 32:
        raise NotAModel(f"{path} is not a registry key (64 hex digits); restore it from a backup")
    return key


def sign(key: bytes, name: str, version: int, manifest: dict) -> str:
    """HMAC-SHA256 of a version's name, number, manifest and weights (through the weights' SHA-256 that the
    manifest records and that loading checks against the bytes it loads)."""
    content = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    message = f"shopfloor-registry-1\0{name}\0{version}\0{sha256_json(content)}\0{content.get('weights_sha256')}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def write_signature(folder: Path, key: bytes, name: str, version: int, manifest: dict) -> None:
    """Sign a version folder: `signature.json` beside its manifest."""
    signature = {"hmac_sha256": sign(key, name, version, manifest),
                 "signs": "name, version, manifest and weights, with the registry's key"}
    atomic_write(folder / SIGNATURE, json.dumps(signature, indent=2) + "\n")


def signature_check(root: Path, folder: Path, name: str, version: int) -> Callable[[dict], None]:
    """A check of a version's manifest against the signature the registry gave it, for `load(folder, verify=...)`;
    refuses at once a version that has no valid signature."""
    try:
        signed = json.loads((folder / SIGNATURE).read_text(encoding="utf-8"))["hmac_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        raise NotAModel(f"model '{name}' version {version} in {root} has no valid {SIGNATURE}: it was not "
                        f"added with 'shopfloor models add' or was changed since; add its model folder again (a "
                        f"registry from before signatures: 'shopfloor models sign' signs what it holds)") from None
    key = registry_key(root)

    def verify(manifest: dict) -> None:
        if not isinstance(signed, str) or not hmac.compare_digest(signed, sign(key, name, version, manifest)):
            raise NotAModel(f"model '{name}' version {version} does not match the signature the registry gave it: "
                            "its files were changed after 'shopfloor models add' by someone without the registry's "
                            "key; add the model folder again")

    return verify


def refuse_links(source: Path) -> None:
    """Refuse symbolic links anywhere in a model folder (a link to /etc/passwd must not become a file in the
    registry, and a link loop must not become a traceback), and anything but plain files and folders."""
    for parent, folders, files in os.walk(source, followlinks=False):
        for entry in folders + files:
            path = Path(parent) / entry
            if path.is_symlink():
                raise NotAModel(f"{path} is a symbolic link; a model folder to add may hold only plain files "
                                "(copy the model's files into a folder of their own)")
            if not (path.is_dir() or path.is_file()):
                raise NotAModel(f"{path} is not a plain file; a model folder to add may hold only plain files")


def copy_model_files(source: Path, target: Path) -> None:
    """Copy a model folder's manifest and weights, never through a link, into a new folder `target`."""
    target.mkdir()
    for name in (MANIFEST, WEIGHTS):
        try:
            handle = os.open(source / name, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise NotAModel(f"{source} has no {name}; it is not a complete model folder") from None
        except OSError as err:  # ELOOP: it became a link after the walk
            raise NotAModel(f"{source / name} could not be read as a plain file ({err.strerror})") from None
        with os.fdopen(handle, "rb") as src, open(target / name, "xb") as dst:
            shutil.copyfileobj(src, dst)
