"""sha256 of a file, streamed. Standard library only (tqdm only when asked for a bar), so the
runtime can use it too."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["file_sha256"]

# (resolved path, size, mtime_ns) -> digest, for this process: `metaprep run` hashes a pipeline's
# inputs and then runs align in the same process, which would otherwise read multi-GB sources twice.
_MEMO: dict[tuple[str, int, int], str] = {}


def file_sha256(
    path: str | Path, *, block: int = 1 << 22, progress: bool = False, desc: str | None = None
) -> str:
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key in _MEMO:
        return _MEMO[key]
    h = hashlib.sha256()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=os.path.getsize(path), unit="B", unit_scale=True, leave=False,
                   desc=desc or f"sha256 {Path(path).name}")
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:
        bar.close()
    _MEMO[key] = h.hexdigest()
    return _MEMO[key]
