from __future__ import annotations

import os
from pathlib import Path

import gensim
import pytest

from metaprep.errors import ConfigError, DataError
from metaprep.prep.vocab import count_words
from metaprep.taskdata import (
    Columns,
    Example,
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
        ("t.jsonl", '{"text": "x", "label": "a"}\n{"text": "y", "label": null}\n',
         "'label' must be a non-empty string or an integer, not null", 2),
        ("t.jsonl", '{"text": "x", "label": true}\n', "not a boolean", 1),
        ("t.jsonl", '{"text": "x", "label": 0.5}\n', "not a number", 1),
        ("t.jsonl", '{"text": "x", "label": ["a"]}\n', "not a list", 1),
        ("t.jsonl", '{"text": "x", "label": ""}\n', "not empty", 1),
        ("t.jsonl", '{"text": null, "label": "a"}\n', "'text' must be a string, not null", 1),
        ("t.jsonl", '{"text_a": "x", "text_b": 3, "label": "a"}\n', "'text_b' must be a str", 1),
        ("t.jsonl", '{"text": "x", "label": "a", "label": "b"}\n', "key.s. label appear", 1),
        ("t.jsonl", "[" * 100_000 + "\n", "not valid JSON", 1),
        ("t.tsv", "\nid\ttext\tlabel\ttext\nx\ty\tz\tw\n", "text appear more than once", 2),
        ("t.csv", "label,text,label\na,b,c\n", "column name.s. label appear more than once", 1),
        ("t.tsv", "text\tlabel\rx\ty\r", r"a line ends in a bare carriage return \(CR\)", 1),
        ("t.jsonl", '{"text": "x", "label": "a"}\n{"text": "' + "y" * (1 << 20) + '"}\n',
         "the line is longer than 1,048,576 bytes", 2),  # read whole: 200 MB took 1.2 GB
        ("t.txt", "__label__a x\n__label__b " + "y " * (1 << 20) + "\n",
         "the line is longer than 1,048,576 bytes", 2),
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
    q = _write(tmp_path / "t.jsonl", '{"text": "a", "label": null}\n{"text": "b"}\n')
    assert [e.label for e in read_examples(q, require_label=False)] == [None, None]


def test_other_column_names(tmp_path: Path) -> None:
    cols = Columns(text="sentence", label="gold")
    tsv = _write(tmp_path / "t.txt", "id\tsentence\tgold\n1\tnice one\tpos\n")
    assert detect_task_format(tsv) is None and detect_task_format(tsv, columns=cols) == "tsv"
    assert list(read_examples(tsv, columns=cols)) == [Example("nice one", "pos", 2)]
    jsonl = _write(tmp_path / "t.jsonl", '{"sentence": "x y", "gold": 2, "text": "ignored"}\n')
    assert list(read_examples(jsonl, columns=cols)) == [Example("x y", "2", 1)]
    pair = _write(tmp_path / "p.csv", "premise,hypothesis,y\nA man,A person,1\n")
    pcols = Columns(text_a="premise", text_b="hypothesis", label="y")
    assert list(read_examples(pair, columns=pcols)) == [Example(("A man", "A person"), "1", 2)]
    with pytest.raises(DataError, match="missing column.*gold") as err:
        list(read_examples(_write(tmp_path / "s.tsv", "sentence\tlabel\nx\ty\n"), columns=cols))
    assert err.value.line == 1
    counts = count_words([tsv], Tokenizer(TokenizerConfig()), columns=cols)
    assert counts == {"nice": 1, "one": 1}


@pytest.mark.parametrize("kwargs", [{"text": ""}, {"label": "text"}, {"text_a": " a"}])
def test_bad_column_names_are_config_errors(kwargs: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Columns(**kwargs)


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


@pytest.mark.parametrize(("name", "text"), [
    ("t.jsonl", '{"text": "a", "label": "x y"}\n{"text": "b", "label": "x\\ty"}\n'),
    ("t.jsonl", '{"text": "a", "label": "x y"}\n{"text": "b", "label": "x\\u00a0y"}\n'),
    ("t.csv", 'text,label\na,x y\nb,"x\ty"\n'),
    ("t.tsv", "text\tlabel\na\tx y\nb\tx  y\n"),
    ("t.txt", "__label__x a\n__label__x\x1by b\n"),
])
def test_labels_with_other_whitespace_are_refused_by_line(tmp_path: Path, name: str,
                                                          text: str) -> None:
    """Distinct labels to train, one label once `split` wrote them as TSV cells."""
    p = _write(tmp_path / name, text)
    with pytest.raises(DataError, match="holds a tab, a line break, a no-break space") as err:
        list(read_examples(p))
    assert err.value.path == str(p) and err.value.line == 3 - name.endswith(("jsonl", "txt"))
    assert [ex.label for ex in read_examples(p, require_label=False)][1] is not None  # predict


def test_a_bare_fasttext_label_is_refused(tmp_path: Path) -> None:
    p = _write(tmp_path / "t.txt", "__label__a x\n__label__ y\n")
    with pytest.raises(DataError, match="empty label") as err:
        list(read_examples(p))
    assert err.value.line == 2
