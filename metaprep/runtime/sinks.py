"""Where the predict and embed stages read and write: the input as bytes, and outputs that never
leave a half-written file.

Output goes to a temporary name renamed over the target when complete; stdout and devices such
as /dev/null are written as they are; a write error (disk full, a closed pipe) is one DataError
naming the output. ``.npy`` output streams: rows go to disk as they come and the header, which
holds the row count, is rewritten at the end. Standard library and numpy only.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np

from metaprep.atomic import atomic_path
from metaprep.errors import DataError

__all__ = ["NpyRows", "Sink", "open_input", "open_output"]


@contextmanager
def open_input(path: str | Path) -> Iterator[tuple[BinaryIO, str]]:
    """The input as bytes (stdin for "-") and the name warnings use for it."""
    if str(path) == "-":
        yield sys.stdin.buffer, "<stdin>"
        return
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise DataError(f"cannot read input: {exc.strerror or exc}", path=path) from exc
    with f:
        yield f, str(path)


class Sink:
    """Bytes (or str, encoded as UTF-8) to ``f`` through a 64 KiB buffer; an OSError (disk full,
    a closed pipe) becomes one DataError line naming the output."""

    def __init__(self, f: Any, name: str) -> None:
        self.f, self.name = f, name
        self._buf: list[bytes] = []
        self._size = 0

    def _fail(self, exc: OSError) -> DataError:
        hint = ("the program reading the output stopped" if isinstance(exc, BrokenPipeError)
                else "check free space and permissions")
        return DataError(f"cannot write the output: {exc.strerror or exc}", path=self.name,
                         hint=hint)

    def write(self, data: bytes | str) -> None:
        b = data.encode("utf-8") if isinstance(data, str) else data
        self._buf.append(b)
        self._size += len(b)
        if self._size >= 1 << 16:
            self._drain()

    def _drain(self) -> None:
        data, self._buf, self._size = b"".join(self._buf), [], 0
        try:
            self.f.write(data)
        except OSError as exc:
            raise self._fail(exc) from exc

    def flush(self) -> None:
        self._drain()
        try:
            self.f.flush()
        except OSError as exc:
            raise self._fail(exc) from exc

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._drain()
        return self.f.seek(offset, whence)


@contextmanager
def open_output(path: Path | None) -> Iterator[Sink]:
    """A sink: stdout (path None), a device or pipe as it is, else a temporary file beside
    ``path`` renamed over it when the block succeeds."""
    if path is None:
        # a notebook's stdout has no byte buffer: give it text
        stdout = getattr(sys.stdout, "buffer", None) or _TextBytes(sys.stdout)
        sink = Sink(stdout, "<stdout>")
        try:
            sys.stdout.flush()
            yield sink
            sink.flush()
        except DataError:
            _silence_stdout()
            raise
        return
    path = Path(path)  # the Python API may be given a str
    if path.exists() and not path.is_file():  # /dev/null, a FIFO: never replaced, written to
        with _opened(path, path) as sink:
            yield sink
        return
    with atomic_path(path) as tmp, _opened(tmp, path) as sink:
        yield sink


@contextmanager
def _opened(target: Path, name: Path) -> Iterator[Sink]:
    try:
        f = open(target, "wb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise DataError(f"cannot write the output: {exc.strerror or exc}", path=name) from exc
    sink = Sink(f, str(name))
    try:
        yield sink
        sink.flush()
    finally:
        try:
            f.close()
        except OSError:
            pass  # the flush above already reported it


class _TextBytes:
    """A text stream that takes UTF-8 bytes."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, data: bytes) -> int:
        return self.stream.write(data.decode("utf-8"))

    def flush(self) -> None:
        self.stream.flush()


def _silence_stdout() -> None:
    """After a failed write to stdout, point it at /dev/null so the interpreter's own flush at
    exit does not print a second, Python-shaped error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


class NpyRows:
    """float32 rows appended to an .npy stream; the header (row count) is rewritten at the end.
    The header keeps a fixed size so it can be rewritten in place; a stream that cannot seek
    (a pipe) gets the rows through a temporary file."""

    def __init__(self, out: Sink, width: int) -> None:
        self.out, self.width, self.rows = out, width, 0
        self.seekable = _can_seek(out)
        self.body: Any = out if self.seekable else tempfile.TemporaryFile()  # noqa: SIM115
        self.size = len(_npy_header(10**18, width))
        self.body.write(_npy_header(0, width, self.size))

    def add(self, row: np.ndarray) -> None:
        self.body.write(np.ascontiguousarray(row, dtype="<f4").tobytes())
        self.rows += 1

    def finish(self) -> None:
        header = _npy_header(self.rows, self.width, self.size)
        if self.seekable:
            self.out.seek(0)
            self.out.write(header)
            return
        self.body.seek(0)
        self.out.write(header)
        self.body.seek(self.size)
        shutil.copyfileobj(self.body, self.out)
        self.body.close()


def _can_seek(f: Any) -> bool:
    try:
        f.seek(0, os.SEEK_CUR)
        return True
    except (OSError, ValueError):
        return False


def _npy_header(rows: int, width: int, size: int | None = None) -> bytes:
    """An .npy v1.0 header for a (rows, width) little-endian float32 array, padded to ``size``
    bytes (a multiple of 64, as the format asks)."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {width}), }}"
    if size is None:
        size = -(-(10 + len(text) + 1) // 64) * 64
    body = text.ljust(size - 10 - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body.encode("latin-1")
