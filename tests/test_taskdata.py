from __future__ import annotations

import os
from pathlib import Path

import gensim
import pytest

from metaprep.errors import DataError
from metaprep.taskdata import (
    Example,
    count_words,
    detect_task_format,
    read_examples,
    read_word_list,
)
from metaprep.tokenize import Tokenizer, TokenizerConfig

GENSIM_DATA = Path(os.path.dirname(gensim.__file__)) / "test" / "test_data"


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_tsv_single_and_pair(tmp_path: Path) -> None:
    p = _write(tmp_path / "t.tsv", "text\tlabel\nA good film .\tpos\n\nbad\tneg\n")
    assert list(read_examples(p)) == [Example("A good film .", "pos", 2), Example("bad", "neg", 4)]
    q = _write(tmp_path / "pair.tsv", "id\ttext_a\ttext_b\tlabel\n7\tA man\tA person\t1\n")
    (ex,) = read_examples(q)
    assert ex.text == ("A man", "A person") and ex.label == "1" and ex.line == 2
    text, label, line = ex  # unpacks like a plain tuple
    assert (label, line) == ("1", 2)


def test_csv_quoting_and_line_numbers(tmp_path: Path) -> None:
    p = _write(tmp_path / "t.csv",
               'text,label\n"hello, world",a\n"two\nlines",b\nplain,c\n')
    exs = list(read_examples(p))
    assert [e.text for e in exs] == ["hello, world", "two\nlines", "plain"]
    assert [e.line for e in exs] == [2, 3, 5]


def test_jsonl_labels_become_strings(tmp_path: Path) -> None:
    p = _write(tmp_path / "t.jsonl",
               '{"text": "x y", "label": 1}\n\n{"text": "z", "label": "neg", "id": 3}\n')
    assert list(read_examples(p)) == [Example("x y", "1", 1), Example("z", "neg", 3)]


def test_fasttext_lines_real_file_latin1() -> None:
    path = GENSIM_DATA / "pang_lee_polarity.cor"
    with pytest.raises(DataError, match="utf-8") as err:
        list(read_examples(path))
    assert err.value.line is not None and str(path) in str(err.value)
    exs = list(read_examples(path, encoding="latin-1"))
    assert len(exs) == 200
    assert {e.label for e in exs} == {"neg", "pos"}
    assert exs[0] == Example("simplistic , silly and tedious .", "neg", 1)


def test_detection_by_content(tmp_path: Path) -> None:
    assert detect_task_format(_write(tmp_path / "a.txt", "text\tlabel\nx\ty\n")) == "tsv"
    assert detect_task_format(_write(tmp_path / "b.txt", "text_a,text_b,label\n")) == "csv"
    assert detect_task_format(_write(tmp_path / "c.txt", '{"text": "x"}\n')) == "jsonl"
    assert detect_task_format(_write(tmp_path / "d.txt", "__label__a x\n")) == "fasttext"
    assert detect_task_format(_write(tmp_path / "e.txt", "the\nof\n")) is None


@pytest.mark.parametrize(
    ("name", "text", "match", "line"),
    [
        ("t.tsv", "sentence\tlabel\nx\ty\n", "missing column.*text", 1),
        ("t.csv", "text\nx\n", "missing column.*label", 1),
        ("t.tsv", "text\tlabel\nx\ty\tz\n", "3 field", 2),
        ("t.jsonl", '{"text": "x", "label": "a"}\n{"txt": "y", "label": "b"}\n', "missing", 2),
        ("t.jsonl", '{"text": "x", "label": "a"}\n[1]\n', "JSON object", 2),
        ("t.jsonl", '{"text": "x", "label": "a"}\n{"text": oops}\n', "not valid JSON", 2),
        ("t.txt", "__label__a x\nno label here\n", "no __label__", 2),
        ("t.txt", "__label__a __label__b x\n", "2 labels", 1),
        ("t.tsv", "text\tlabel\nx\t\n", "empty label", 2),
    ],
)
def test_malformed(tmp_path: Path, name: str, text: str, match: str, line: int) -> None:
    p = _write(tmp_path / name, text)
    with pytest.raises(DataError, match=match) as err:
        list(read_examples(p))
    assert err.value.path == str(p) and err.value.line == line


def test_unlabelled_allowed_when_asked(tmp_path: Path) -> None:
    p = _write(tmp_path / "t.tsv", "text\nonly text\n")
    assert list(read_examples(p, require_label=False)) == [Example("only text", None, 2)]


def test_missing_file_and_unknown_layout(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such"):
        read_examples(tmp_path / "nope.tsv")
    with pytest.raises(DataError, match="cannot tell"):
        read_examples(_write(tmp_path / "words.txt", "a\nb\n"))


def test_count_words_pairs_and_tokenizer(tmp_path: Path) -> None:
    p = _write(tmp_path / "t.tsv", "text_a\ttext_b\tlabel\nThe cat .\tthe dog\tx\n")
    counts = count_words([p], Tokenizer(TokenizerConfig(lowercase=True)))
    assert counts == {"the": 2, "cat": 1, ".": 1, "dog": 1}
    ws = count_words([p], Tokenizer(TokenizerConfig(mode="whitespace")))
    assert ws["The"] == 1 and ws["the"] == 1


def test_word_list(tmp_path: Path) -> None:
    p = _write(tmp_path / "w.txt", "the\n\nCat\nthe\n  dog  \n")
    assert read_word_list(p) == ["the", "Cat", "dog"]
    bad = _write(tmp_path / "bad.txt", "the\nthe 123\n")
    with pytest.raises(DataError, match="one word per line") as err:
        read_word_list(bad)
    assert err.value.line == 2
