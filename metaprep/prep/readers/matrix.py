"""A matrix plus a vocabulary: ``.npy`` or ``.safetensors`` rows, one token per line in a vocab
file (row i is the i-th line). Example: a transformer's input embedding table and its vocab.txt.

The matrix is memory-mapped (``np.load(mmap_mode="r", allow_pickle=False)``; safetensors by
parsing its small JSON header and mapping the tensor's bytes, which also covers bfloat16), so
only the rows asked for are read. The vocab file is found beside the matrix when not given:
``vocab.txt``, ``<stem>.vocab`` or ``<stem>.txt``.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import numpy as np

from metaprep.errors import FormatError
from metaprep.prep.readers._io import (
    HINT_REPLACE,
    HINT_SKIP,
    Progress,
    check_options,
    note_bad_line,
)
from metaprep.prep.readers.base import MAX_DIM, Chunk, ReadOptions, ReadStats, Source
from metaprep.prep.readers.wordpiece import has_wordpieces, wordpieces

__all__ = ["MatrixSource", "default_vocab_paths", "read_safetensors_header"]

_CHUNK_BYTES = 32 << 20  # matrix bytes per Chunk
_MAX_HEADER = 100 << 20  # safetensors' own limit on its JSON header
_MAX_TOKEN_BYTES = 1 << 16  # as the other readers' longest word
# safetensors dtype -> numpy dtype of the stored bytes (bfloat16 is widened by hand)
_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}


def default_vocab_paths(matrix: Path) -> list[Path]:
    """Where a vocab file is looked for when ReadOptions.vocab_file is not given."""
    return [
        matrix.with_name("vocab.txt"),
        matrix.with_name(matrix.stem + ".vocab"),
        matrix.with_name(matrix.stem + ".txt"),
    ]


def read_safetensors_header(path: Path) -> tuple[dict[str, dict], int]:
    """The tensors described in a .safetensors header, and where the data starts. Every entry
    is checked (a known structure, offsets inside the file) before anything is mapped."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            raw_len = f.read(8)
            if len(raw_len) < 8:
                raise FormatError("too short for a safetensors file", path=path, offset=0)
            (n,) = struct.unpack("<Q", raw_len)
            raw = f.read(n) if n <= min(size - 8, _MAX_HEADER) else b""
    except OSError as exc:
        raise FormatError(f"cannot read: {exc.strerror or exc}", path=path) from exc
    if len(raw) != n or n == 0:
        raise FormatError(
            f"the safetensors header length ({n} bytes) does not fit the file ({size} bytes) "
            "or is over 100 MiB",
            path=path, offset=0, hint="the file is truncated or not safetensors: download it again",
        )
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise FormatError(
            f"the safetensors header is not JSON ({exc})", path=path, offset=8
        ) from exc
    if not isinstance(header, dict):
        raise FormatError("the safetensors header is not a JSON object", path=path, offset=8)
    header.pop("__metadata__", None)
    for name, info in header.items():
        _check_tensor_entry(path, name, info, size - 8 - n)
    return header, 8 + n


def _check_tensor_entry(path: Path, name: str, info: object, data_size: int) -> None:
    """A header entry: ``{"dtype": str, "shape": [int, ...], "data_offsets": [begin, end]}``
    with ``0 <= begin <= end <= data_size`` (whether end - begin fits the dtype and shape is
    checked for the tensor that is read, whose dtype must be known)."""

    def ints(x: object) -> bool:
        return isinstance(x, list) and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in x
        )

    if not isinstance(info, dict) or not isinstance(info.get("dtype"), str) or \
            not ints(info.get("shape")) or not ints(info.get("data_offsets")) or \
            len(info["data_offsets"]) != 2:
        raise FormatError(
            f"tensor {name!r}: the header entry is not {{dtype, shape, data_offsets}}",
            path=path, offset=8, hint="the file is corrupt: download it again",
        )
    begin, end = info["data_offsets"]
    if not begin <= end <= data_size:
        raise FormatError(
            f"tensor {name!r}: its bytes {begin}..{end} lie outside the file's "
            f"{data_size} data bytes",
            path=path, offset=8, hint="the file is truncated: download it again",
        )


