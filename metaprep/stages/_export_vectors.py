"""The export-vectors stage: one aligned source (or all, side by side) -> a word2vec file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from metaprep.stages._common import PathLike, input_field, output_field, required

__all__ = ["ExportVectorsOptions", "ExportVectorsResult", "export_vectors"]


@dataclass(frozen=True)
class ExportVectorsOptions:
    store: PathLike | None = input_field()  # the store `align` wrote
    output: PathLike | None = output_field()  # the word2vec file (a temporary file, then renamed)
    source: str | None = None  # the source to write; None with ``concat``
    concat: bool = False  # every source side by side, in store order
    binary: bool = False  # word2vec binary instead of text
    only_present: bool = False  # only words the source's file had (with concat: every source's)
    quiet: bool = False  # no progress bar


@dataclass(frozen=True)
class ExportVectorsResult:
    path: Path
    rows: int  # vectors written
    dim: int
    sources: list[str]  # in the order their columns were written
    skipped_whitespace: int  # words left out: whitespace cannot be written in either format
    skipped_examples: list[str]  # up to five of them


def export_vectors(options: ExportVectorsOptions) -> ExportVectorsResult:
    """Aligned vectors back out as a word2vec file, loadable with gensim's KeyedVectors
    (prep/exportvec.py)."""
    from metaprep.prep.exportvec import export_vectors as write_vectors

    o = options
    r = write_vectors(required(o.store, "store", "export-vectors"),
                      required(o.output, "output", "export-vectors"), source=o.source,
                      concat=o.concat, binary=o.binary, only_present=o.only_present,
                      progress=not o.quiet)
    return ExportVectorsResult(Path(r["path"]), r["rows"], r["dim"], r["sources"],
                               r["skipped_whitespace"], r["skipped_examples"])
