"""Write-then-rename, so an interrupted run never leaves a half-written file at the target.
Standard library only: the runtime uses it too."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "write_failure"]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renamed over it only if the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_failure(path: str | Path, exc: BaseException) -> Exception:
    """A one-line WriteError for a writer that failed (serialisers such as torch.save report a
    short write as a RuntimeError)."""
    from metaprep.errors import WriteError

    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return WriteError(f"cannot write {Path(path).name} ({first}); is the disk full?", path=path)
