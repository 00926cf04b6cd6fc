"""The predict stage: a model directory + texts -> JSONL predictions, with onnxruntime only."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from metaprep.atomic import atomic_path
from metaprep.errors import DataError
from metaprep.serve.runtime import Model, predict_stream, read_texts, stats_notes

__all__ = ["PredictOptions", "PredictResult", "predict"]


@dataclass(frozen=True)
class PredictOptions:
    model: str | Path | None = field(default=None, metadata={"path": "in"})  # model directory
    input: str | Path = field(default="-", metadata={"path": "in"})  # texts; "-" is stdin
    output: str | Path | None = field(default=None, metadata={"path": "out"})  # None: stdout
    format: str = "auto"  # auto | lines | tsv | jsonl
    columns: tuple[str, ...] = ()  # text column(s) [text; pairs: text_a, text_b]
    batch_size: int = 64  # texts per onnxruntime call
    threads: int | None = None  # onnxruntime intra-op threads [all cores]
    verify: str = "fast"  # fast | full | none: check the directory against its manifest
    quiet: bool = False  # no notes on stderr


@dataclass(frozen=True)
class PredictResult:
    records: int
    output: Path | None
    notes: list[str]


def predict(options: PredictOptions) -> PredictResult:
    o = options
    if o.model is None:
        raise DataError("predict needs a model directory")
    model = Model(o.model, threads=o.threads, batch_size=o.batch_size, verify=o.verify)
    cols = o.columns or (("text_a", "text_b") if model.pair else ("text",))
    name = str(o.input)
    count = 0
    with open(name, "rb") if name != "-" else _stdin() as stream:
        if o.output is None:
            out = sys.stdout
            count = _write(model, stream, name, o, cols, out)
        else:
            with atomic_path(o.output) as tmp, open(tmp, "w", encoding="utf-8") as out:
                count = _write(model, stream, name, o, cols, out)
    return PredictResult(count, None if o.output is None else Path(o.output), stats_notes(model))


def _stdin():  # type: ignore[no-untyped-def]
    import contextlib

    return contextlib.nullcontext(sys.stdin.buffer)


def _write(model, stream, name, o, cols, out) -> int:  # type: ignore[no-untyped-def]
    count = 0
    records = read_texts(stream, name=name, fmt=o.format, columns=cols)
    for rec in predict_stream(model, records, chunk=max(o.batch_size, 256)):
        out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        count += 1
    return count
