from __future__ import annotations

import metaprep
from metaprep.ids import UNK_ID, VocabIndex, case_variants
from metaprep.tokenize import Tokenizer, TokenizerConfig


def test_public_api_is_sorted_and_importable() -> None:
    assert metaprep.__all__ == sorted(metaprep.__all__)
    for name in metaprep.__all__:
        assert hasattr(metaprep, name)


def test_tokenizer_regex_and_whitespace() -> None:
    tok = Tokenizer()
    assert tok("Don't stop, well-known U.S.") == [
        "Don't", "stop", ",", "well-known", "U", ".", "S", "."]
    ws = Tokenizer(TokenizerConfig(mode="whitespace", lowercase=True, max_tokens=2))
    assert ws("A  b\tc") == ["a", "b"]
    assert TokenizerConfig.from_dict(tok.config.to_dict()) == tok.config


def test_case_fallback_chain() -> None:
    assert [s for s, _ in case_variants("paris", "fallback")] == ["exact", "title", "upper"]
    index = VocabIndex(["Paris", "the"], case_policy="fallback")
    assert index.encode(["paris", "THE", "nope"]) == [2, 3, UNK_ID]
