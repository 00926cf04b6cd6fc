"""The predict and embed stages: a model directory + a text file -> predictions or sentence vectors.

    from metaprep.runtime.predict import PredictOptions, predict
    result = predict(PredictOptions(model_dir=Path("model"), input="texts.tsv",
                                    output=Path("predictions.jsonl")))

The CLI (`metaprep predict`, `metaprep embed`) and the pipeline both call these. Input streams
record by record; output is written to a temporary name and renamed when complete (stdout and
devices such as /dev/null are written as they are), so a failure never leaves a half-written file.
``.npy`` output streams too: rows go to disk as they come and the header, which holds the row
count, is rewritten at the end. numpy + onnxruntime only, like the runtime.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np

from metaprep.atomic import atomic_path
from metaprep.errors import ConfigError, DataError
from metaprep.outputs import check_paths, path_fields
from metaprep.runtime.model import (
    INPUT_FORMATS,
    MAX_BATCH,
    MAX_THREADS,
    Model,
    embed_stream,
    predict_stream,
    read_texts,
    stats_notes,
)

__all__ = [
    "EmbedOptions",
    "EmbedResult",
    "PredictOptions",
    "PredictResult",
    "embed",
    "open_input",
    "predict",
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


# --- the stages --------------------------------------------------------------------------------
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
    with open_input(opts.input) as (stream, name), _output(opts.output) as out:
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
    with open_input(opts.input) as (stream, name), _output(opts.output) as out:
        rows = _NpyRows(out, width) if npy else None
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


# --- input and output --------------------------------------------------------------------------
@contextmanager
def open_input(path: str | Path) -> Iterator[tuple[BinaryIO, str]]:
    """The input as bytes (stdin for "-") and the name warnings use for it."""
    if str(path) == "-":
        yield sys.stdin.buffer, "<stdin>"
        return
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise DataError(f"cannot read input: {exc.strerror or exc}", path=path) from exc
    with f:
        yield f, str(path)


class _Sink:
    """Bytes (or str, encoded as UTF-8) to ``f`` through a 64 KiB buffer; an OSError (disk full,
    a closed pipe) becomes one DataError line naming the output."""

    def __init__(self, f: Any, name: str) -> None:
        self.f, self.name = f, name
        self._buf: list[bytes] = []
        self._size = 0

    def _fail(self, exc: OSError) -> DataError:
        hint = ("the program reading the output stopped" if isinstance(exc, BrokenPipeError)
                else "check free space and permissions")
        return DataError(f"cannot write the output: {exc.strerror or exc}", path=self.name,
                         hint=hint)

    def write(self, data: bytes | str) -> None:
        b = data.encode("utf-8") if isinstance(data, str) else data
        self._buf.append(b)
        self._size += len(b)
        if self._size >= 1 << 16:
            self._drain()

    def _drain(self) -> None:
        data, self._buf, self._size = b"".join(self._buf), [], 0
        try:
            self.f.write(data)
        except OSError as exc:
            raise self._fail(exc) from exc

    def flush(self) -> None:
        self._drain()
        try:
            self.f.flush()
        except OSError as exc:
            raise self._fail(exc) from exc

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._drain()
        return self.f.seek(offset, whence)


@contextmanager
def _output(path: Path | None) -> Iterator[_Sink]:
    """A sink: stdout (path None), a device or pipe as it is, else a temporary file beside
    ``path`` renamed over it when the block succeeds."""
    if path is None:
        # a notebook's stdout has no byte buffer: give it text
        stdout = getattr(sys.stdout, "buffer", None) or _TextBytes(sys.stdout)
        sink = _Sink(stdout, "<stdout>")
        try:
            sys.stdout.flush()
            yield sink
            sink.flush()
        except DataError:
            _silence_stdout()
            raise
        return
    path = Path(path)  # the Python API may be given a str
    if path.exists() and not path.is_file():  # /dev/null, a FIFO: never replaced, written to
        with _opened(path, path) as sink:
            yield sink
        return
    with atomic_path(path) as tmp, _opened(tmp, path) as sink:
        yield sink


@contextmanager
def _opened(target: Path, name: Path) -> Iterator[_Sink]:
    try:
        f = open(target, "wb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise DataError(f"cannot write the output: {exc.strerror or exc}", path=name) from exc
    sink = _Sink(f, str(name))
    try:
        yield sink
        sink.flush()
    finally:
        try:
            f.close()
        except OSError:
            pass  # the flush above already reported it


class _TextBytes:
    """A text stream that takes UTF-8 bytes."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, data: bytes) -> int:
        return self.stream.write(data.decode("utf-8"))

    def flush(self) -> None:
        self.stream.flush()


def _silence_stdout() -> None:
    """After a failed write to stdout, point it at /dev/null so the interpreter's own flush at
    exit does not print a second, Python-shaped error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


class _NpyRows:
    """float32 rows appended to an .npy stream; the header (row count) is rewritten at the end.
    The header keeps a fixed size so it can be rewritten in place; a stream that cannot seek
    (a pipe) gets the rows through a temporary file."""

    def __init__(self, out: _Sink, width: int) -> None:
        self.out, self.width, self.rows = out, width, 0
        self.seekable = _can_seek(out)
        self.body: Any = out if self.seekable else tempfile.TemporaryFile()  # noqa: SIM115
        self.size = len(_npy_header(10**18, width))
        self.body.write(_npy_header(0, width, self.size))

    def add(self, row: np.ndarray) -> None:
        self.body.write(np.ascontiguousarray(row, dtype="<f4").tobytes())
        self.rows += 1

    def finish(self) -> None:
        header = _npy_header(self.rows, self.width, self.size)
        if self.seekable:
            self.out.seek(0)
            self.out.write(header)
            return
        self.body.seek(0)
        self.out.write(header)
        self.body.seek(self.size)
        shutil.copyfileobj(self.body, self.out)
        self.body.close()


def _can_seek(f: Any) -> bool:
    try:
        f.seek(0, os.SEEK_CUR)
        return True
    except (OSError, ValueError):
        return False


def _npy_header(rows: int, width: int, size: int | None = None) -> bytes:
    """An .npy v1.0 header for a (rows, width) little-endian float32 array, padded to ``size``
    bytes (a multiple of 64, as the format asks)."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {width}), }}"
    if size is None:
        size = -(-(10 + len(text) + 1) // 64) * 64
    body = text.ljust(size - 10 - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body.encode("latin-1")
