"""Helpers shared by the reader tests."""

from __future__ import annotations

import gzip
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from metaprep.prep.readers import ReadOptions, open_source
from metaprep.prep.readers.base import Source
from metaprep.prep.readers.text import TextSource

# The text reader's two paths (prep/readers/text.py): a plain file read whole is streamed by
# polars itself; a gzipped file, or any file read with a ``limit``, goes in line-aligned pieces.
# "gzip" reaches the pieces through the decompressing chunker, "limit" through the memory-mapped
# one, so together they cover the piece path on both kinds of file.
TEXT_ROUTES = ("stream", "gzip", "limit")


def read_all(
    path: Path, *, fmt: str | None = None, wanted: Collection[str] | None = None, **opts: Any
) -> tuple[Source, list[str], np.ndarray]:
    """Read a whole source (or its wanted words): (source, words, matrix), checking each chunk's
    dtype, layout and shape on the way."""
    src = open_source(path, fmt=fmt, options=ReadOptions(progress=False, **opts))
    words: list[str] = []
    vecs = []
    for chunk in src.iter_chunks(wanted):
        assert chunk.vectors.dtype == np.float32 and chunk.vectors.flags["C_CONTIGUOUS"]
        assert chunk.vectors.shape == (len(chunk.words), src.dim)
        words += chunk.words
        vecs.append(chunk.vectors)
    matrix = np.concatenate(vecs) if vecs else np.zeros((0, src.dim), np.float32)
    return src, words, matrix


def on_route(path: Path, route: str, *, fmt: str | None = None, **opts: Any) -> TextSource:
    """A TextSource reading ``path`` by ``route`` (TEXT_ROUTES), checked to take that path:
    "stream" the file as it is, "limit" the same file with a limit above any row count, "gzip"
    a gzipped copy under the same name in a subdirectory (so errors name the same file)."""
    if route == "gzip":
        (path.parent / "gzip").mkdir(exist_ok=True)
        copy = path.parent / "gzip" / path.name
        copy.write_bytes(gzip.compress(path.read_bytes(), compresslevel=1))
        path = copy
    elif route == "limit":
        opts = {"limit": 1 << 40, **opts}
    src = TextSource(path, fmt=fmt, options=ReadOptions(**{"progress": False, **opts}))
    assert src._streamable() == (route == "stream"), route
    return src
