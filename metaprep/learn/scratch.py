"""Large arrays kept in files rather than in memory: the frozen tables (learn/model.py) and the
encoded examples (learn/rows.py). Each is written once into a private folder beside the run
directory (rundir.scratch_folder), mapped, and its file unlinked at once: the mapping keeps the
bytes on disk until the process lets go of the array, so nothing is left behind, a resume
rebuilds them, and no file another process could have edited is ever read. Their pages are page
cache (file-backed, dropped under pressure), not the process's anonymous memory. numpy only.

    with Scratch.beside(*rundir.scratch_folder(run_dir, os.getpid())) as scratch:
        table = scratch.array(shape, dtype, blocks)  # blocks() yields its rows in order

Mapped copy-on-write (MAP_PRIVATE): torch takes them as ordinary writable tensors, and a page
written by mistake becomes private to the process instead of changing the file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

__all__ = ["Scratch", "drop", "mapped"]


class Scratch:
    """A private folder beside a run directory, for files that are mapped then unlinked;
    without one (``folder`` None: none could be made there) the arrays are held in memory."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._count = 0

    @classmethod
    def beside(cls, prefix: str, parent: Path) -> Scratch:
        """A new folder ``parent/prefix...`` (rundir.scratch_folder; stale ones of dead
        processes removed first); where none can be made (a read-only place) the arrays are
        held in memory."""
        _remove_stale(parent, prefix)
        try:
            return cls(Path(tempfile.mkdtemp(prefix=prefix, dir=parent)))
        except OSError:
            return cls(None)

    def array(self, shape: tuple[int, ...], dtype: Any,
              blocks: Callable[[], Iterable[np.ndarray]]) -> np.ndarray:
        """The array whose consecutive row blocks ``blocks()`` yields, written to a file with
        plain writes (a full disk is an OSError, never a fault on a mapped page), then mapped
        and the file unlinked. Held in memory without a folder, or when the write fails (a
        full disk, a file-size limit): the stage goes on, only with more memory."""
        if self.folder is not None:
            path = self._next()
            try:
                with open(path, "wb") as f:
                    _header(f, shape, dtype)
                    for block in blocks():
                        f.write(np.ascontiguousarray(block, dtype=dtype).tobytes())
                return mapped(path, shape, dtype)
            except OSError:
                pass
            finally:
                drop(path)
        held = np.empty(shape, dtype=dtype)
        row = 0
        for block in blocks():
            held[row : row + len(block)] = block
            row += len(block)
        return held

    def shared(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A writable array of zeros whose writes go to its (unlinked) file: page cache the
        kernel may write back, not the process's anonymous memory. Its disk blocks are
        allocated first, so a full disk fails here, never on a mapped page. In memory without a
        folder, or when that fails."""
        if self.folder is not None and 0 not in shape:
            path = self._next()
            try:
                with open(path, "wb") as f:
                    _header(f, shape, dtype)
                    _allocate(f, int(np.prod(shape)) * np.dtype(dtype).itemsize)
                array = np.load(path, mmap_mode="r+", allow_pickle=False)
                if array.shape == tuple(shape) and array.dtype == np.dtype(dtype):
                    return array  # type: ignore[no-any-return]
            except OSError:
                pass
            finally:
                drop(path)
        return np.zeros(shape, dtype=dtype)

    def _next(self) -> Path:
        """A new file name in the folder."""
        assert self.folder is not None
        self._count += 1
        return self.folder / f"{self._count - 1}.npy"

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def mapped(path: Path, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """The .npy file at ``path`` mapped copy-on-write, checked to have ``shape`` and ``dtype``
    (never unpickled). An empty array cannot be mapped: it is returned in memory."""
    if 0 in shape:
        return np.zeros(shape, dtype=dtype)
    array = np.load(path, mmap_mode="c", allow_pickle=False)
    if array.shape != tuple(shape) or array.dtype != np.dtype(dtype):
        raise ValueError(f"{path} holds {array.dtype}{array.shape}, not "
                         f"{np.dtype(dtype)}{tuple(shape)}")
    return array  # type: ignore[no-any-return]


def _header(f: Any, shape: tuple[int, ...], dtype: Any) -> None:
    """A .npy header: what ``mapped`` and np.load check the file against."""
    np.lib.format.write_array_header_2_0(f, {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
        "shape": tuple(shape)})


def _allocate(f: Any, size: int) -> None:
    """``size`` zero bytes after the file's current end, their blocks allocated."""
    if hasattr(os, "posix_fallocate"):
        f.flush()
        os.posix_fallocate(f.fileno(), f.tell(), size)
        return
    block = bytes(min(size, 1 << 22))
    while size > 0:
        size -= f.write(block[:size])


def drop(path: Path) -> None:
    """Unlink a file of ours; where a mapped file cannot be removed (Windows) it stays for its
    folder's removal."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _remove_stale(parent: Path, prefix: str) -> None:
    """Folders of ours whose process is gone (killed while writing)."""
    mine = prefix.rsplit("-", 2)[0]  # the run's part, without this process's id
    try:
        found = [p for p in parent.iterdir() if p.name.startswith(f"{mine}-") and p.is_dir()]
    except OSError:
        return
    for folder in found:
        pid = folder.name[len(mine) + 1:].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True
