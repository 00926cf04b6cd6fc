"""Embedding readers: one module per format, each a :class:`Source`, and a detecting dispatcher.

    >>> from metaprep.prep.readers import open_source
    >>> with open_source("glove.840B.300d.txt") as src:      # format detected from content
    ...     for chunk in src.iter_chunks(wanted={"the", "cat"}):
    ...         ...                                          # chunk.words, chunk.vectors

Formats (see docs/formats.md): ``glove`` and ``word2vec-text`` (text, .vec), ``word2vec-binary``,
``fasttext-bin`` (with subword n-grams), ``npy`` and ``safetensors`` (a matrix plus a vocab file).
Text and word2vec binary files may be gzip-compressed.
"""

from __future__ import annotations

from pathlib import Path

from metaprep.prep.readers.base import Chunk, ReadOptions, ReadStats, Source
from metaprep.prep.readers.detect import FORMATS, detect_format

__all__ = [
    "Chunk",
    "FORMATS",
    "ReadOptions",
    "ReadStats",
    "Source",
    "detect_format",
    "open_source",
]


def open_source(
    path: str | Path, *, fmt: str | None = None, options: ReadOptions | None = None
) -> Source:
    """Open an embedding file for streaming; ``fmt`` (one of FORMATS) skips detection."""
    path = Path(path)
    options = options or ReadOptions()
    if fmt is None:
        fmt = detect_format(path)
    elif fmt not in FORMATS:
        from metaprep.errors import ConfigError

        raise ConfigError(
            f"unknown embedding format {fmt!r}; choose one of: {', '.join(FORMATS)}",
            path=path,
        )
    if fmt in ("glove", "word2vec-text"):
        from metaprep.prep.readers.text import TextSource

        return TextSource(path, fmt=fmt, options=options)
    if fmt == "word2vec-binary":
        from metaprep.prep.readers.word2vec_binary import Word2VecBinarySource

        return Word2VecBinarySource(path, options=options)
    if fmt == "fasttext-bin":
        from metaprep.prep.readers.fasttext_bin import FastTextBinSource

        return FastTextBinSource(path, options=options)
    from metaprep.prep.readers.matrix import MatrixSource

    return MatrixSource(path, fmt=fmt, options=options)
