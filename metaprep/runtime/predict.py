"""The predict and embed stages: a model directory + a text file -> predictions or sentence vectors.

    from metaprep.runtime.predict import PredictOptions, predict
    result = predict(PredictOptions(model_dir=Path("model"), input="texts.tsv",
                                    output=Path("predictions.jsonl")))

The CLI (`metaprep predict`, `metaprep embed`) and the pipeline both call these. Input streams
record by record (inputs.py) and output is written as it comes, never left half-written
(sinks.py). ``predict_stream`` and ``embed_stream`` are the same over records in memory.
numpy + onnxruntime only, like the runtime.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metaprep.errors import ConfigError, DataError
from metaprep.outputs import check_paths, path_fields
from metaprep.runtime.inputs import INPUT_FORMATS, Text, chunked, read_texts
from metaprep.runtime.model import MAX_BATCH, MAX_THREADS, Model
from metaprep.runtime.probabilities import check_top_k, over_threshold, top_k_order
from metaprep.runtime.sinks import NpyRows, open_input, open_output

__all__ = [
    "EmbedOptions",
    "EmbedResult",
    "PredictOptions",
    "PredictResult",
    "embed",
    "embed_stream",
    "predict",
    "predict_stream",
    "stats_notes",
]

_IN, _OUT = {"path": "in"}, {"path": "out"}


@dataclass(frozen=True, kw_only=True)
class _ServeOptions:
    model_dir: Path = field(metadata=_IN)  # written by `metaprep export-onnx`
    input: str | Path = field(default="-", metadata=_IN)  # a text file, or "-" for stdin
    input_format: str = "auto"  # auto (by extension) | lines | tsv | jsonl
    columns: tuple[str, ...] = ()  # tsv column / jsonl key(s); () = text (pairs: text_a, text_b)
    batch_size: int = 64  # texts per onnxruntime call (bucketed by length)
    threads: int | None = None  # batches run at once (one onnxruntime thread each); None = cores
    verify: str = "fast"  # model files: fast (sizes, small files hashed) | full | none
    quiet: bool = False  # no notes in the result (warnings still go to ``warn``)

    def validate(self) -> None:
        if self.input_format not in INPUT_FORMATS:
            raise ConfigError(f"input format must be one of {', '.join(INPUT_FORMATS)}, not "
                              f"{self.input_format!r}")
        if len(self.columns) > 2:
            raise ConfigError("give one column (a text) or two (a sentence pair)")
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise ConfigError(f"the batch size must be from 1 to {MAX_BATCH:,}")
        if self.threads is not None and not 1 <= self.threads <= MAX_THREADS:
            raise ConfigError(f"threads must be from 1 to {MAX_THREADS:,}")
        if self.verify not in ("fast", "full", "none"):
            raise ConfigError(f"verify must be fast, full or none, not {self.verify!r}")

    def model(self) -> Model:
        return Model(self.model_dir, threads=self.threads, batch_size=self.batch_size,
                     verify=self.verify)


@dataclass(frozen=True, kw_only=True)
class PredictOptions(_ServeOptions):
    output: Path | None = field(default=None, metadata=_OUT)  # JSONL; None = stdout
    top_k: int | None = None  # probabilities of the k most probable labels only; None = all

    def validate(self) -> None:
        super().validate()
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError("top-k must be at least 1")


@dataclass(frozen=True, kw_only=True)
class EmbedOptions(_ServeOptions):
    output: Path = field(metadata=_OUT)  # OUT.npy (float32, a row per record) or OUT.jsonl

    def validate(self) -> None:
        super().validate()
        if Path(self.output).suffix not in (".npy", ".jsonl"):
            raise ConfigError("the output must end in .npy or .jsonl", path=self.output)


def _check_output(stage: str, opts: PredictOptions | EmbedOptions) -> None:
    """The output is not the input text, nor inside the model directory (it may be a device)."""
    if opts.output is not None:
        check_paths(stage, {"output": opts.output}, path_fields(opts, "in"), devices=True)


@dataclass(frozen=True)
class PredictResult:
    records: int  # input records, each one output line
    errors: int  # records that could not be read (an "error" line each)
    output: Path | None  # None: stdout
    notes: list[str]  # truncation, empty texts, unknown words (empty with quiet)


@dataclass(frozen=True)
class EmbedResult:
    records: int  # rows written
    errors: int  # records that could not be read (a row of NaN each; in JSONL an "error")
    dim: int  # the width of a vector
    output: Path
    notes: list[str]


# --- the stages ----------------------------------------------------------------------------------
def _ignore(message: str) -> None:
    pass


def predict(opts: PredictOptions, *, warn: Callable[[str], None] | None = None) -> PredictResult:
    """One JSON line per input record: {"record", "line", "label", "probabilities"}, or
    {"record", "line", "error"}; ``warn`` hears about each unreadable record or bad byte."""
    opts.validate()
    _check_output("predict", opts)
    model = opts.model()
    columns = opts.columns or (("text_a", "text_b") if model.pair else ("text",))
    if len(columns) != (2 if model.pair else 1):  # every record would be an error line
        raise ConfigError(f"this model reads {'sentence pairs' if model.pair else 'single texts'}"
                          f": give {'two columns' if model.pair else 'one column'}, not "
                          f"{len(columns)}", path=opts.model_dir)
    say, records, errors = warn or _ignore, 0, 0
    with open_input(opts.input) as (stream, name), open_output(opts.output) as out:
        texts = read_texts(stream, name=name, fmt=opts.input_format, columns=columns, warn=say)
        for rec in predict_stream(model, texts, chunk=max(opts.batch_size, 256),
                                  top_k=opts.top_k):
            records += 1
            if "error" in rec:
                errors += 1
                say(f"{name}:{rec['line']}: {rec['error']}")
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            if opts.output is None and records % 256 == 0:
                out.flush()  # a reader downstream of a pipe sees results as they come
    return PredictResult(records, errors, opts.output, [] if opts.quiet else stats_notes(model))


def embed(opts: EmbedOptions, *, warn: Callable[[str], None] | None = None) -> EmbedResult:
    """The sentence vector of every input record; a record that cannot be read gets a row of
    NaN in .npy, {"record", "line", "error"} in .jsonl (JSON has no NaN)."""
    opts.validate()
    _check_output("embed", opts)
    model = opts.model()
    width = model.manifest.task.sentence_dim
    npy = Path(opts.output).suffix == ".npy"
    say, records, errors = warn or _ignore, 0, 0
    with open_input(opts.input) as (stream, name), open_output(opts.output) as out:
        rows = NpyRows(out, width) if npy else None
        texts = read_texts(stream, name=name, fmt=opts.input_format,
                           columns=opts.columns or ("text",), warn=say)
        for no, vec, problem in embed_stream(model, texts, chunk=max(opts.batch_size, 256)):
            records += 1
            if vec is None:
                errors += 1
                say(f"{name}:{no}: {problem}")
            if rows is not None:
                rows.add(np.full(width, np.nan, dtype=np.float32) if vec is None else vec)
            else:  # JSON has no NaN: a record that could not be read says why, as predict does
                line = {"record": records, "line": no, "error": problem} if vec is None else \
                    {"record": records, "line": no,
                     "embedding": [round(float(x), 7) for x in vec]}
                out.write(json.dumps(line, allow_nan=False) + "\n")
        if rows is not None:
            rows.finish()
    return EmbedResult(records, errors, width, Path(opts.output),
                       [] if opts.quiet else stats_notes(model))


# --- records in memory ---------------------------------------------------------------------------
def predict_stream(model: Model, records: Iterable[tuple[int, Text | None, str | None]], *,
                   chunk: int = 1024, top_k: int | None = None) -> Iterator[dict[str, Any]]:
    """One JSON-ready record per input record, in order: {"record", "line", "label",
    "probabilities"} (multi-label: "labels", the list over their thresholds), or {"record",
    "line", "error"} for a record that could not be read. ``top_k``: "probabilities" holds
    only the k most probable labels, most probable first (default: every label), and
    "labels" at most k labels.
    ``record`` counts records from 1 (a TSV header or a blank JSONL line is none); ``line`` is
    where the record starts in the input."""
    check_top_k(top_k)
    number = 0
    for part in chunked(records, chunk):
        probs = model.predict_proba([t for _, t, _ in part if t is not None])
        cols = (top_k_order(probs, top_k) if top_k is not None and top_k < len(model.labels)
                else None)
        at = 0
        for no, text, problem in part:
            number += 1
            if text is None:
                yield {"record": number, "line": no, "error": problem}
                continue
            p, at = probs[at], at + 1
            if cols is None:
                shown = {k: round(float(x), 6) for k, x in zip(model.labels, p, strict=True)}
            else:
                shown = {model.labels[j]: round(float(p[j]), 6) for j in cols[at - 1]}
            if model.thresholds is not None:  # top_k caps the label set too, as in predict()
                over = over_threshold(model.labels, p, model.thresholds, top_k)[0]
                yield {"record": number, "line": no, "labels": over, "probabilities": shown}
            else:
                yield {"record": number, "line": no, "label": model.labels[int(np.argmax(p))],
                       "probabilities": shown}


def embed_stream(model: Model, records: Iterable[tuple[int, Text | None, str | None]], *,
                 chunk: int = 1024) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
    """(line, sentence vector or None, problem) per input record, in order."""
    for part in chunked(records, chunk):
        texts = [t for _, t, _ in part if t is not None]
        if any(not isinstance(t, str) for t in texts):
            raise DataError("embed reads single texts, one per record")
        vecs = iter(model.embed(texts))  # type: ignore[arg-type]
        for no, text, problem in part:
            yield (no, None, problem) if text is None else (no, next(vecs), None)


def stats_notes(model: Model) -> list[str]:
    """What a user should hear once, at the end: truncation, empty texts, unknown words."""
    st, notes = model.stats, []
    if st.truncated:
        notes.append(f"{st.truncated} text(s) longer than {model.max_tokens} tokens were "
                     f"truncated to the first {model.max_tokens}")
    if st.empty:
        notes.append(f"{st.empty} empty text(s) (no tokens): read as a single padding token")
    if st.tokens:
        notes.append(f"{st.unknown} of {st.tokens} tokens ({100 * st.unknown / st.tokens:.1f}%) "
                     "are in no vocabulary (UNK)")
    return notes
