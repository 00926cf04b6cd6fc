"""Split one labelled file into train/dev/test TSV files: stratified by label and seeded, so a
pipeline can start from a single file (such as a fastText ``__label__`` corpus)."""

from __future__ import annotations

import random
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import TypeVar

from metaprep.atomic import atomic_path, write_failure
from metaprep.errors import ConfigError, DataError
from metaprep.labelsets import LabelSetExample, read_labelsets
from metaprep.taskdata import Columns, Example, read_examples

__all__ = ["MIN_LABEL_COUNT", "split_file", "split_multilabel"]

# a multi-label label with fewer examples is likely missing from dev or test: split says so
MIN_LABEL_COUNT = 10


def _clean(text: str) -> str:
    # TSV without quoting: tabs and line breaks inside a text would break the row.
    return " ".join(text.split())


def _write_tsv(tmp: Path, path: Path, examples: list[Example] | list[LabelSetExample],
               label_sep: str = ",") -> None:
    pair = bool(examples) and isinstance(examples[0].text, tuple)
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write("text_a\ttext_b\tlabel\n" if pair else "text\tlabel\n")
            for ex in examples:
                texts = ex.text if isinstance(ex.text, tuple) else (ex.text,)
                label = (label_sep.join(ex.labels) if isinstance(ex, LabelSetExample)
                         else str(ex.label))
                f.write("\t".join(_clean(t) for t in texts) + f"\t{_clean(label)}\n")
    except OSError as exc:
        raise write_failure(path, exc) from exc


def _check_fractions(dev: float, test: float) -> None:
    if not (0 <= dev < 1 and 0 <= test < 1 and dev + test < 1):
        raise ConfigError(f"dev ({dev}) and test ({test}) must be fractions that sum below 1")


Row = TypeVar("Row", Example, LabelSetExample)


def _cut_and_write(groups: dict[str, list[Row]], out_dir: str | Path, *, dev: float, test: float,
                   seed: int, total: int, path: str | Path, label_sep: str = ",") -> dict[str, int]:
    """Shuffle each group with ``seed``, cut it by the fractions, write the splits in file
    order; returns the examples per split."""
    rng = random.Random(seed)
    parts: dict[str, list[Row]] = {"train": [], "dev": [], "test": []}
    for key in sorted(groups):
        items = groups[key]
        rng.shuffle(items)
        n_dev = round(len(items) * dev)
        n_test = round(len(items) * test)
        parts["dev"] += items[:n_dev]
        parts["test"] += items[n_dev : n_dev + n_test]
        parts["train"] += items[n_dev + n_test :]
    if not parts["train"] or (dev > 0 and not parts["dev"]):
        raise DataError(f"too few examples ({total}) to split into train/dev/test", path=path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    # all three written before any replaces its old self: a failure (a full disk) leaves the
    # previous split whole, never a new train.tsv beside an old dev.tsv
    with ExitStack() as stack:
        for name, rows in parts.items():
            if name == "test" and test == 0:
                continue
            rows.sort(key=lambda e: e.line)  # keep the file's order within a split
            target = out / f"{name}.tsv"
            _write_tsv(stack.enter_context(atomic_path(target)), target, rows, label_sep)
            counts[name] = len(rows)
        if test == 0:  # an earlier split's test.tsv holds texts the new train.tsv now holds
            _drop(out / "test.tsv")
    return counts


def _drop(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot remove the earlier split's {path.name} ({exc.strerror}); "
                          "with --test 0 it would no longer match train.tsv and dev.tsv",
                          path=path, hint="remove it yourself, or write elsewhere") from exc


def split_file(
    path: str | Path,
    out_dir: str | Path,
    *,
    dev: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    encoding: str = "utf-8",
    columns: Columns | None = None,
) -> dict[str, int]:
    """Write ``train.tsv``, ``dev.tsv`` and (when ``test > 0``) ``test.tsv`` under ``out_dir``.

    Each label's examples are shuffled with ``seed`` and cut by the fractions, so every split sees
    every label that has enough examples. Returns the number of examples per split. ``columns``
    names the input's columns when they are not the standard ones; the output always has the
    standard ``text``/``label`` (or ``text_a``/``text_b``/``label``) header.
    """
    _check_fractions(dev, test)
    by_label: dict[str, list[Example]] = defaultdict(list)
    seen_texts = 0
    for ex in read_examples(path, encoding=encoding, columns=columns):
        by_label[str(ex.label)].append(ex)
        seen_texts += 1
    if seen_texts == 0:
        raise DataError("no labelled examples to split", path=path)
    return _cut_and_write(by_label, out_dir, dev=dev, test=test, seed=seed, total=seen_texts,
                          path=path)


def split_multilabel(
    path: str | Path,
    out_dir: str | Path,
    *,
    dev: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    encoding: str = "utf-8",
    columns: Columns | None = None,
    label_sep: str = ",",
) -> tuple[dict[str, int], list[str]]:
    """Like ``split_file`` for multi-label data: each example is stratified by its rarest label
    (examples with no label form their own stratum), so rare labels reach every split when they
    can. Returns the counts per split and notes: examples without a label, and labels under
    MIN_LABEL_COUNT examples."""
    _check_fractions(dev, test)
    examples = list(read_labelsets(path, label_sep=label_sep, encoding=encoding,
                                   columns=columns))
    if not examples:
        raise DataError("no labelled examples to split", path=path)
    counts: dict[str, int] = defaultdict(int)
    for ex in examples:
        for label in ex.labels:
            if label_sep in label:
                raise DataError(f"label {label!r} contains the separator {label_sep!r}",
                                path=path, line=ex.line, hint="pick another --label-sep")
            counts[label] += 1
    by_rarest: dict[str, list[LabelSetExample]] = defaultdict(list)
    for ex in examples:
        key = min(ex.labels, key=lambda x: (counts[x], x)) if ex.labels else ""
        by_rarest[key].append(ex)
    sizes = _cut_and_write(by_rarest, out_dir, dev=dev, test=test, seed=seed,
                           total=len(examples), path=path, label_sep=label_sep)
    notes = []
    empty = sum(1 for ex in examples if not ex.labels)
    if empty:
        notes.append(f"{empty} example(s) have no label (all negative)")
    rare = sorted(label for label, n in counts.items() if n < MIN_LABEL_COUNT)
    if rare:
        shown = ", ".join(rare[:8]) + (", ..." if len(rare) > 8 else "")
        notes.append(f"{len(rare)} of {len(counts)} labels have fewer than {MIN_LABEL_COUNT} "
                     f"examples and may be missing from dev or test: {shown}")
    return sizes, notes
