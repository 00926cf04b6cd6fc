"""The file a store is written through: HDF5 writes via this object (h5py's file-object driver),
so a write that fails half-way can be abandoned cleanly.

With HDF5's own driver a failed write (a full disk) leaves HDF5 holding dirty metadata that it
tries to flush again on every close, and at interpreter exit, where it crashed the process.
Here, once the store is abandoned, writes succeed without touching the disk, so HDF5 closes
normally and the temporary file is removed.
"""

from __future__ import annotations

import io
from pathlib import Path

__all__ = ["DiscardableFile"]


class DiscardableFile(io.RawIOBase):
    """A read-write binary file whose writes can be switched to go nowhere (``discard()``)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._f = open(path, "w+b")  # noqa: SIM115 - closed in close()
        self._discarding = False

    def discard(self) -> None:
        """From now on writes, truncations and flushes do nothing (the file is being dropped)."""
        self._discarding = True

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        return self._f.readinto(buffer)

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self._discarding:
            return len(memoryview(data))
        return self._f.write(data)

    def truncate(self, size: int | None = None) -> int:
        if self._discarding:
            return self._f.tell() if size is None else size
        return self._f.truncate(size)

    def flush(self) -> None:
        if not self._discarding and not self._f.closed:
            self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            try:
                self.flush()
            finally:
                self._f.close()
        super().close()
