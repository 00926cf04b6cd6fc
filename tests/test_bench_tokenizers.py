"""benchmarks/bench_tokenizers.py's rewrite of the tokenizer pattern for HF `tokenizers`
(Oniguruma) splits text exactly as Python's ``re`` does. Skipped where `tokenizers` is absent:
it is not a dependency of metaprep, only of that benchmark."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metaprep.exporter.textgraph import re2_pattern
from metaprep.tokenize import DEFAULT_PATTERN, Tokenizer, TokenizerConfig

tokenizers = pytest.importorskip("tokenizers")

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_tokenizers.py"
_spec = importlib.util.spec_from_file_location("bench_tokenizers", _PATH)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_tokenizers"] = bench
_spec.loader.exec_module(bench)

MODES = [("regex", DEFAULT_PATTERN), ("whitespace", DEFAULT_PATTERN),
         ("regex", r"[A-Za-z]+|\d{1,3}?|.")]


def _split(mode: str, pattern: str) -> object:
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Split(Regex(re2_pattern(mode, pattern)), behavior="removed",
                                invert=True)


SPLITS = {m: _split(*m) for m in MODES}


def _check(text: str) -> None:
    for mode, pattern in MODES:
        want = Tokenizer(TokenizerConfig(mode=mode, pattern=pattern)).tokenize(text)
        got = [tok for tok, _ in SPLITS[mode, pattern].pre_tokenize_str(text)]  # type: ignore[attr-defined]
        assert got == want, (mode, pattern, text)


@pytest.mark.parametrize("text", bench.HOSTILE[:-2])  # the two huge ones are in the benchmark
def test_hostile_texts_split_alike(text: str) -> None:
    _check(text)


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=40))
def test_any_text_splits_alike(text: str) -> None:
    _check(text)


@pytest.mark.parametrize("pattern", [r"(\w+)", r"(?i)\w+", r"^\w+", r"\w*", r"\b\w+",
                                     r"(?=a)\w"])
def test_patterns_without_an_exact_rewrite_are_refused(pattern: str) -> None:
    re.compile(pattern)
    with pytest.raises(ValueError):
        re2_pattern("regex", pattern)
