"""fastText .bin models (Facebook's native binary, with subword n-gram buckets), read through
gensim's ``load_facebook_vectors``: it parses the binary format itself (no pickle).

In-vocabulary words stream like every other source (their vectors are what fastText's
``get_word_vector`` returns); ``subword_vectors(words)`` composes vectors for any word from its
character n-grams, which is how align can fill words the model never saw.

The whole model is loaded at open (fastText's format is not row-streamable: the n-gram matrix
follows the vocabulary), so memory is the model's size.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metaprep.errors import FormatError
from metaprep.prep.readers._io import (
    HINT_REPLACE,
    HINT_SKIP,
    Progress,
    check_options,
    note_bad_line,
    open_binary,
)
from metaprep.prep.readers.base import Chunk, ReadOptions, ReadStats, Source
from metaprep.prep.readers.detect import is_fasttext_head
from metaprep.prep.readers.fasttext_layout import check_fasttext_layout

__all__ = ["FastTextBinSource"]

_ROWS_PER_CHUNK = 65536
_GENSIM_LOGGER = "gensim.models._fasttext_bin"


class _DecodeFailures(logging.Handler):
    """Collects the words gensim could not decode as UTF-8 (it logs them and backslash-escapes
    them), so strict/replace can be applied as for every other format."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.failed: dict[str, bytes] = {}  # the escaped word gensim made -> its raw bytes

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if "failed to decode" in str(record.msg) and isinstance(args, tuple) and len(args) == 2:
            raw, escaped = args
            if isinstance(raw, bytes) and isinstance(escaped, str):
                self.failed[escaped] = raw


class FastTextBinSource(Source):
    """A fastText .bin model; ``has_subwords`` is True when it has n-gram buckets."""

    format = "fasttext-bin"

    def __init__(self, path: str | Path, *, options: ReadOptions | None = None) -> None:
        self.path = Path(path)
        self.options = check_options(options or ReadOptions())
        self.stats = ReadStats()
        self.declared_count = None
        f = open_binary(self.path)
        try:
            head = f.read(48)
            size = f.size
            gzipped = f.gzipped
        finally:
            f.close()
        if gzipped or not is_fasttext_head(head):
            raise FormatError(
                "not a fastText .bin model (its first bytes are not fastText's header)",
                path=self.path, offset=0,
                hint="decompress it first" if gzipped else "for .vec text files use word2vec-text",
            )
        check_fasttext_layout(self.path)  # gensim trusts every count in the file
        bar = Progress(
            total=size, desc=f"{self.path.name} (loading)", enabled=self.options.progress
        )
        self._kv = self._load()
        bar.update(size, 0)
        bar.close()
        self.dim = int(self._kv.vector_size)
        self.declared_count = len(self._kv.index_to_key)
        self.has_subwords = int(getattr(self._kv, "bucket", 0) or 0) > 0

    def _load(self) -> Any:
        from gensim.models.fasttext import load_facebook_vectors

        handler = _DecodeFailures()
        logger = logging.getLogger(_GENSIM_LOGGER)
        logger.addHandler(handler)
        try:
            kv = load_facebook_vectors(str(self.path))
        except NotImplementedError as exc:  # supervised (classifier) models
            raise FormatError(
                f"cannot read this fastText model: {exc}", path=self.path,
                hint="export its word vectors to a .vec file with fastText's print-word-vectors",
            ) from exc
        except Exception as exc:  # noqa: BLE001 - gensim's parser asserts; the layout was checked
            raise FormatError(
                f"the fastText model is truncated or corrupt ({type(exc).__name__}: {exc})",
                path=self.path, hint="download it again",
            ) from exc
        finally:
            logger.removeHandler(handler)
        self._failed = handler.failed
        return kv

    # --- the Source contract -------------------------------------------------------------------
    def _words(self) -> Iterator[tuple[int, str]]:
        """(row, word) pairs after the encoding policy; counts rows, bad words, duplicates."""
        self.stats = stats = ReadStats()
        seen: set[str] = set()
        limit = self.options.limit
        for row, word in enumerate(self._kv.index_to_key):
            if limit is not None and row >= limit:
                break
            stats.rows_read += 1
            raw = self._failed.get(word)
            if raw is not None:
                if self.options.encoding_errors == "replace":
                    word = raw.decode("utf-8", errors="replace")
                else:
                    reason = f"word {row + 1} of the vocabulary is not valid UTF-8: {raw!r}"
                    if self.options.on_bad_line == "error":
                        raise FormatError(
                            reason, path=self.path,
                            hint=f"{HINT_REPLACE}, {HINT_SKIP}",
                        )
                    note_bad_line(stats, f"word {row + 1}", reason)
                    continue
            if word in seen:
                stats.duplicates += 1
                continue
            seen.add(word)
            yield row, word

    def iter_chunks(self, wanted: Collection[str] | None = None) -> Iterator[Chunk]:
        rows: list[int] = []
        words: list[str] = []
        for row, word in self._words():
            if wanted is not None and word not in wanted:
                continue
            rows.append(row)
            words.append(word)
            if len(rows) >= _ROWS_PER_CHUNK:
                yield self._chunk(rows, words)
                rows, words = [], []
        if rows:
            yield self._chunk(rows, words)

    def _chunk(self, rows: list[int], words: list[str]) -> Chunk:
        """The vectors of ``rows``; a word whose composed vector overflowed to inf is a bad row
        (the matrix itself was checked finite when the model was opened)."""
        vectors = np.asarray(self._kv.vectors[rows], dtype=np.float32)
        ok = np.isfinite(vectors).all(axis=1)
        if ok.all():
            return Chunk(words, vectors)
        for i in np.flatnonzero(~ok):
            reason = f"the vector of {words[i]!r} (word {rows[i] + 1}) is not finite"
            if self.options.on_bad_line == "error":
                raise FormatError(reason, path=self.path, hint=HINT_SKIP)
            note_bad_line(self.stats, f"word {rows[i] + 1}", reason)
        return Chunk([words[i] for i in np.flatnonzero(ok)], vectors[ok])

    def iter_words(self) -> Iterator[list[str]]:
        words: list[str] = []
        for _, word in self._words():
            words.append(word)
            if len(words) >= _ROWS_PER_CHUNK:
                yield words
                words = []
        if words:
            yield words

    def subword_vectors(self, words: Sequence[str]) -> np.ndarray:
        """fastText's vector for each word: in-vocabulary words get their own vector, others the
        mean of their character n-gram vectors (zeros when none of its n-grams exist, as in
        fastText itself)."""
        out = np.zeros((len(words), self.dim), dtype=np.float32)
        if not self.has_subwords:
            raise NotImplementedError(f"{self.path} has no subword buckets")
        for i, word in enumerate(words):
            try:
                out[i] = self._kv.get_vector(word)
            except KeyError:  # no n-gram of the word is in the model
                pass
        bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
        if len(bad):  # finite n-gram rows whose mean overflowed
            raise FormatError(f"the vector composed for {words[bad[0]]!r} is not finite",
                              path=self.path, hint="the model's values are out of range")
        return out

    def close(self) -> None:
        self._kv = None
