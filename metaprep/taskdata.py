"""Task data: labelled examples for training, and the words they contain for `metaprep align`.

Four layouts are read, picked by extension or, failing that, by the first non-empty line:

    .tsv / .tab      header ``text<TAB>label`` or ``text_a<TAB>text_b<TAB>label`` (no quoting)
    .csv             the same header, comma-separated, standard CSV quoting
    .jsonl / .json   one object per line with the same keys
    anything else    fastText lines ``__label__X some text`` when the first line starts so

Extra columns (an id, a source) are ignored; a missing ``text`` / ``label`` column is an error.
Labels are returned as strings whatever the layout (JSON ``1`` and CSV ``1`` are the same label).
Pure standard library; errors name the file and line.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from metaprep.errors import DataError
from metaprep.tokenize import Tokenizer

__all__ = [
    "TASK_FORMATS",
    "Example",
    "count_words",
    "detect_task_format",
    "looks_like_task_data",
    "read_examples",
    "read_word_list",
]

TASK_FORMATS = ("tsv", "csv", "jsonl", "fasttext")
_EXTENSIONS = {".tsv": "tsv", ".tab": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl",
               ".ndjson": "jsonl"}
_LABEL_PREFIX = "__label__"
_HINT = "task data needs a header `text,label` or `text_a,text_b,label` (TSV/CSV), the same keys " \
        "in JSONL, or fastText `__label__X text` lines"


class Example(NamedTuple):
    text: str | tuple[str, str]  # one text, or a (text_a, text_b) pair
    label: str | None  # None only when read with require_label=False and no label is given
    line: int  # 1-based line of the file where the example starts


def _lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """(line number, decoded line) pairs; a decoding error names the line."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise DataError(f"cannot read task data: {exc.strerror or exc}", path=path) from exc
    with f:
        for no, raw in enumerate(f, 1):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"bytes not valid {encoding} at column {exc.start + 1}",
                    path=path, line=no,
                    hint="pass the file's encoding, e.g. --data-encoding latin-1",
                ) from exc
            except LookupError as exc:
                raise DataError(f"unknown encoding {encoding!r}", path=path) from exc
            if no == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield no, text


def _first_line(path: Path, encoding: str) -> str | None:
    for _, text in _lines(path, encoding):
        if text.strip():
            return text
    return None


def detect_task_format(path: str | Path, *, encoding: str = "utf-8") -> str | None:
    """``tsv``, ``csv``, ``jsonl`` or ``fasttext``; None when the file looks like none of them."""
    p = Path(path)
    fmt = _EXTENSIONS.get(p.suffix.lower())
    if fmt is not None:
        return fmt
    first = _first_line(p, encoding)
    if first is None:
        return None
    stripped = first.strip()
    if stripped.startswith(_LABEL_PREFIX):
        return "fasttext"
    if stripped.startswith("{"):
        return "jsonl"
    for fmt, sep in (("tsv", "\t"), ("csv", ",")):
        header = [c.strip() for c in stripped.split(sep)]
        if "label" in header and ("text" in header or "text_a" in header):
            return fmt
    return None


def looks_like_task_data(path: str | Path, *, encoding: str = "utf-8") -> bool:
    return detect_task_format(path, encoding=encoding) is not None


def _columns(header: list[str], path: Path, line: int, require_label: bool) -> tuple[str, ...]:
    cols = [c.strip() for c in header]
    keys = ("text_a", "text_b") if "text_a" in cols or "text_b" in cols else ("text",)
    needed = keys + (("label",) if require_label else ())
    missing = [k for k in needed if k not in cols]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(missing)}; "
            f"the header has {', '.join(cols) or 'nothing'}",
            path=path, line=line, hint=_HINT,
        )
    return keys


