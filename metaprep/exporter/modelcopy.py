"""Copies of a model directory's files (``metaprep triton --copy``, ``export-onnx --triton``):
exactly the files its manifest lists, and the manifest, never a directory walk. So a file the
manifest does not list (a symlink to a secret, to ``/dev/zero``) is never read.

Each file is opened inside the directory without following a link (``O_NOFOLLOW``, relative
to the directory's own descriptor), must be a regular file of the listed size, and is hashed
while it is copied: it is read up to its listed size and one byte more, so a file that grows
while it is read cannot fill the disk, and a copy that does not match its sha256 is refused
(a hard link to a file from elsewhere would need that file's hash in the manifest). A hard link
instead of a copy (large tables) is checked to be the very file that was checked.

Standard library only, besides the manifest's types.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from metaprep.errors import ModelError
from metaprep.runtime.modeldir import FORMAT_NAME, MANIFEST, FileRecord, Manifest

__all__ = ["MANIFEST_LIMIT", "copy_files", "copy_model"]

MANIFEST_LIMIT = 4 << 20  # a manifest names a dozen files and some figures: a few kilobytes
_BLOCK = 1 << 22
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO can't hang
_WRITE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_HINT = "copy the whole model directory again, or re-export it"


def copy_model(model_dir: str | Path, dest: str | Path) -> Manifest:
    """``dest`` (created, must not exist) gets ``model_dir``'s manifest and the files it lists,
    each checked; returns the manifest that was copied."""
    src, out = Path(model_dir), Path(dest)
    with _folder(src) as dfd:
        raw = _read_manifest(dfd, src)
        manifest = _parse(raw, src / MANIFEST)
        out.mkdir()
        _copy_listed(dfd, src, out, manifest, list(manifest.files), link=False)
        fd = os.open(out / MANIFEST, _WRITE, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)  # the very bytes that were parsed and checked against
    return manifest


def copy_files(model_dir: str | Path, dest: str | Path, manifest: Manifest,
               names: Sequence[str], *, link: bool = False) -> None:
    """The listed ``names`` of ``model_dir`` into the existing folder ``dest``, checked against
    ``manifest``; ``link``: hard links where the file system allows (else copies)."""
    src = Path(model_dir)
    with _folder(src) as dfd:
        _copy_listed(dfd, src, Path(dest), manifest, names, link=link)


# --- the pieces ---------------------------------------------------------------------------------
@contextmanager
def _folder(path: Path) -> Iterator[int]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise ModelError(f"cannot open the model directory: {exc.strerror or exc}",
                         path=path) from exc
    try:
        yield fd
    finally:
        os.close(fd)


def _open(dfd: int, name: str, where: Path) -> tuple[int, os.stat_result]:
    """A descriptor of the regular file ``name`` inside the directory, its link never followed."""
    try:
        fd = os.open(name, _READ, dir_fd=dfd)
    except FileNotFoundError as exc:
        raise ModelError(f"{name}, listed in the manifest, is missing", path=where,
                         hint=_HINT) from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ModelError(f"{name} is a symbolic link: a copy takes only the regular files "
                             "the manifest lists", path=where, hint=_HINT) from exc
        raise ModelError(f"cannot open {name}: {exc.strerror or exc}", path=where) from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ModelError(f"{name} is not a regular file (a folder, pipe or device)", path=where,
                         hint=_HINT)
    return fd, st


def _read_manifest(dfd: int, src: Path) -> bytes:
    fd, st = _open(dfd, MANIFEST, src)
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MANIFEST_LIMIT + 1)
    if len(raw) > MANIFEST_LIMIT:
        raise ModelError(f"{MANIFEST} is larger than {MANIFEST_LIMIT:,} bytes", path=src,
                         hint="it was not written by metaprep export-onnx")
    return raw


def _parse(raw: bytes, path: Path) -> Manifest:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"unreadable manifest: {exc}", path=path) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise ModelError(f"not a {FORMAT_NAME} manifest", path=path)
    return Manifest.from_dict(data, path)


def _copy_listed(dfd: int, src: Path, dest: Path, manifest: Manifest, names: Sequence[str],
                 *, link: bool) -> None:
    for name in names:
        record = manifest.files.get(name)
        if record is None:  # from_dict keeps listed names plain: no '/', no '..'
            raise ModelError(f"{name} is not listed in the manifest", path=src, hint=_HINT)
        fd, st = _open(dfd, name, src)
        try:
            where = src / name
            if st.st_size != record.bytes:
                raise ModelError(f"{name} has {st.st_size:,} bytes, the manifest says "
                                 f"{record.bytes:,}", path=where, hint=_HINT)
            if link and _linked(dfd, name, st, dest / name):
                _stream(fd, record, where, None)
            else:
                out = os.open(dest / name, _WRITE, 0o644)
                with os.fdopen(out, "wb") as f:
                    _stream(fd, record, where, f)
        except BaseException:
            (dest / name).unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)


def _linked(dfd: int, name: str, st: os.stat_result, target: Path) -> bool:
    """A hard link at ``target`` to the file that was opened and checked; False where the file
    system does not allow one (another device, no permission)."""
    try:
        os.link(name, target, src_dir_fd=dfd, follow_symlinks=False)
    except OSError:
        return False
    now = os.lstat(target)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):  # replaced since it was opened
        target.unlink()
        raise ModelError(f"{name} changed while it was copied", path=target.parent, hint=_HINT)
    return True


def _stream(fd: int, record: FileRecord, where: Path, out: IO[bytes] | None) -> None:
    """Read the file up to its listed size (and one byte more, to see it grew), hashing it and
    writing it to ``out`` (a binary file, or None to only check it)."""
    digest, seen = hashlib.sha256(), 0
    while True:
        chunk = os.read(fd, min(_BLOCK, record.bytes - seen + 1))
        if not chunk:
            break
        seen += len(chunk)
        if seen > record.bytes:
            raise ModelError(f"{where.name} grew past its listed {record.bytes:,} bytes while "
                             "it was copied", path=where, hint=_HINT)
        digest.update(chunk)
        if out is not None:
            out.write(chunk)
    if seen != record.bytes:
        raise ModelError(f"{where.name} shrank to {seen:,} bytes while it was copied",
                         path=where, hint=_HINT)
    if digest.hexdigest() != record.sha256:
        raise ModelError(f"{where.name} does not match its sha256 in the manifest", path=where,
                         hint=_HINT)
