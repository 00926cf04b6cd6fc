"""Helpers shared by the reader tests."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from metaprep.prep.readers import ReadOptions, open_source
from metaprep.prep.readers.base import Source


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
