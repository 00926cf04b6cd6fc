"""Task data: labelled examples for training, and the words they contain for `metaprep align`.

Four layouts are read, picked by extension or, failing that, by the first non-empty line:

    .tsv / .tab      header ``text<TAB>label`` or ``text_a<TAB>text_b<TAB>label`` (no quoting)
    .csv             the same header, comma-separated, standard CSV quoting
    .jsonl / .json   one object per line with the same keys
    anything else    fastText lines ``__label__X some text`` when the first line starts so

Extra columns (an id, a source) are ignored; a missing ``text`` / ``label`` column is an error,
and so is a column name given twice. Other column names are read with ``columns=Columns(...)``.
Labels are returned as strings whatever the layout (JSON ``1`` and CSV ``1`` are the same label);
a JSON label must be a string or an integer (``null``, ``true``, ``1.5``, lists are refused).
A label is stripped of outer whitespace in every layout; inside, its words are separated by
single spaces (``check_label``): a tab, a line break, a no-break space or two spaces in a row is
refused, naming the line, since labels that differ only there would become one label wherever a
label is written as text (``split``'s TSV cells, fastText lines, a terminal).
Pure standard library; errors name the file and line.
"""

from __future__ import annotations

import csv
import json
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

from metaprep.errors import ConfigError, DataError

__all__ = [
    "Columns",
    "Example",
    "TASK_FORMATS",
    "check_label",
    "detect_task_format",
    "fasttext_records",
    "json_records",
    "json_type_name",
    "looks_like_task_data",
    "numbered_lines",
    "read_examples",
    "read_word_list",
    "task_columns",
]

TASK_FORMATS = ("tsv", "csv", "jsonl", "fasttext")
_EXTENSIONS = {".tsv": "tsv", ".tab": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl",
               ".ndjson": "jsonl"}
_LABEL_PREFIX = "__label__"
_HINT = "task data needs a header `text,label` or `text_a,text_b,label` (TSV/CSV), the same keys " \
        "in JSONL, or fastText `__label__X text` lines"


@dataclass(frozen=True)
class Columns:
    """The column (TSV/CSV) or key (JSONL) names of the text(s) and the label."""

    text: str = "text"
    label: str = "label"
    text_a: str = "text_a"  # the first sentence of a pair
    text_b: str = "text_b"  # the second

    def __post_init__(self) -> None:
        names = [getattr(self, f.name) for f in fields(self)]
        if not all(isinstance(n, str) and n.strip() == n and n for n in names):
            raise ConfigError(f"column names must be non-empty, without outer spaces: {names}")
        if len(set(names)) != len(names):
            raise ConfigError(f"column names must differ: {names}")


_DEFAULT_COLUMNS = Columns()


def task_columns(options: Any) -> Columns | None:
    """Columns from an options object's ``text_column``, ``label_column``, ``text_a_column`` and
    ``text_b_column`` fields; None when they are all the standard names."""
    c = Columns(text=options.text_column, label=options.label_column,
                text_a=options.text_a_column, text_b=options.text_b_column)
    return None if c == _DEFAULT_COLUMNS else c


class Example(NamedTuple):
    text: str | tuple[str, str]  # one text, or a (text_a, text_b) pair
    label: str | None  # None only when read with require_label=False and no label is given
    line: int  # 1-based line of the file where the example starts


# Longest line of task data read (an example is one line; the CSV/TSV field limit is 128 KiB)
MAX_LINE_BYTES = 1 << 20


