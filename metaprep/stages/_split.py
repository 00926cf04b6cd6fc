"""The split stage: one labelled file -> stratified, seeded train/dev/test TSV files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from metaprep.outputs import claim_outputs
from metaprep.stages._common import (
    PathLike,
    TaskColumns,
    input_field,
    output_field,
    required,
    resolve_task,
)
from metaprep.taskdata import task_columns

__all__ = ["SplitOptions", "SplitResult", "split"]


@dataclass(frozen=True)
class SplitOptions(TaskColumns):
    data: PathLike | None = input_field()  # one labelled file: TSV/CSV/JSONL/fastText __label__
    output: PathLike | None = output_field()  # directory for train.tsv, dev.tsv, test.tsv
    dev: float = 0.15  # share of each label for dev
    test: float = 0.15  # share of each label for test (0: no test.tsv)
    seed: int = 0  # shuffle seed: the same seed gives the same files
    encoding: str = "utf-8"  # of the data file (e.g. latin-1)
    task: str | None = None  # single | multilabel [detected from the data]
    label_sep: str = ","  # multi-label TSV/CSV: the separator inside the label column


@dataclass(frozen=True)
class SplitResult:
    output: Path
    counts: dict[str, int]  # examples per split
    notes: list[str] = field(default_factory=list)  # what a user should hear (multi-label)


def split(options: SplitOptions) -> SplitResult:
    """One labelled file -> stratified, seeded train/dev/test TSV files."""
    from metaprep.prep.split import split_file, split_multilabel

    o = options
    out = Path(required(o.output, "output", "split"))
    files = {f"output/{n}.tsv": out / f"{n}.tsv" for n in ("train", "dev", "test")}
    data = required(o.data, "data", "split")
    task, why = resolve_task(o.task, data, label_sep=o.label_sep, encoding=o.encoding,
                             columns=task_columns(o))
    with claim_outputs("split", o, files):
        if task == "multilabel":
            counts, notes = split_multilabel(data, out, dev=o.dev, test=o.test, seed=o.seed,
                                             encoding=o.encoding, columns=task_columns(o),
                                             label_sep=o.label_sep)
            return SplitResult(out, counts, ([why] if why else []) + notes)
        counts = split_file(data, out, dev=o.dev, test=o.test,
                            seed=o.seed, encoding=o.encoding, columns=task_columns(o))
    return SplitResult(out, counts)
