"""Checks of an HDF5 file's string storage made before HDF5 reads it.

Variable-length strings (the vocabulary, text attributes) live in "global heap collections"
(signature ``GCOL``); a dataset of them holds, per string, its length and the collection and
object it is in. HDF5 trusts both: it walks a collection's objects by their recorded sizes without
checking that each step moves forward (one damaged size byte made opening a store loop forever
inside HDF5, where no Python signal reaches), and it allocates whatever length a damaged string
entry records (4 GB for one bad vocabulary entry). ``scan_heaps`` walks every collection the way
HDF5 does and ``check_strings`` matches a string dataset's entries against what it found.
Standard library and numpy only.
"""

from __future__ import annotations

import mmap
import stat
import struct
from pathlib import Path

import numpy as np

from metaprep.errors import StoreError

__all__ = ["HeapObjects", "check_strings", "damaged_heap", "scan_heaps", "written_here"]

_SIGNATURE = b"GCOL\x01"  # magic and version 1, the only one HDF5 accepts
_HEADER = 16  # magic 4, version 1, reserved 3, collection size 8
_OBJECT_HEADER = 16  # index 2, reference count 2, reserved 4, object size 8
# one stored string: its length, then the collection's file address and the object's index
_ENTRY = np.dtype([("length", "<u4"), ("address", "<u8"), ("index", "<u4")])
_HINT = "the store is damaged or was edited: re-run `metaprep align`"

# (collection address << 16 | object index) -> object size, sorted by key
HeapObjects = tuple[np.ndarray, np.ndarray]

# Stores this process wrote (device, inode, size, mtime): align's own summary of the store it
# has just written need not walk it again (0.5 s per 250 MB); any change to the file misses.
_WRITTEN_HERE: set[tuple[int, int, int, int]] = set()


def _identity(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def written_here(path: Path) -> None:
    """Record that this process has just written the store at ``path``."""
    _WRITTEN_HERE.add(_identity(path))


def _walk(mm: mmap.mmap, start: int, file_size: int,
          found: list[tuple[int, int]]) -> str | None:
    """Why the collection at ``start`` would trip HDF5, or None if its walk ends cleanly (its
    objects are then added to ``found`` as (key, size))."""
    if start + _HEADER > file_size:
        return "is cut short by the end of the file"
    (size,) = struct.unpack_from("<Q", mm, start + 8)
    if size > file_size - start:
        return None  # HDF5 fails to read past the end; most often the signature is a stray match
    objects: list[tuple[int, int]] = []
    p = _HEADER
    while p < size:
        if p + _OBJECT_HEADER > size:
            break  # a tail too small for an object is free space
        index, _refs, _reserved, length = struct.unpack_from("<HHIQ", mm, start + p)
        # objects are padded to 8 bytes; the free-space object (index 0) counts its own header
        need = _OBJECT_HEADER + (length + 7) // 8 * 8 if index else length
        if need <= 0 or need > size - p:
            return f"holds an object of {length} bytes at byte {start + p}"
        if index:
            objects.append(((start << 16) | index, length))
        p += need
    found += objects
    return None


def _regular(path: Path) -> None:
    if not stat.S_ISREG(path.stat().st_mode):
        raise StoreError("is not a regular file (a folder, device or pipe)", path=path,
                         hint="give the .h5 file `metaprep align` wrote")


def damaged_heap(path: Path) -> str | None:
    """A description of the first damaged global heap collection in ``path``, or None."""
    try:
        scan_heaps(path)
    except StoreError as exc:
        return exc.message
    return None


def scan_heaps(path: Path) -> HeapObjects | None:
    """Walk every global heap collection of ``path``; a StoreError names a damaged one. None:
    a store this process wrote and nothing has changed since (nothing to check).

    Every occurrence of the signature is walked. A stray match inside vector data is let pass
    by its size field, which then almost surely points past the end of the file."""
    found: list[tuple[int, int]] = []
    try:
        _regular(path)
        if _identity(path) in _WRITTEN_HERE:
            return None
        with open(path, "rb") as f:
            file_size = f.seek(0, 2)
            if file_size == 0:
                return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                at = mm.find(_SIGNATURE)
                while at != -1:
                    why = _walk(mm, at, file_size, found)
                    if why is not None:
                        raise StoreError(f"the store is damaged: the string heap at byte {at} "
                                         f"{why}", path=path, hint=_HINT)
                    at = mm.find(_SIGNATURE, at + 1)
    except OSError as exc:
        raise StoreError(f"cannot read the store: {exc.strerror or exc}", path=path) from exc
    table = np.array(found, dtype=np.uint64).reshape(-1, 2)
    order = np.argsort(table[:, 0], kind="stable")
    return table[order, 0], table[order, 1]


def check_strings(path: Path, offset: int | None, count: int, heaps: HeapObjects | None,
                  what: str) -> None:
    """A StoreError unless each of the ``count`` string entries stored from byte ``offset``
    names an object found by ``scan_heaps`` and has that object's length (``offset`` None: the
    dataset is not stored in one piece, which metaprep never writes)."""
    if count == 0 or heaps is None:
        return
    if offset is None:
        raise StoreError(f"{what} is not stored the way metaprep writes it (in one piece)",
                         path=path, hint=_HINT)
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            raw = f.read(count * _ENTRY.itemsize)
    except OSError as exc:
        raise StoreError(f"cannot read the store: {exc.strerror or exc}", path=path) from exc
    if len(raw) != count * _ENTRY.itemsize:
        raise StoreError(f"{what} is cut short by the end of the file", path=path, hint=_HINT)
    entries = np.frombuffer(raw, dtype=_ENTRY)
    keys, sizes = heaps
    if len(keys) == 0:
        raise StoreError(f"{what}: the file holds no strings", path=path, hint=_HINT)
    wanted = (entries["address"] << np.uint64(16)) | entries["index"].astype(np.uint64)
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    ok = (keys[at] == wanted) & (sizes[at] == entries["length"])
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise StoreError(f"{what}: entry {i} points to no string of its length in the file",
                         path=path, hint=_HINT)