def _read_delimited(
    path: Path, fmt: str, encoding: str, require_label: bool
) -> Iterator[Example]:
    lines = _lines(path, encoding)
    current = [0]

    def texts() -> Iterator[str]:
        for no, text in lines:
            current[0] = no
            yield text

    if fmt == "tsv":
        reader = csv.reader(texts(), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(texts())
    try:
        header = next(reader, None)
        while header is not None and not any(c.strip() for c in header):
            header = next(reader, None)
        if header is None:
            raise DataError("the file is empty", path=path, hint=_HINT)
        cols = [c.strip() for c in header]
        keys = _columns(cols, path, current[0], require_label)
        idx = {c: i for i, c in enumerate(cols)}
        start = current[0] + 1
        for row in reader:
            line = start
            start = current[0] + 1
            if not any(c.strip() for c in row):
                continue
            if len(row) != len(cols):
                raise DataError(
                    f"{len(row)} field(s) where the header has {len(cols)}",
                    path=path, line=line,
                    hint="a text containing the separator must be quoted (CSV) or the tab removed",
                )
            label = row[idx["label"]].strip() if "label" in idx else None
            if require_label and not label:
                raise DataError("empty label", path=path, line=line)
            if keys == ("text",):
                yield Example(row[idx["text"]], label, line)
            else:
                yield Example((row[idx["text_a"]], row[idx["text_b"]]), label, line)
    except csv.Error as exc:
        raise DataError(f"malformed {fmt.upper()}: {exc}", path=path, line=current[0]) from exc


def _read_jsonl(path: Path, encoding: str, require_label: bool) -> Iterator[Example]:
    for no, text in _lines(path, encoding):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON: {exc.msg}", path=path, line=no) from exc
        if not isinstance(obj, dict):
            raise DataError("each line must be a JSON object", path=path, line=no, hint=_HINT)
        keys = _columns(list(obj), path, no, require_label)
        values = [obj[k] for k in keys]
        if not all(isinstance(v, str) for v in values):
            raise DataError(f"{'/'.join(keys)} must be strings", path=path, line=no)
        label = obj.get("label")
        if label is not None:
            if isinstance(label, (dict, list)):
                raise DataError("label must be a string or a number", path=path, line=no)
            label = str(label)
        yield Example(values[0] if len(values) == 1 else (values[0], values[1]), label, no)


def _read_fasttext(path: Path, encoding: str, require_label: bool) -> Iterator[Example]:
    for no, text in _lines(path, encoding):
        parts = text.split()
        if not parts:
            continue
        labels = []
        while parts and parts[0].startswith(_LABEL_PREFIX):
            labels.append(parts.pop(0)[len(_LABEL_PREFIX):])
        if len(labels) > 1:
            raise DataError(
                f"{len(labels)} labels on one line; only single-label examples are supported",
                path=path, line=no,
            )
        if require_label and not labels:
            raise DataError("line has no __label__ prefix", path=path, line=no, hint=_HINT)
        yield Example(" ".join(parts), labels[0] if labels else None, no)


def read_examples(
    path: str | Path,
    *,
    encoding: str = "utf-8",
    fmt: str | None = None,
    require_label: bool = True,
) -> Iterator[Example]:
    """Stream the examples of a task data file as ``Example(text, label, line)``.

    ``text`` is a string, or a ``(text_a, text_b)`` pair for pair tasks. ``fmt`` overrides the
    detection (one of TASK_FORMATS). With ``require_label=False`` a missing label column or
    prefix is allowed (label None), e.g. for texts to predict.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError("no such task data file", path=p)
    fmt = fmt or detect_task_format(p, encoding=encoding)
    if fmt is None:
        raise DataError("cannot tell the layout of this file", path=p, hint=_HINT)
    if fmt not in TASK_FORMATS:
        raise DataError(f"unknown task data format {fmt!r}; known: {', '.join(TASK_FORMATS)}",
                        path=p)
    if fmt in ("tsv", "csv"):
        return _read_delimited(p, fmt, encoding, require_label)
    if fmt == "jsonl":
        return _read_jsonl(p, encoding, require_label)
    return _read_fasttext(p, encoding, require_label)


def count_words(
    paths: Iterable[str | Path], tokenizer: Tokenizer, *, encoding: str = "utf-8"
) -> Counter[str]:
    """Token counts over the texts of task data files (labels are not words)."""
    counts: Counter[str] = Counter()
    for path in paths:
        for ex in read_examples(path, encoding=encoding, require_label=False):
            texts = ex.text if isinstance(ex.text, tuple) else (ex.text,)
            for t in texts:
                counts.update(tokenizer(t))
    return counts


def read_word_list(path: str | Path, *, encoding: str = "utf-8") -> list[str]:
    """Words of a one-word-per-line file, in file order, without repeats or blank lines."""
    p = Path(path)
    if not p.is_file():
        raise DataError("no such word list", path=p)
    seen: set[str] = set()
    words: list[str] = []
    for no, text in _lines(p, encoding):
        word = text.strip()
        if not word:
            continue
        if any(c.isspace() for c in word):
            raise DataError(
                "a word list holds one word per line; this line has whitespace inside",
                path=p, line=no, hint="for task data use a .tsv/.csv/.jsonl file with a header",
            )
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words
