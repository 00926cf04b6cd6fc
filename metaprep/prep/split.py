"""Split one labelled file into train/dev/test TSV files: stratified by label and seeded, so a
pipeline can start from a single file (such as a fastText ``__label__`` corpus)."""

from __future__ import annotations

import random
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path

from metaprep.atomic import atomic_path, write_failure
from metaprep.errors import ConfigError, DataError
from metaprep.taskdata import Columns, Example, read_examples

__all__ = ["split_file"]


def _clean(text: str) -> str:
    # TSV without quoting: tabs and line breaks inside a text would break the row.
    return " ".join(text.split())


def _write_tsv(tmp: Path, path: Path, examples: list[Example]) -> None:
    pair = bool(examples) and isinstance(examples[0].text, tuple)
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write("text_a\ttext_b\tlabel\n" if pair else "text\tlabel\n")
            for ex in examples:
                texts = ex.text if isinstance(ex.text, tuple) else (ex.text,)
                f.write("\t".join(_clean(t) for t in texts) + f"\t{_clean(str(ex.label))}\n")
    except OSError as exc:
        raise write_failure(path, exc) from exc


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
    if not (0 <= dev < 1 and 0 <= test < 1 and dev + test < 1):
        raise ConfigError(f"dev ({dev}) and test ({test}) must be fractions that sum below 1")
    by_label: dict[str, list[Example]] = defaultdict(list)
    seen_texts = 0
    for ex in read_examples(path, encoding=encoding, columns=columns):
        by_label[str(ex.label)].append(ex)
        seen_texts += 1
    if seen_texts == 0:
        raise DataError("no labelled examples to split", path=path)
    rng = random.Random(seed)
    parts: dict[str, list[Example]] = {"train": [], "dev": [], "test": []}
    for label in sorted(by_label):
        items = by_label[label]
        rng.shuffle(items)
        n_dev = round(len(items) * dev)
        n_test = round(len(items) * test)
        parts["dev"] += items[:n_dev]
        parts["test"] += items[n_dev : n_dev + n_test]
        parts["train"] += items[n_dev + n_test :]
    if not parts["train"] or (dev > 0 and not parts["dev"]):
        raise DataError(
            f"too few examples ({seen_texts}) to split into train/dev/test", path=path
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    # all three written before any replaces its old self: a failure (a full disk) leaves the
    # previous split whole, never a new train.tsv beside an old dev.tsv
    with ExitStack() as stack:
        for name, items in parts.items():
            if name == "test" and test == 0:
                continue
            items.sort(key=lambda e: e.line)  # keep the file's order within a split
            target = out / f"{name}.tsv"
            _write_tsv(stack.enter_context(atomic_path(target)), target, items)
            counts[name] = len(items)
    return counts