def numbered_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """(line number, decoded line) pairs; a decoding error names the line."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise DataError(f"cannot read task data: {exc.strerror or exc}", path=path) from exc
    with f:
        for no, raw in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""), 1):
            if len(raw) > MAX_LINE_BYTES:  # read no further: a 1 GB line would be 1 GB here
                raise DataError(f"the line is longer than {MAX_LINE_BYTES:,} bytes", path=path,
                                line=no, hint="an example is one line of text: shorten it")
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


def check_label(label: str, path: Path, line: int) -> str:
    """``label`` stripped, refused (a DataError naming the line) if it holds whitespace other
    than single spaces between words, or a control character (module docstring)."""
    label = label.strip()
    if label != " ".join(label.split()) or any(
            unicodedata.category(ch) == "Cc" for ch in label):
        raise DataError(f"label {label!r} holds a tab, a line break, a no-break space, two "
                        "spaces in a row or a control character", path=path, line=line,
                        hint="write a label's words with single spaces: labels that differ "
                        "only in their spaces would be one label once written as text")
    return label


def _first_line(path: Path, encoding: str) -> str | None:
    for _, text in numbered_lines(path, encoding):
        if text.strip():
            return text
    return None


def detect_task_format(
    path: str | Path, *, encoding: str = "utf-8", columns: Columns | None = None
) -> str | None:
    """``tsv``, ``csv``, ``jsonl`` or ``fasttext``; None when the file looks like none of them."""
    c = columns or _DEFAULT_COLUMNS
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
        if c.label in header and (c.text in header or c.text_a in header):
            return fmt
    return None


def looks_like_task_data(path: str | Path, *, encoding: str = "utf-8",
                         columns: Columns | None = None) -> bool:
    return detect_task_format(path, encoding=encoding, columns=columns) is not None


def _columns(
    header: list[str], path: Path, line: int, require_label: bool, c: Columns
) -> tuple[str, ...]:
    """The text key(s) to read: ``(text,)`` or ``(text_a, text_b)``."""
    cols = [name.strip() for name in header]
    keys = (c.text_a, c.text_b) if c.text_a in cols or c.text_b in cols else (c.text,)
    needed = keys + ((c.label,) if require_label else ())
    missing = [k for k in needed if k not in cols]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(missing)}; "
            f"the header has {', '.join(cols) or 'nothing'}",
            path=path, line=line, hint=_HINT,
        )
    return keys


def _read_delimited(
    path: Path, fmt: str, encoding: str, require_label: bool, c: Columns
) -> Iterator[Example]:
    lines = numbered_lines(path, encoding)
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
        cols = [name.strip() for name in header]
        twice = sorted({n for n in cols if n and cols.count(n) > 1})
        if twice:
            raise DataError(
                f"column name(s) {', '.join(twice)} appear more than once in the header",
                path=path, line=current[0], hint="rename or remove the repeated column",
            )
        keys = _columns(cols, path, current[0], require_label, c)
        idx = {name: i for i, name in enumerate(cols)}
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
            label = row[idx[c.label]].strip() if c.label in idx else None
            if require_label and not label:
                raise DataError("empty label", path=path, line=line)
            if require_label and label:
                label = check_label(label, path, line)
            if len(keys) == 1:
                yield Example(row[idx[keys[0]]], label, line)
            else:
                yield Example((row[idx[keys[0]]], row[idx[keys[1]]]), label, line)
    except csv.Error as exc:
        if "new-line character seen in unquoted field" in str(exc):  # Python's advice misleads
            raise DataError(f"malformed {fmt.upper()}: a line ends in a bare carriage return "
                            "(CR)", path=path, line=current[0],
                            hint="end lines with LF or CRLF, e.g. tr '\\r' '\\n'") from exc
        raise DataError(f"malformed {fmt.upper()}: {exc}", path=path, line=current[0]) from exc


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        counts = Counter(k for k, _ in pairs)
        raise _DuplicateKey(", ".join(sorted(k for k, n in counts.items() if n > 1)))
    return obj


def json_type_name(value: object) -> str:
    return {type(None): "null", bool: "a boolean", int: "a number", float: "a number",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def json_records(path: Path, encoding: str, require_label: bool, c: Columns
                 ) -> Iterator[tuple[int, dict[str, Any], str | tuple[str, str]]]:
    """(line, object, text or pair) of each non-blank JSONL line, the texts checked."""
    for no, text in numbered_lines(path, encoding):
        if not text.strip():
            continue
        try:
            obj = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        except _DuplicateKey as exc:
            raise DataError(f"key(s) {exc} appear more than once in the object",
                            path=path, line=no, hint="keep one of each key") from exc
        except (json.JSONDecodeError, RecursionError) as exc:
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            raise DataError(f"not valid JSON: {msg}", path=path, line=no) from exc
        if not isinstance(obj, dict):
            raise DataError("each line must be a JSON object", path=path, line=no, hint=_HINT)
        keys = _columns(list(obj), path, no, require_label, c)
        values = [obj[k] for k in keys]
        for k, v in zip(keys, values, strict=True):
            if not isinstance(v, str):
                raise DataError(f"{k!r} must be a string, not {json_type_name(v)}",
                                path=path, line=no)
        yield no, obj, values[0] if len(values) == 1 else (values[0], values[1])


def _read_jsonl(path: Path, encoding: str, require_label: bool, c: Columns) -> Iterator[Example]:
    for no, obj, text in json_records(path, encoding, require_label, c):
        yield Example(text, _json_label(obj, c.label, require_label, path, no), no)


def _json_label(obj: dict[str, Any], key: str, require: bool, path: Path, no: int) -> str | None:
    """A string label, or an integer one as its digits (``1`` and ``"1"`` are the same label);
    null, booleans, fractions, lists and objects are refused rather than turned into text."""
    label = obj.get(key)
    if label is None and not require:
        return None
    if isinstance(label, str) and label.strip():
        return check_label(label, path, no) if require else label
    if isinstance(label, int) and not isinstance(label, bool):
        return str(label)
    what = "empty" if isinstance(label, str) else json_type_name(label)
    raise DataError(f"{key!r} must be a non-empty string or an integer, not {what}",
                    path=path, line=no, hint="give every example a label")


def fasttext_records(path: Path, encoding: str) -> Iterator[tuple[int, list[str], str]]:
    """(line, labels, text) of each non-blank fastText line: its ``__label__`` prefixes read."""
    for no, text in numbered_lines(path, encoding):
        parts = text.split()
        if not parts:
            continue
        labels = []
        while parts and parts[0].startswith(_LABEL_PREFIX):
            labels.append(parts.pop(0)[len(_LABEL_PREFIX):])
        yield no, labels, " ".join(parts)


def _read_fasttext(path: Path, encoding: str, require_label: bool) -> Iterator[Example]:
    for no, labels, text in fasttext_records(path, encoding):
        if len(labels) > 1:
            raise DataError(
                f"{len(labels)} labels on one line; only single-label examples are supported",
                path=path, line=no,
            )
        label = labels[0] if labels else None
        if require_label:
            if label is None:
                raise DataError("line has no __label__ prefix", path=path, line=no, hint=_HINT)
            if not label:
                raise DataError("empty label (a bare __label__)", path=path, line=no)
            label = check_label(label, path, no)
        yield Example(text, label, no)


def read_examples(
    path: str | Path,
    *,
    encoding: str = "utf-8",
    fmt: str | None = None,
    require_label: bool = True,
    columns: Columns | None = None,
) -> Iterator[Example]:
    """Stream the examples of a task data file as ``Example(text, label, line)``.

    ``text`` is a string, or a ``(text_a, text_b)`` pair for pair tasks. ``fmt`` overrides the
    detection (one of TASK_FORMATS). With ``require_label=False`` a missing label column or
    prefix is allowed (label None), e.g. for texts to predict. ``columns`` names the columns
    (TSV/CSV) or keys (JSONL) when they are not ``text``/``label``/``text_a``/``text_b``.
    """
    c = columns or _DEFAULT_COLUMNS
    p = Path(path)
    if not p.is_file():
        raise DataError("no such task data file", path=p)
    fmt = fmt or detect_task_format(p, encoding=encoding, columns=c)
    if fmt is None:
        raise DataError("cannot tell the layout of this file", path=p, hint=_HINT)
    if fmt not in TASK_FORMATS:
        raise DataError(f"unknown task data format {fmt!r}; known: {', '.join(TASK_FORMATS)}",
                        path=p)
    if fmt in ("tsv", "csv"):
        return _read_delimited(p, fmt, encoding, require_label, c)
    if fmt == "jsonl":
        return _read_jsonl(p, encoding, require_label, c)
    return _read_fasttext(p, encoding, require_label)


def read_word_list(path: str | Path, *, encoding: str = "utf-8") -> list[str]:
    """Words of a one-word-per-line file, in file order, without repeats or blank lines."""
    p = Path(path)
    if not p.is_file():
        raise DataError("no such word list", path=p)
    seen: set[str] = set()
    words: list[str] = []
    for no, text in numbered_lines(p, encoding):
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
