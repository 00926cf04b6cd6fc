"""A model directory's files, checked, whatever their names: each resolves to a regular file
inside the directory (a symlink may not point out of it), sizes and sha256 match the manifest's
records, and a JSON file is read strictly. The names are modeldir.py's; this module is handed
them. Standard library only: the runtime imports it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaprep.checksum import file_sha256
from metaprep.errors import ModelError
from metaprep.runtime.manifest import is_plain_name

if TYPE_CHECKING:
    from metaprep.runtime.modeldir import Manifest

__all__ = ["LARGE_FILE_BYTES", "check_inside", "read_json", "verify_files", "verify_hashes"]

# Files larger than this are checked by size only unless a full check is asked for: hashing a
# multi-GB table on every load would cost seconds, and onnxruntime memory-maps it anyway.
LARGE_FILE_BYTES = 64 << 20


def check_inside(model_dir: str | Path, names: Iterable[str]) -> None:
    """Each name resolves to a file inside the directory (a symlink may not point out of it)."""
    root = Path(model_dir).resolve()
    for name in names:
        if not is_plain_name(name):
            raise ModelError(f"{name!r} is not a plain file name inside the model directory",
                             path=model_dir, hint="refusing to read outside the directory")
        try:
            target = (root / name).resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise ModelError(f"{name} cannot be resolved ({exc})", path=model_dir,
                             hint="re-export the model directory") from exc
        if target.parent != root and root not in target.parents:
            raise ModelError(f"{name} points outside the model directory (to {target})",
                             path=model_dir, hint="refusing to read outside the directory")
        if target.exists() and not target.is_file():  # a pipe would block the read forever
            raise ModelError(f"{name} is not a regular file (a folder, pipe or device)",
                             path=model_dir, hint="re-export the model directory")


def verify_files(model_dir: str | Path, manifest: Manifest, *, full: bool = False,
                 later: Collection[str] = ()) -> None:
    """Check every file the manifest lists: size always, sha256 for small files (all with full)
    but those named in ``later``, which ``verify_hashes`` checks before they are read."""
    check_inside(model_dir, manifest.files)
    for name, rec in manifest.files.items():
        p = Path(model_dir) / name
        if not p.is_file():
            raise ModelError(f"file {name} listed in the manifest is missing", path=model_dir,
                             hint="copy the whole model directory")
        size = p.stat().st_size
        if size != rec.bytes:
            raise ModelError(
                f"{name} has {size} bytes, the manifest says {rec.bytes}", path=p,
                hint="the model directory was modified or copied incompletely; re-export it",
            )
    verify_hashes(model_dir, manifest, [n for n in manifest.files if n not in later], full=full)


def verify_hashes(model_dir: str | Path, manifest: Manifest, names: Iterable[str], *,
                  full: bool = False) -> None:
    """sha256 of the named files (checked by verify_files for size) against the manifest:
    files up to LARGE_FILE_BYTES, or all with full."""
    for name in names:
        p = Path(model_dir) / name
        rec = manifest.files[name]
        if (full or rec.bytes <= LARGE_FILE_BYTES) and file_sha256(p) != rec.sha256:
            raise ModelError(f"{name} does not match its sha256 in the manifest", path=p,
                             hint="the model directory was modified; re-export it")


def read_json(path: Path) -> Any:
    """A JSON file of the directory, strictly: UTF-8, and no key given twice in an object (a
    reader taking the first and Python the last would see two different files)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_repeats)
    except UnicodeDecodeError as exc:
        raise ModelError(f"unreadable {path.name}: not UTF-8 (byte {exc.start})",
                         path=path) from exc
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelError(f"unreadable {path.name}: {' '.join(str(exc).split())}",
                         path=path) from exc


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key[:40]!r} is given twice in one object")
        out[key] = value
    return out
