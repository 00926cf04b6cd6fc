"""The one tokenizer. align, train and the production runtime all use it, so the words aligned
are exactly the words the model sees. Pure standard library: the runtime imports it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from itertools import islice
from typing import Any

__all__ = ["DEFAULT_MAX_TOKENS", "DEFAULT_PATTERN", "MAX_TOKENS_LIMIT", "Tokenizer",
           "TokenizerConfig"]

# Words (with inner hyphens/apostrophes), numbers, and single punctuation marks: close to what
# GloVe/word2vec vocabularies contain, without a language-specific dependency.
DEFAULT_PATTERN = r"\w+(?:[-'’]\w+)*|[^\w\s]"
_NON_SPACE = re.compile(r"\S+")
# Tokens kept of one text, in training, evaluation and serving alike (a run's max_tokens,
# carried into its model directory). 512: far more than a sentence or a package description;
# a long document is cut to its first 512 tokens.
DEFAULT_MAX_TOKENS = 512
# the most tokens a text may keep: the runtime's memory grows with it (10M tokens took 18 GB)
MAX_TOKENS_LIMIT = 100_000


@dataclass(frozen=True)
class TokenizerConfig:
    mode: str = "regex"  # "regex" (pattern below) or "whitespace" (str.split)
    pattern: str = DEFAULT_PATTERN  # used when mode == "regex"
    lowercase: bool = False  # off: cased sources (GloVe 840B, word2vec) keep case information
    max_tokens: int | None = None  # truncate longer texts (None: no limit)

    def __post_init__(self) -> None:
        if self.mode not in ("regex", "whitespace"):
            raise ValueError(f"tokenizer mode must be 'regex' or 'whitespace', not {self.mode!r}")
        if self.mode == "regex":
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"tokenizer pattern does not compile: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenizerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown tokenizer key(s): {', '.join(unknown)}")
        return cls(**data)


class Tokenizer:
    """Split text into tokens according to a TokenizerConfig."""

    def __init__(self, config: TokenizerConfig | None = None) -> None:
        self.config = config or TokenizerConfig()
        self._regex = re.compile(self.config.pattern) if self.config.mode == "regex" else None

    def __call__(self, text: str) -> list[str]:
        return self.tokenize(text)

    def tokenize(self, text: str) -> list[str]:
        if self.config.lowercase:
            text = text.lower()
        tokens = self._regex.findall(text) if self._regex is not None else text.split()
        if self.config.max_tokens is not None:
            tokens = tokens[: self.config.max_tokens]
        return tokens

    def tokenize_many(self, texts: Sequence[str], limit: int) -> list[list[str]]:
        """The first ``limit`` tokens of each text (all when fewer), without the max_tokens cut.
        Work and memory are bounded by ``limit``, not by the text: the texts are split at C speed
        in one ``map`` (no Python step per text), a huge one token by token until the limit."""
        split = self._regex.findall if self._regex is not None else str.split
        cap = 32 * limit  # a text of n chars has <= n tokens
        # max() over map(len) is one C loop; the per-text loops run only when some text is over
        huge = ([k for k, t in enumerate(texts) if len(t) > cap]
                if max(map(len, texts), default=0) > cap else [])
        source: Iterable[str] = texts
        if huge:  # split as empty here, token by token below
            blanked = list(texts)
            for k in huge:
                blanked[k] = ""
            source = blanked
        if self.config.lowercase:
            source = map(str.lower, source)
        out = list(map(split, source))
        for k in huge:
            out[k] = list(islice(self.iter_tokens(texts[k]), limit))
        if max(map(len, out), default=0) > limit:
            for tokens in out:
                del tokens[limit:]
        return out

    def iter_tokens(self, text: str) -> Iterator[str]:
        """The same tokens as ``tokenize`` (without its max_tokens cut), one at a time: a caller
        that stops after N tokens does work and memory bounded by N, not by the text."""
        if self.config.lowercase:
            text = text.lower()
        # \S+ splits exactly where str.split() does (both use Python's Unicode whitespace)
        regex = self._regex if self._regex is not None else _NON_SPACE
        return (m.group() for m in regex.finditer(text))
