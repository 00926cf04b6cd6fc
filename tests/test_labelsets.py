"""Multi-label task data (metaprep.labelsets) and the multi-label split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metaprep.errors import ConfigError, DataError
from metaprep.labelsets import detect_task, read_labelsets
from metaprep.prep.split import split_multilabel


def _sets(path: Path, **kw: str) -> list[tuple[object, tuple[str, ...], int]]:
    return [tuple(ex) for ex in read_labelsets(path, **kw)]  # type: ignore[misc]


def test_tsv_csv_jsonl_and_fasttext_give_the_same_sets(tmp_path: Path) -> None:
    tsv = tmp_path / "t.tsv"
    tsv.write_text("text\tlabel\nred fox\tanimal, colour\nplain\t\nfox fox\tanimal,animal\n")
    csv = tmp_path / "t.csv"
    csv.write_text('text,label\nred fox,"animal,colour"\nplain,\nfox fox,"animal,animal"\n')
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("\n".join(json.dumps(o) for o in [
        {"text": "red fox", "label": ["animal", "colour"]}, {"text": "plain", "label": []},
        {"text": "fox fox", "label": ["animal", "animal"]}]) + "\n")
    ft = tmp_path / "t.txt"
    ft.write_text("__label__animal __label__colour red fox\nplain\n"
                  "__label__animal __label__animal fox fox\n")
    want = [("red fox", ("animal", "colour")), ("plain", ()), ("fox fox", ("animal",))]
    for path in (tsv, csv, jsonl, ft):
        assert [(t, s) for t, s, _ in _sets(path)] == want, path
    assert [line for _, _, line in _sets(tsv)] == [2, 3, 4]


def test_label_sep_and_pairs(tmp_path: Path) -> None:
    p = tmp_path / "p.tsv"
    p.write_text("text_a\ttext_b\tlabel\na\tb\tx|y\n")
    assert _sets(p, label_sep="|") == [(("a", "b"), ("x", "y"), 2)]
    with pytest.raises(ConfigError, match="label-sep"):
        list(read_labelsets(p, label_sep=" "))


@pytest.mark.parametrize("name, body, message, line", [
    ("m.tsv", "text\tcategory\nx\ty\n", "missing column label", 2),
    ("m.jsonl", '{"text": "x", "label": [1.5]}\n', "list of strings", 1),
    ("m.jsonl", '{"text": "x", "label": [null]}\n', "list of strings", 1),
    ("m.jsonl", '{"text": "x"}\n', "missing column", 1),
    ("m.jsonl", '{"text": 3, "label": []}\n', "must be a string", 1),
])
def test_malformed_multilabel_data_names_file_and_line(tmp_path: Path, name: str, body: str,
                                                       message: str, line: int) -> None:
    p = tmp_path / name
    p.write_text(body)
    with pytest.raises(DataError, match=message) as info:
        list(read_labelsets(p))
    assert info.value.path == str(p) and info.value.line == line


def test_detect_task(tmp_path: Path) -> None:
    single = tmp_path / "s.tsv"
    single.write_text("text\tlabel\na\tx\nb\ty\n")
    multi = tmp_path / "m.tsv"
    multi.write_text("text\tlabel\na\tx\nb\tx,y\n")
    lists = tmp_path / "l.jsonl"
    lists.write_text('{"text": "a", "label": ["x"]}\n')
    broken = tmp_path / "b.tsv"
    broken.write_text("text\tcategory\na\tx\n")
    assert detect_task(single)[0] == "single"
    assert detect_task(multi) == ("multilabel", "line 3 has 2 labels joined by ','")
    assert detect_task(multi, label_sep=";")[0] == "single"
    assert detect_task(lists) == ("multilabel", "line 1 gives its labels as a list")
    assert detect_task(broken)[0] == "single"  # the single-label reader names the problem


def test_split_multilabel_stratifies_by_the_rarest_label_and_reports(tmp_path: Path) -> None:
    rows = ["text\tlabel"]
    for i in range(60):
        labels = ["common"] + (["rare"] if i % 6 == 0 else []) + (["once"] if i == 7 else [])
        rows.append(f"text {i}\t{','.join(labels) if i % 10 else ''}")
    src = tmp_path / "all.tsv"
    src.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    sizes, notes = split_multilabel(src, out, dev=0.2, test=0.2, seed=3)
    assert sizes == {"train": 36, "dev": 12, "test": 12}
    parts = {n: list(read_labelsets(out / f"{n}.tsv")) for n in ("train", "dev", "test")}
    for name in ("train", "dev", "test"):  # the 8 rare-labelled examples are spread out
        assert sum("rare" in ex.labels for ex in parts[name]) == {"train": 4}.get(name, 2)
    texts = sorted(str(ex.text) for p in parts.values() for ex in p)
    assert texts == sorted(f"text {i}" for i in range(60))
    assert notes[0] == "6 example(s) have no label (all negative)"
    assert "2 of 3 labels have fewer than 10 examples" in notes[1]
    again, _ = split_multilabel(src, tmp_path / "again", dev=0.2, test=0.2, seed=3)
    assert (tmp_path / "again" / "dev.tsv").read_text() == (out / "dev.tsv").read_text()


def test_labels_that_differ_only_in_their_spaces_are_refused_by_line(tmp_path: Path) -> None:
    """"x y", "x\\ty" and "x\\u00a0y" were three labels to train, and one ("x y") once split
    wrote them into TSV cells; a label holding the separator became two labels there."""
    jsonl = tmp_path / "m.jsonl"
    for bad, line in (("x\ty", 2), ("x\u00a0y", 2), ("x  y", 2), ("x\ny", 2), ("x\x1by", 2)):
        jsonl.write_text(json.dumps({"text": "a", "label": ["x y"]}) + "\n"
                         + json.dumps({"text": "b", "label": ["z", bad]}) + "\n")
        with pytest.raises(DataError, match="holds a tab, a line break") as info:
            list(read_labelsets(jsonl))
        assert info.value.path == str(jsonl) and info.value.line == line
        with pytest.raises(DataError, match="holds a tab"):
            split_multilabel(jsonl, tmp_path / "out", dev=0.0, test=0.0, seed=1)
    csv = tmp_path / "m.csv"
    csv.write_text('text,label\na,"x y, z"\nb,"x\u00a0y"\n')
    with pytest.raises(DataError, match="holds a tab") as info:
        list(read_labelsets(csv))
    assert info.value.line == 3
    jsonl.write_text(json.dumps({"text": "a", "label": ["x,y"]}) + "\n")
    with pytest.raises(DataError, match="holds the label separator ','") as info:
        list(read_labelsets(jsonl))
    assert info.value.line == 1
    assert _sets(jsonl, label_sep="|") == [("a", ("x,y",), 1)]
    # outer spaces are not part of a label in any layout; single spaces inside are fine
    jsonl.write_text(json.dumps({"text": "a", "label": [" x y ", "x y"]}) + "\n")
    assert _sets(jsonl) == [("a", ("x y",), 1)]
    assert not (tmp_path / "out").exists()
