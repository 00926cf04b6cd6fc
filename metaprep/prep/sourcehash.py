"""The sha256 of align's sources, hashed by one background thread while the readers parse them.

Why a thread rather than a separate pass: hashing a multi-GB source costs a full read, and the
readers cannot feed it their bytes (polars reads a text file itself, a ``limit`` or a target
vocabulary stops or skips early, gzip readers see decompressed bytes). hashlib and file reads
release the GIL, and the thread reads the same page-cache pages the parser reads, so the hash
runs on a spare core and costs little wall time. Sources are hashed one after the other, in the
order align reads them. The digest is always of the whole file as it is on disk (the compressed
bytes of a .gz), exactly what ``metaprep.checksum.file_sha256`` gives, whose per-process memo it
shares.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from metaprep.checksum import file_sha256
from metaprep.errors import FormatError

__all__ = ["SourceHashes"]


class _Stopped(Exception):
    """Raised inside the thread to abandon hashing (the run failed or is over)."""


class SourceHashes:
    """Starts hashing ``paths`` at once; ``digest(path)`` waits for that one. Use as a context
    manager (or call ``close()``) so a failed run does not leave the thread reading."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = list(dict.fromkeys(paths))  # a file given twice is hashed once
        self._done = {p: threading.Event() for p in self._paths}
        self._digests: dict[Path, str] = {}
        self._errors: dict[Path, OSError] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metaprep-sha256", daemon=True)
        self._thread.start()

    def _check_stop(self, _n: int) -> None:
        if self._stop.is_set():
            raise _Stopped

    def _run(self) -> None:
        for path in self._paths:
            try:
                # 16 MiB blocks: fewer GIL hand-overs while the main thread is busy in Python
                self._digests[path] = file_sha256(path, block=1 << 24,
                                                  on_bytes=self._check_stop)
            except _Stopped:
                return
            except OSError as exc:
                self._errors[path] = exc
            finally:
                self._done[path].set()

    def digest(self, path: Path) -> str:
        """The hex sha256 of the whole file at ``path`` (waits until it is hashed)."""
        if path not in self._done:
            raise KeyError(path)
        self._done[path].wait()
        if path in self._errors:
            exc = self._errors[path]
            raise FormatError(f"cannot read to hash it: {exc.strerror or exc}",
                              path=path) from exc
        if path not in self._digests:  # only after close(): the thread gave up on it
            raise RuntimeError(f"hashing of {path} was stopped")
        return self._digests[path]

    def close(self) -> None:
        """Stop the thread (at its next block) and wait for it."""
        self._stop.set()
        self._thread.join()
        for done in self._done.values():  # digest() of a path never hashed must not hang
            done.set()

    def __enter__(self) -> SourceHashes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
