"""Multi-label task data: examples tagged with any number of labels (none included).

The same four layouts as ``metaprep.taskdata``, with the label read as a set:

    .tsv / .csv      the label column holds the labels joined by ``label_sep`` (default ``,``);
                     an empty cell is an example with no label
    .jsonl           the label is a list of strings (or one string / integer: one label)
    fastText         any number of ``__label__X`` prefixes, none included

Labels within an example are de-duplicated and kept in first-seen order. Each label is checked
as single-label ones are (``taskdata.check_label``: single spaces between words) and may not
hold ``label_sep`` in any layout, since ``split`` writes the labels of an example joined by it.
``detect_task`` tells a multi-label file from a single-label one by the data alone. Pure
standard library.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from metaprep.errors import ConfigError, DataError
from metaprep.taskdata import (
    Columns,
    check_label,
    detect_task_format,
    fasttext_records,
    json_records,
    json_type_name,
    numbered_lines,
    read_examples,
)

__all__ = ["TASKS", "LabelSetExample", "check_label_sep", "detect_task", "read_labelsets"]

TASKS = ("single", "multilabel")


class LabelSetExample(NamedTuple):
    text: str | tuple[str, str]  # one text, or a (text_a, text_b) pair
    labels: tuple[str, ...]  # empty: an example with no label (all negative)
    line: int  # 1-based line where the example starts


def check_label_sep(sep: str) -> str:
    if not sep or sep != sep.strip() or "\n" in sep:
        raise ConfigError(f"--label-sep must be a non-empty separator without spaces, not {sep!r}")
    return sep


def _unique(labels: list[str], path: Path, line: int, sep: str) -> tuple[str, ...]:
    """The labels checked (check_label, no ``sep`` inside), empty ones dropped, each once."""
    out = []
    for x in labels:
        x = check_label(x, path, line)
        if sep in x:
            raise DataError(f"label {x!r} holds the label separator {sep!r}", path=path,
                            line=line, hint="choose another --label-sep (a character no label "
                            "holds)")
        if x:
            out.append(x)
    return tuple(dict.fromkeys(out))


def _layout(path: Path, fmt: str | None, encoding: str, c: Columns) -> str:
    if not path.is_file():
        raise DataError("no such task data file", path=path)
    found = fmt or detect_task_format(path, encoding=encoding, columns=c)
    if found is None:
        raise DataError("cannot tell the layout of this file", path=path,
                        hint="multi-label data needs a header text,label (TSV/CSV), JSONL with "
                             "a label list, or fastText __label__ lines")
    return found


def read_labelsets(path: str | Path, *, label_sep: str = ",", encoding: str = "utf-8",
                   fmt: str | None = None, columns: Columns | None = None
                   ) -> Iterator[LabelSetExample]:
    """Stream ``LabelSetExample(text, labels, line)`` from a multi-label task file."""
    c, p = columns or Columns(), Path(path)
    check_label_sep(label_sep)
    layout = _layout(p, fmt, encoding, c)
    if layout == "jsonl":
        yield from _read_jsonl(p, encoding, c, label_sep)
    elif layout == "fasttext":
        yield from _read_fasttext(p, encoding, label_sep)
    else:
        for ex in read_examples(p, encoding=encoding, fmt=layout, require_label=False, columns=c):
            if ex.label is None:  # the reader leaves it None only without a label column
                raise DataError(f"missing column {c.label}", path=p, line=ex.line,
                                hint="give a label column; an empty cell means no label")
            yield LabelSetExample(ex.text, _unique(ex.label.split(label_sep), p, ex.line,
                                                   label_sep), ex.line)


def _read_jsonl(path: Path, encoding: str, c: Columns, sep: str) -> Iterator[LabelSetExample]:
    for no, obj, text in json_records(path, encoding, True, c):
        yield LabelSetExample(text, _json_labels(obj[c.label], c.label, path, no, sep), no)


def _json_labels(value: Any, key: str, path: Path, no: int, sep: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    out = []
    for x in items:
        if isinstance(x, int) and not isinstance(x, bool):
            x = str(x)
        if not isinstance(x, str):
            raise DataError(f"{key!r} must be a list of strings, not one holding "
                            f"{json_type_name(x)}", path=path, line=no)
        out.append(x)
    return _unique(out, path, no, sep)


def _read_fasttext(path: Path, encoding: str, sep: str) -> Iterator[LabelSetExample]:
    for no, labels, text in fasttext_records(path, encoding):
        yield LabelSetExample(text, _unique(labels, path, no, sep), no)


def detect_task(path: str | Path, *, label_sep: str = ",", encoding: str = "utf-8",
                columns: Columns | None = None) -> tuple[str, str]:
    """(``single`` or ``multilabel``, why): multi-label when some example has several labels
    (joined by ``label_sep``, a JSONL list, several ``__label__``) or a JSONL label list. Data
    this reader refuses is called single-label: the single-label reader then names the problem
    exactly as it always has."""
    try:
        return _detect(Path(path), label_sep, encoding, columns or Columns())
    except DataError:
        return "single", "one label per example"


def _detect(p: Path, label_sep: str, encoding: str, c: Columns) -> tuple[str, str]:
    layout = _layout(p, None, encoding, c)
    if layout == "jsonl":
        for no, text in numbered_lines(p, encoding):
            if text.strip():
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError:
                    break  # the reader proper names the problem
                if isinstance(obj, dict) and isinstance(obj.get(c.label), list):
                    return "multilabel", f"line {no} gives its labels as a list"
    for ex in read_labelsets(p, label_sep=label_sep, encoding=encoding, fmt=layout, columns=c):
        if len(ex.labels) > 1:
            joined = f"joined by {label_sep!r}" if layout in ("tsv", "csv") else "given"
            return "multilabel", f"line {ex.line} has {len(ex.labels)} labels {joined}"
    return "single", "one label per example"
