"""Texts -> model ids, as training made them: the exported tokenizer, the memory-mapped
vocabulary under the exported case policy (unknown words -> UNK), truncation at ``max_tokens``.

Two paths give the same ids. In Python, ``metaprep.tokenize`` and the vocabulary's lookups; in
onnxruntime, a text graph (``text.onnx``, exporter/textgraph.py) that tokenizes and looks tokens up
in C++, leaving only the tokens its map lacks to Python. ``TextPath`` holds what both need: the
Python path itself, what a text graph is fed and what its outputs become, and the probe texts on
which a model proves at load that its text graph gives exactly the Python path's ids.
Standard library and numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from metaprep.errors import ModelError
from metaprep.ids import ID_OFFSET, MISSED_ID
from metaprep.runtime.runcheck import checked_ids
from metaprep.runtime.vocabfile import MappedVocab
from metaprep.tokenize import Tokenizer

__all__ = ["Encoded", "TextPath", "pad_batch", "pad_flat", "probe_texts"]

# one batch's (ids (B, T) int64, lengths (B,), token counts up to max_tokens + 1 (B,))
Encoded = tuple[np.ndarray, np.ndarray, np.ndarray]
# a text graph takes a text of at most this many characters a token (graphcheck's bound too)
_CHARS_A_TOKEN = 32


class TextPath:
    """Texts -> (ids, lengths, token counts) for one model directory."""

    def __init__(self, tokenizer: Tokenizer, vocab: MappedVocab, max_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.max_tokens = max_tokens

    def tokens(self, texts: Sequence[str]) -> list[list[str]]:
        """Each text's tokens, at most max_tokens + 1 (one past the limit says "truncated"; a
        huge line is never tokenized whole)."""
        return self.tokenizer.tokenize_many(texts, self.max_tokens + 1)

    def in_python(self, texts: Sequence[str]) -> Encoded:
        lists = self.tokens(texts)
        counts = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        lengths = np.minimum(counts, self.max_tokens)
        for k in np.flatnonzero(counts > self.max_tokens).tolist():
            del lists[k][self.max_tokens :]
        ids, _ = pad_flat(self.vocab.encode_array(list(chain.from_iterable(lists))), lengths)
        return ids, lengths, counts

    # --- the text graph --------------------------------------------------------------------------
    def graph_texts(self, texts: Sequence[str]) -> Sequence[str] | None:
        """What a graph that reads text (text or serve) is fed for the texts, or None for a
        batch it cannot take exactly: a text so long that the Python path reads only its first
        tokens (no token is shorter than a character)."""
        fed = list(map(str.lower, texts)) if self.tokenizer.config.lowercase else texts
        if max(map(len, fed), default=0) > _CHARS_A_TOKEN * (self.max_tokens + 1):
            return None
        return fed

    def fits(self, text: str) -> bool:
        """Whether a text graph can take the text exactly (as graph_texts decides)."""
        return self.graph_texts([text]) is not None

    def from_graph(self, ids: np.ndarray, missed: np.ndarray, rows: int, path: Path) -> Encoded:
        """The text graph's outputs for ``rows`` texts as the Python path gives them: the
        tokens its map lacks looked up in Python (the case policy's other forms), truncated."""
        checked_ids(ids, rows, len(self.vocab) + ID_OFFSET, path, missed=missed)
        if missed.size:
            ids[ids == MISSED_ID] = self.vocab.encode_array(missed.tolist())
        # counts as the Python path gives them: one past the limit says "truncated"
        counts = np.minimum(np.count_nonzero(ids, axis=1), self.max_tokens + 1)
        width = max(1, min(ids.shape[1], self.max_tokens))  # every text empty: one padding id
        ids = ids[:, :width] if ids.shape[1] >= width else np.zeros((rows, 1), np.int64)
        return np.ascontiguousarray(ids), np.minimum(counts, self.max_tokens), counts

    def check_graph(self, session: Any, encode: Callable[[Sequence[str]], Encoded | None],
                    path: Path, files: str, *, outputs: list[str] | None) -> None:
        """A ModelError naming ``path`` unless the ``session`` of a graph that reads text reads
        text and gives ``outputs`` (None: not checked here), and ``encode`` (texts through it)
        gives exactly the Python path's ids on the probe texts (``files``: what the Python path
        reads, for the message)."""
        ports = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
        if ports[0] != ["text"] or outputs is not None and ports[1] != outputs:
            raise ModelError(f"{path.name} reads {ports[0]} and gives {ports[1]}, not text -> "
                             "ids, missed", path=path, hint="re-export the model directory")
        probes = self.probes()
        try:
            got = encode(probes)
        except ModelError:
            raise
        except Exception as exc:  # onnxruntime's errors are not typed
            raise ModelError(f"{path.name} fails on the probe texts: {exc}", path=path,
                             hint="re-export the model directory") from exc
        want = self.in_python(probes)
        if got is None or not all(np.array_equal(a, b) for a, b in zip(got, want, strict=True)):
            raise ModelError(f"{path.name} does not give the ids that {files} give", path=path,
                             hint="re-export the model directory")

    def probes(self) -> list[str]:
        """The probe texts (probe_texts) that a text graph takes: each at most max_tokens
        vocabulary words, so none is cut off, and within graph_texts' length."""
        words = [self.vocab.word(r) for r in range(min(200, len(self.vocab)))]
        return [p for p in probe_texts(words, self.max_tokens) if self.fits(p)]


_PROBES = ["", "   ", "Hello, World!", "naïve café — “quotes” it's co-op l'été",
           "İstanbul ΑΣ Σα ΌΣΟΣ", "e\u0301 x² ½ 123_4 Ⅻ", "a\x00b \x1c\x1f c", "中文 日本語 😀👍🏽",
           "ﬁ ﬂ ŉ", "UPPER lower Title MiXeD"]


def probe_texts(words: Sequence[str], max_tokens: int) -> list[str]:
    """Texts the text graph must tokenize exactly as Python: hostile cases, and vocabulary
    words as written, upper- and title-cased (the case policy's lookups), max_tokens words a
    text so that truncation hides none of them (200 words in one text made every model with
    max_tokens up to 33 fail its own check)."""
    heads = [" ".join(words[i : i + max_tokens]) for i in range(0, len(words), max_tokens)]
    return [*_PROBES, *heads, *(h.upper() for h in heads), *(h.title() for h in heads)]


# --- padding -------------------------------------------------------------------------------------
def pad_flat(flat: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows laid end to end in ``flat`` -> right-padded ids (B,T) int64 (T >= 1), lengths."""
    width = max(1, int(lengths.max(initial=0)))
    ids = np.zeros((len(lengths), width), dtype=np.int64)
    ids[np.arange(width)[None, :] < lengths[:, None]] = flat
    return ids, lengths


def pad_batch(seqs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad with id 0 -> ids (B,T) int64, lengths (B,) int64 (T >= 1)."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    flat = np.fromiter(chain.from_iterable(seqs), dtype=np.int64, count=int(lengths.sum()))
    return pad_flat(flat, lengths)