class MatrixSource(Source):
    """Rows of a .npy or .safetensors matrix named by the lines of a vocab file."""

    def __init__(
        self, path: str | Path, *, fmt: str = "npy", options: ReadOptions | None = None
    ) -> None:
        if fmt not in ("npy", "safetensors"):
            raise ValueError("fmt must be 'npy' or 'safetensors'")
        self.path = Path(path)
        self.format = fmt
        self.options = check_options(options or ReadOptions())
        self.stats = ReadStats()
        if not self.path.is_file():
            raise FormatError(
                "no such file" if not self.path.exists() else "not a regular file",
                path=self.path, hint="check the path",
            )
        self._mm: mmap.mmap | None = None
        self._matrix = self._open_npy() if fmt == "npy" else self._open_safetensors()
        if self._matrix.ndim != 2:
            raise FormatError(
                f"expected a 2-D matrix (rows x dim), found shape {tuple(self._matrix.shape)}",
                path=self.path,
            )
        self.dim = int(self._matrix.shape[1])
        self.declared_count = int(self._matrix.shape[0])
        if not 1 <= self.dim <= MAX_DIM or not self.declared_count:
            raise FormatError(
                f"the matrix has shape {tuple(self._matrix.shape)}: an embedding table needs at "
                f"least one row and 1 to {MAX_DIM:,} columns",
                path=self.path, hint="the file is corrupt, or not an embedding table",
            )
        self.vocab_path, self._tokens = self._read_vocab()
        if len(self._tokens) != self.declared_count:
            raise FormatError(
                f"the matrix has {self.declared_count} rows but the vocab file "
                f"{self.vocab_path} has {len(self._tokens)} lines",
                path=self.path,
                hint="the vocab file must have exactly one token per matrix row",
            )
        # a transformer's WordPiece table composes missing words from its ##pieces
        self.has_subwords = has_wordpieces(self._tokens)
        self._piece_index: dict[str, int] | None = None

    # --- opening -------------------------------------------------------------------------------
    def _open_npy(self) -> np.ndarray:
        try:
            matrix = np.load(self.path, mmap_mode="r", allow_pickle=False)
        # numpy parses the header with ast and lets SyntaxError, tokenize errors and others out
        # on a damaged one; a shape larger than the file is a ValueError from the memory map;
        # object arrays (pickle) are refused with a ValueError too.
        except Exception as exc:  # noqa: BLE001
            raise FormatError(
                f"not a readable .npy array ({exc})", path=self.path,
                hint="save a numeric matrix with np.save; the file may also be truncated",
            ) from exc
        if not isinstance(matrix, np.ndarray):
            raise FormatError("expected a .npy array, found an .npz archive", path=self.path)
        if matrix.dtype.kind not in "fiu":
            raise FormatError(f"the matrix has non-numeric dtype {matrix.dtype}", path=self.path)
        return matrix

    def _open_safetensors(self) -> np.ndarray:
        header, start = read_safetensors_header(self.path)
        names = sorted(header)
        if not names:
            raise FormatError("the safetensors file holds no tensors", path=self.path)
        name = self.options.tensor
        if name is None:
            if len(names) > 1:
                # only matrices can be embedding tables: list those (a model has many vectors)
                matrices = [n for n in names if len(header[n].get("shape", [])) == 2]
                others = len(names) - len(matrices)
                raise FormatError(
                    f"the file holds {len(names)} tensors; choose one: {', '.join(matrices)}"
                    + (f" ({others} tensors that are not 2-D not listed)" if others else ""),
                    path=self.path, hint="name one: --tensor NAME=TENSOR / ReadOptions(tensor=...)",
                )
            name = names[0]
        elif name not in header:
            raise FormatError(
                f"no tensor named {name!r}; the file holds: {', '.join(names)}", path=self.path
            )
        info = header[name]
        dtype = info.get("dtype")
        if dtype not in _SAFETENSORS_DTYPES:
            raise FormatError(
                f"tensor {name!r} has dtype {dtype}; supported: "
                f"{', '.join(_SAFETENSORS_DTYPES)}",
                path=self.path,
            )
        shape = list(info["shape"])
        begin, end = info["data_offsets"]  # checked inside the file by read_safetensors_header
        itemsize = np.dtype(_SAFETENSORS_DTYPES[dtype]).itemsize
        if end - begin != itemsize * math.prod(shape):  # Python ints: no overflow
            raise FormatError(
                f"tensor {name!r}: its byte range does not match its shape {shape} "
                f"(the file may be truncated)",
                path=self.path, offset=start + begin, hint="download the file again",
            )
        self._bf16 = dtype == "BF16"
        with open(self.path, "rb") as f:
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return np.frombuffer(
            self._mm, dtype=_SAFETENSORS_DTYPES[dtype], count=math.prod(shape),
            offset=start + begin,
        ).reshape(shape)

    def _read_vocab(self) -> tuple[Path, list[str]]:
        if self.options.vocab_file is not None:
            vocab_path = Path(self.options.vocab_file)
            if not vocab_path.is_file():
                raise FormatError("no such vocab file", path=vocab_path, hint="check the path")
        else:
            candidates = default_vocab_paths(self.path)
            found = [p for p in candidates if p.is_file() and p != self.path]
            if not found:
                raise FormatError(
                    "no vocab file found; looked for "
                    + ", ".join(p.name for p in candidates),
                    path=self.path,
                    hint="name it: --vocab-file NAME=PATH / ReadOptions(vocab_file=...)",
                )
            vocab_path = found[0]
        rows = int(self._matrix.shape[0])
        most = rows * (_MAX_TOKEN_BYTES + 2) + 3  # a BOM, CR LF per line
        try:
            size = vocab_path.stat().st_size
            if size > most:  # read whole below: not a 10 GB file for a 30,000-row table
                raise FormatError(
                    f"the vocab file is {size:,} bytes, more than {rows:,} "
                    f"tokens of at most {_MAX_TOKEN_BYTES:,} bytes can take", path=vocab_path,
                    hint="give the vocab file of this matrix (one token per row)")
            data = vocab_path.read_bytes()
        except OSError as exc:
            raise FormatError(f"cannot read: {exc.strerror or exc}", path=vocab_path) from exc
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        tokens = []
        for i, line in enumerate(lines):
            if line.endswith(b"\r"):
                line = line[:-1]
            try:
                tokens.append(line.decode("utf-8", errors=self.options.encoding_errors))
            except UnicodeDecodeError as exc:
                raise FormatError(
                    f"the token is not valid UTF-8 (byte {line[exc.start]:#04x})",
                    path=vocab_path, line=i + 1,
                    hint=HINT_REPLACE,
                ) from exc
        if tokens and all(_looks_like_token_count(t) for t in tokens[:1000]):
            raise FormatError(
                "the lines look like 'token count' pairs, not one token per line",
                path=vocab_path, line=1, hint="keep only the first column",
            )
        return vocab_path, tokens

    # --- the Source contract -------------------------------------------------------------------
    def _selection(self, wanted: Collection[str] | None) -> tuple[list[int], list[str]]:
        self.stats = stats = ReadStats()
        seen: set[str] = set()
        rows: list[int] = []
        words: list[str] = []
        n = len(self._tokens)
        if self.options.limit is not None:
            n = min(n, self.options.limit)
        for i in range(n):
            token = self._tokens[i]
            stats.rows_read += 1
            if not token:
                note_bad_line(stats, f"{self.vocab_path.name} line {i + 1}", "empty token")
                continue
            if token in seen:
                stats.duplicates += 1
                continue
            seen.add(token)
            if wanted is None or token in wanted:
                rows.append(i)
                words.append(token)
        return rows, words

    def _rows(self, rows: list[int]) -> np.ndarray:
        if rows and rows[-1] - rows[0] == len(rows) - 1:  # contiguous: one slice
            block = np.asarray(self._matrix[rows[0] : rows[-1] + 1])
        else:
            block = np.asarray(self._matrix[np.asarray(rows, dtype=np.int64)])
        if self.format == "safetensors" and self._bf16:
            block = (block.astype(np.uint32) << 16).view(np.float32)
        with np.errstate(over="ignore"):  # a float64 past float32's range: refused by name
            return np.ascontiguousarray(block, dtype=np.float32)

    def iter_chunks(self, wanted: Collection[str] | None = None) -> Iterator[Chunk]:
        rows, words = self._selection(wanted)
        per = max(1, _CHUNK_BYTES // max(1, self.dim * self._matrix.dtype.itemsize))
        bar = Progress(
            total=len(rows) * self.dim * self._matrix.dtype.itemsize, desc=self.path.name,
            enabled=self.options.progress,
        )
        try:
            for s in range(0, len(rows), per):
                block = self._rows(rows[s : s + per])
                chunk_words = words[s : s + per]
                ok = np.isfinite(block).all(axis=1)
                if not ok.all():
                    chunk_words, block = self._drop_bad(rows[s : s + per], chunk_words, block, ok)
                bar.update((s + len(chunk_words)) * self.dim * self._matrix.dtype.itemsize, 0)
                if chunk_words:
                    yield Chunk(chunk_words, block)
        finally:
            bar.close()

    def _drop_bad(
        self, rows: list[int], words: list[str], block: np.ndarray, ok: np.ndarray
    ) -> tuple[list[str], np.ndarray]:
        for i in np.flatnonzero(~ok):
            reason = f"row {rows[i]} ({words[i]!r}) has a NaN or infinite value"
            if self.options.on_bad_line == "error":
                raise FormatError(reason, path=self.path, hint="fix the matrix, " + HINT_SKIP)
            note_bad_line(self.stats, f"row {rows[i]}", reason)
        keep = np.flatnonzero(ok)
        return [words[i] for i in keep], block[keep]

    def subword_vectors(self, words: Sequence[str]) -> np.ndarray:
        """(n, dim) float32: each word as the mean of its WordPiece pieces' rows (wordpiece.py);
        zeros for a word with no pieces."""
        if not self.has_subwords:
            raise NotImplementedError(f"{self.path}'s vocabulary has no WordPiece pieces")
        if self._piece_index is None:
            n = len(self._tokens) if self.options.limit is None else self.options.limit
            index: dict[str, int] = {}
            for i, token in enumerate(self._tokens[:n]):
                if token:
                    index.setdefault(token, i)
            self._piece_index = index
        pieces = [wordpieces(w, self._piece_index) for w in words]
        out = np.zeros((len(words), self.dim), np.float32)
        needed = sorted({r for p in pieces for r in p})
        if not needed:
            return out
        table = self._rows(needed)
        where = {r: k for k, r in enumerate(needed)}
        for i, p in enumerate(pieces):
            if p:
                out[i] = table[[where[r] for r in p]].mean(axis=0)
        return out

    def iter_words(self) -> Iterator[list[str]]:
        _, words = self._selection(None)
        if words:
            yield words

    def close(self) -> None:
        self._matrix = np.zeros((0, self.dim), np.float32)
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:  # a caller still holds a view; the map closes with it
                pass
            self._mm = None


def _looks_like_token_count(line: str) -> bool:
    token, sep, count = line.rpartition(" ")
    return bool(sep) and bool(token) and count.isdigit()
