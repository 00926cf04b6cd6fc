"""WordPiece composition for transformer input tables: cutting words, and OOV rows in a store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from metaprep.cli import cli
from metaprep.errors import ConfigError
from metaprep.prep.readers import ReadOptions, open_source
from metaprep.prep.readers.wordpiece import MAX_RUN, has_wordpieces, wordpieces
from metaprep.prep.store import Store

# A small BERT-like vocabulary: specials, whole words, punctuation, continuation pieces.
VOCAB = ["[PAD]", "[UNK]", "un", "##aff", "##able", "aff", "able", "the", "'", "t", "don",
         "##s", "cat", "-", "e", "##-"] + [f"##x{i}" for i in range(10)]
INDEX = {t: i for i, t in enumerate(VOCAB)}


@pytest.mark.parametrize(
    "word, pieces",
    [
        ("unaffable", ["un", "##aff", "##able"]),  # the example of BERT's own README
        ("cats", ["cat", "##s"]),
        ("don't", ["don", "'", "t"]),  # punctuation is its own run
        ("un-able", ["un", "-", "able"]),
        ("the", ["the"]),
        ("catz", []),  # "z" is in no piece: the run cannot be cut
        ("cat\u00e9s-the", ["-", "the"]),  # one run uncuttable, the others kept
        ("", []),
    ],
)
def test_words_are_cut_longest_match_first(word: str, pieces: list[str]) -> None:
    assert [VOCAB[r] for r in wordpieces(word, INDEX)] == pieces


def test_very_long_runs_are_unknown() -> None:
    index = {"a": 0, "##a": 1}
    assert len(wordpieces("a" * MAX_RUN, index)) == MAX_RUN
    assert wordpieces("a" * (MAX_RUN + 1), index) == []


def test_only_vocabularies_with_pieces_have_subwords() -> None:
    assert has_wordpieces(VOCAB)
    assert not has_wordpieces(["the", "cat", "##", "a##b"] * 10)


def _table(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((len(VOCAB), 4)).astype(np.float32)
    path = tmp_path / "emb.npy"
    np.save(path, matrix)
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return path, matrix


def test_matrix_source_composes_the_mean_of_the_pieces(tmp_path: Path) -> None:
    path, matrix = _table(tmp_path)
    src = open_source(path, options=ReadOptions(progress=False))
    assert src.has_subwords
    got = src.subword_vectors(["unaffable", "catz", "cats"])
    np.testing.assert_allclose(got[0], matrix[[2, 3, 4]].mean(axis=0), rtol=1e-6)
    assert not got[1].any()
    np.testing.assert_allclose(got[2], matrix[[12, 11]].mean(axis=0), rtol=1e-6)


def test_align_fills_and_marks_derived_rows(tmp_path: Path) -> None:
    path, matrix = _table(tmp_path)
    words = tmp_path / "words.txt"
    words.write_text("the\nunaffable\ncats\ncatz\n", encoding="utf-8")
    out = tmp_path / "s.h5"
    res = CliRunner().invoke(cli, ["align", f"bert={path}", "--vocab", str(words),
                                   "--oov", "bert=subword", "-q", "-o", str(out)])
    assert res.exit_code == 0, res.output
    with Store(out) as s:
        vocab = list(s.vocab)
        vectors, present, derived = s.read_vectors("bert"), s.present("bert"), s.derived("bert")
        assert s.source_attrs("bert")["oov_filled"] == {"subword": 3}
    row = {w: i for i, w in enumerate(vocab)}
    assert present[row["the"]] and not present[row["unaffable"]]
    assert derived[row["unaffable"]] and derived[row["cats"]] and not derived[row["catz"]]
    np.testing.assert_allclose(vectors[row["unaffable"]], matrix[[2, 3, 4]].mean(axis=0),
                               rtol=1e-6)


def test_a_table_without_pieces_refuses_subword(tmp_path: Path) -> None:
    path = tmp_path / "plain.npy"
    np.save(path, np.ones((3, 2), np.float32))
    (tmp_path / "plain.vocab").write_text("a\nb\nc\n")
    words = tmp_path / "w.txt"
    words.write_text("a\nzz\n")
    res = CliRunner().invoke(cli, ["align", f"p={path}", "--vocab", str(words),
                                   "--oov", "p=subword", "-q", "-o", str(tmp_path / "s.h5")])
    assert isinstance(res.exception, ConfigError)  # main() prints it and exits with status 2
    assert "no subword information" in str(res.exception) and "WordPiece" in str(res.exception)
