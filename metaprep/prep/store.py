"""The HDF5 store: the only module that knows its layout (documented in docs/store.md).

Writing is atomic: everything goes to a temporary file beside the target, renamed over the target
only when the writer exits cleanly. Reading is lazy: vectors stay on disk until asked for.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from metaprep.checksum import file_sha256
from metaprep.errors import StoreError
from metaprep.tokenize import TokenizerConfig

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "RowSink",
    "CheckedVectors",
    "Store",
    "StoreWriter",
    "file_sha256",
    "open_store",
]

FORMAT_NAME = "metaprep-store"
FORMAT_VERSION = 1
_JSON_KEYS = "_json_keys"  # attribute listing which attributes hold JSON text
_CHUNK_BYTES = 1 << 20  # ~1 MiB chunks: small enough for lazy row reads, big enough for throughput


_BLOCK_BYTES = 1 << 24  # ~16 MiB of rows per block in whole-dataset passes
# Stores whose vectors fit in this many bytes have every value checked (finite) when opened;
# larger ones are checked block by block as their vectors are read (see Store).
_CHECK_AT_OPEN_BYTES = 64 << 20
_HINT_REALIGN = "the store is damaged or was edited: re-run `metaprep align`"
_VECTOR_DTYPES = ("float32", "float16")
# What h5py raises on damaged metadata or data (HDF5's own messages inside)
_H5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError)
_CASE_POLICIES = ("exact", "lower", "fallback")


def _vocab_sha256(words: Sequence[str]) -> str:
    """Hex SHA-256 of the words, each UTF-8 and newline-terminated. The strings live in HDF5's
    global heap, which has no checksum of its own: this catches a damaged word."""
    h = hashlib.sha256()
    for w in words:
        h.update(w.encode("utf-8", "surrogatepass") + b"\n")
    return h.hexdigest()


def _write_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any]) -> None:
    json_keys = list(json.loads(obj.attrs.get(_JSON_KEYS, "[]")))
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, (str, bool, int, float, np.integer, np.floating, np.bool_)):
            obj.attrs[key] = value
        else:
            obj.attrs[key] = json.dumps(value, sort_keys=True, default=str)
            if key not in json_keys:
                json_keys.append(key)
    obj.attrs[_JSON_KEYS] = json.dumps(json_keys)


def _read_attrs(obj: h5py.HLObject, path: Path | None = None) -> dict[str, Any]:
    """The attributes of ``obj``, JSON ones decoded; a StoreError names an undecodable one."""
    where = obj.name if obj.name != "/" else "the root"

    def bad(key: str, what: str) -> StoreError:
        return StoreError(f"attribute {key!r} of {where} {what}", path=path, hint=_HINT_REALIGN)

    try:
        json_keys = json.loads(obj.attrs.get(_JSON_KEYS, "[]"))
    except (TypeError, ValueError) as exc:
        raise bad(_JSON_KEYS, "is not JSON") from exc
    if not isinstance(json_keys, list) or not all(isinstance(k, str) for k in json_keys):
        raise bad(_JSON_KEYS, "is not a JSON list of names")
    out: dict[str, Any] = {}
    for key, value in obj.attrs.items():
        if key == _JSON_KEYS:
            continue
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise bad(key, "is not UTF-8 text") from exc
        if isinstance(value, np.generic):
            value = value.item()
        if key in json_keys:
            try:
                value = json.loads(value)
            except (TypeError, ValueError) as exc:
                raise bad(key, "is not valid JSON") from exc
        out[key] = value
    return out


class StoreWriter:
    """Builds a store in a temporary file; ``close()`` (or leaving the ``with``) publishes it."""

    def __init__(
        self, path: str | Path, vocab: Sequence[str], *, attrs: Mapping[str, Any] | None = None
    ) -> None:
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_path = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            # HDF5 1.8's object headers carry checksums: damaged metadata is then an error
            # when read, not misread (the 'earliest' layout has none)
            self._f = h5py.File(self.tmp_path, "w", libver=("v108", "latest"))
        except OSError as exc:
            raise StoreError(f"cannot create the store: {exc}", path=self.path) from exc
        self.vocab_size = len(vocab)
        self._f.create_dataset(
            "vocab", data=np.array(list(vocab), dtype=object), dtype=h5py.string_dtype("utf-8")
        )
        self._f.create_group("sources")
        self._sources: list[str] = []
        _write_attrs(
            self._f,
            {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "vocab_size": len(vocab),
             "vocab_sha256": _vocab_sha256(vocab), "sources": []},
        )
        if attrs:
            _write_attrs(self._f, attrs)

    def add_source(
        self, name: str, dim: int, *, dtype: str = "float32", attrs: Mapping[str, Any] | None = None
    ) -> h5py.Dataset:
        if name in self._sources:
            raise StoreError(f"source {name!r} given twice", path=self.path)
        g = self._f["sources"].create_group(name)
        rows = max(1, min(self.vocab_size, _CHUNK_BYTES // (dim * np.dtype(dtype).itemsize)))
        ds = g.create_dataset(
            "vectors", shape=(self.vocab_size, dim), dtype=dtype, chunks=(rows, dim),
            fillvalue=0, fletcher32=True,  # a damaged chunk is a read error, not other numbers
        )
        self._mask_dataset(g, "present")
        self._sources.append(name)
        _write_attrs(self._f, {"sources": self._sources})
        _write_attrs(g, {"dim": dim, "dtype": dtype, **(attrs or {})})
        return ds

    def vectors(self, name: str) -> h5py.Dataset:
        return self._f["sources"][name]["vectors"]

    def write_block(self, name: str, start: int, vectors: np.ndarray) -> None:
        """Write consecutive rows ``start .. start+len(vectors)``."""
        self.vectors(name)[start : start + len(vectors)] = vectors

    def write_rows(self, name: str, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Write vectors at arbitrary (unique) rows."""
        if len(rows) == 0:
            return
        order = np.argsort(rows, kind="stable")
        self.vectors(name)[rows[order]] = vectors[order]

    def read_block(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start .. stop`` as float32 (the store being written can be read back)."""
        return np.asarray(self.vectors(name)[start:stop], dtype=np.float32)

    def block_rows(self, name: str) -> int:
        """Rows per block for whole-dataset passes: whole HDF5 chunks, about 16 MiB."""
        ds = self.vectors(name)
        chunk = ds.chunks[0] if ds.chunks else 1
        per_row = ds.shape[1] * ds.dtype.itemsize
        return max(1, _BLOCK_BYTES // (per_row * chunk)) * chunk

    def iter_blocks(self, name: str) -> Iterator[tuple[int, int]]:
        step = self.block_rows(name)
        for start in range(0, self.vocab_size, step):
            yield start, min(start + step, self.vocab_size)

    def row_sink(self, name: str) -> RowSink:
        """A writer for rows arriving in any order (see RowSink)."""
        return RowSink(self, name)

    def set_present(self, name: str, mask: np.ndarray) -> None:
        self._f["sources"][name]["present"][...] = mask.astype(bool)

    def set_derived(self, name: str, mask: np.ndarray) -> None:
        """Mark OOV rows composed from the word itself (subword n-grams, a map from the word's
        vectors in other sources): informative, unlike zero/mean/random fillers."""
        g = self._f["sources"][name]
        if "derived" not in g:
            self._mask_dataset(g, "derived")
        g["derived"][...] = mask.astype(bool)

    def _mask_dataset(self, g: h5py.Group, name: str) -> None:
        v = self.vocab_size
        checked: dict[str, Any] = {"chunks": (min(v, _CHUNK_BYTES),), "fletcher32": True}
        g.create_dataset(name, shape=(v,), dtype=bool, fillvalue=False, **(checked if v else {}))

    def set_source_attrs(self, name: str, attrs: Mapping[str, Any]) -> None:
        _write_attrs(self._f["sources"][name], attrs)

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        _write_attrs(self._f, attrs)

    def close(self) -> Path:
        """Finish and atomically publish the store at ``path``."""
        self._f.close()
        os.replace(self.tmp_path, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; nothing appears at ``path``."""
        try:
            self._f.close()
        finally:
            self.tmp_path.unlink(missing_ok=True)
            for stage in self.tmp_path.parent.glob(f"{self.tmp_path.name}.*.stage"):
                stage.unlink(missing_ok=True)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class RowSink:
    """Writes one source's vectors to rows that arrive in any order, with sequential I/O only.

    Rows that continue a run from row 0 (the first source of a union: file order is row order)
    go straight to the dataset. Any other rows are appended to a staging file beside the store
    and put in place by ``finish()``, one block of consecutive rows at a time: HDF5 writes of
    scattered rows into a chunked dataset are slow. A row written twice keeps its last vector.
    """

    def __init__(self, writer: StoreWriter, name: str) -> None:
        self._writer = writer
        self._name = name
        self._dim = int(writer.vectors(name).shape[1])
        self._next = 0  # rows 0 .. _next were written directly
        self._stage_path = writer.tmp_path.with_name(f"{writer.tmp_path.name}.{name}.stage")
        self._stage: Any = None
        self._staged_rows: list[np.ndarray] = []

    def write(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        """``vectors[k]`` goes to row ``rows[k]``; rows unique within one call."""
        rows = np.asarray(rows, dtype=np.int64)
        n = len(rows)
        if n == 0:
            return
        if self._stage is None and rows[0] == self._next and rows[-1] == self._next + n - 1 and (
            n == 1 or bool(np.all(np.diff(rows) == 1))
        ):
            self._writer.write_block(self._name, self._next, vectors)
            self._next += n
            return
        if self._stage is None:
            self._stage = open(self._stage_path, "wb")  # noqa: SIM115 - closed in finish()
        self._stage.write(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
        self._staged_rows.append(rows)

    def finish(self, *, progress: bool = False) -> None:
        """Move staged rows into place and remove the staging file."""
        if self._stage is None:
            return
        self._stage.close()
        try:
            self._place(progress)
        finally:
            self._stage = None
            self._staged_rows = []
            self._stage_path.unlink(missing_ok=True)

    def close(self) -> None:
        """Drop the staging file if ``finish()`` did not run (the run failed midway)."""
        if self._stage is not None:
            self._stage.close()
            self._stage = None
        self._stage_path.unlink(missing_ok=True)

    def _place(self, progress: bool) -> None:
        import mmap

        rows = np.concatenate(self._staged_rows)
        order = np.argsort(rows, kind="stable")
        rows = rows[order]
        last = np.append(rows[1:] != rows[:-1], True)  # of repeated rows keep the latest
        rows, pos = rows[last], order[last]
        w, name = self._writer, self._name
        with (
            open(self._stage_path, "rb") as f,
            mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm,
        ):
            staged = np.frombuffer(mm, dtype=np.float32).reshape(-1, self._dim)
            blocks = list(w.iter_blocks(name))
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=len(rows), unit="row", leave=False, desc=f"placing {name}")
            for start, stop in blocks:
                i, j = np.searchsorted(rows, [start, stop])
                if i == j:
                    continue
                if start < self._next:
                    buf = w.read_block(name, start, stop)
                else:
                    buf = np.zeros((stop - start, self._dim), dtype=np.float32)
                buf[rows[i:j] - start] = staged[pos[i:j]]
                w.write_block(name, start, buf)
                # pages of the staging file read so far stay in the page cache, not in our RSS
                mm.madvise(mmap.MADV_DONTNEED)
                if bar is not None:
                    bar.update(int(j - i))
            del staged
            if bar is not None:
                bar.close()


class Store:
    """A lazy reader. Plain h5py users can read the same file: see docs/store.md.

    Opening validates the layout (datasets, shapes, dtypes, attributes; see ``_validate``), so a
    damaged or edited store is one StoreError, never a traceback later. Values are checked to be
    finite at open when the store's vectors are small (up to 64 MiB); a larger store's vectors
    are checked block by block as they are read (``vectors(name)[...]``, ``read_vectors``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise StoreError("no such store", path=self.path, hint="run `metaprep align` first")
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as exc:
            raise StoreError(f"not a readable HDF5 file: {exc}", path=self.path) from exc
        try:
            self.attrs = _read_attrs(self._f, self.path)
            self.sources: list[str] = self._validate()
            if self._vector_bytes() <= _CHECK_AT_OPEN_BYTES:
                for name in self.sources:
                    self.read_vectors(name)  # raises on a NaN or infinite value
        except (StoreError, *_H5_ERRORS) as exc:
            self._f.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot read the store: {exc}", path=self.path,
                             hint=_HINT_REALIGN) from exc
        self._vocab: list[str] | None = None
        self._sha256: str | None = None

    # --- validation -------------------------------------------------------------------------
    def _bad(self, what: str) -> StoreError:
        return StoreError(what, path=self.path, hint=_HINT_REALIGN)

    def _validate(self) -> list[str]:
        """Check the layout of docs/store.md; return the source names."""
        attrs, f = self.attrs, self._f
        if attrs.get("format") != FORMAT_NAME:
            raise StoreError("not a metaprep store (no format attribute)", path=self.path)
        version = attrs.get("format_version")
        if version != FORMAT_VERSION:
            raise StoreError(
                f"store format version {version} is not supported (this metaprep reads "
                f"{FORMAT_VERSION})",
                path=self.path,
                hint="re-run `metaprep align` with this version",
            )
        vocab = f.get("vocab")
        if not isinstance(vocab, h5py.Dataset) or vocab.ndim != 1 or \
                h5py.check_string_dtype(vocab.dtype) is None:
            raise self._bad("the /vocab dataset is missing or is not a list of strings")
        v = int(vocab.shape[0])
        size = attrs.get("vocab_size")
        if not isinstance(size, int) or isinstance(size, bool) or size != v:
            raise self._bad(f"the vocab_size attribute ({size!r}) is not the /vocab length {v}")
        policy = attrs.get("case_policy", "exact")
        if policy not in _CASE_POLICIES:
            raise self._bad(f"unknown case_policy {policy!r}")
        tokenizer = attrs.get("tokenizer", {})
        try:
            TokenizerConfig.from_dict(tokenizer)
        except (TypeError, ValueError) as exc:
            raise self._bad(f"bad tokenizer attribute {tokenizer!r} ({exc})") from exc
        names = attrs.get("sources")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or \
                len(set(names)) != len(names):
            raise self._bad("the sources attribute is not a JSON list of distinct names")
        group = f.get("sources")
        if not isinstance(group, h5py.Group):
            raise self._bad("the /sources group is missing")
        for name in names:
            self._validate_source(group.get(name), name, v)
        return names

    def _validate_source(self, g: Any, name: str, v: int) -> None:
        where = f"/sources/{name}"
        if not isinstance(g, h5py.Group):
            raise self._bad(f"{where} is missing (the sources attribute lists it)")
        vectors = g.get("vectors")
        if not isinstance(vectors, h5py.Dataset) or vectors.ndim != 2:
            raise self._bad(f"{where}/vectors is missing or is not a matrix")
        if vectors.shape[0] != v or vectors.shape[1] < 1:
            raise self._bad(f"{where}/vectors has shape {vectors.shape}; expected ({v}, dim)")
        if vectors.dtype.name not in _VECTOR_DTYPES:
            raise self._bad(f"{where}/vectors has dtype {vectors.dtype}; expected float32 or "
                            "float16")
        for mask in ("present", "derived"):
            ds = g.get(mask)
            if ds is None and mask == "derived":
                continue
            if not isinstance(ds, h5py.Dataset) or ds.shape != (v,) or ds.dtype != bool:
                raise self._bad(f"{where}/{mask} is missing or is not {v} booleans")
        attrs = _read_attrs(g, self.path)
        if attrs.get("dim", vectors.shape[1]) != vectors.shape[1]:
            raise self._bad(f"{where}: the dim attribute ({attrs['dim']!r}) is not the vectors' "
                            f"width {vectors.shape[1]}")

    def _vector_bytes(self) -> int:
        return sum(self._f["sources"][n]["vectors"].size * 4 for n in self.sources)

    def _finite(self, name: str, block: np.ndarray, key: Any) -> np.ndarray:
        """``block`` (read with ``key``) unchanged, or a StoreError naming the first row that
        holds a NaN or an infinite value."""
        ok = np.isfinite(block)
        if ok.all():
            return block
        i = int(np.flatnonzero(~ok.reshape(max(1, len(block)), -1).all(axis=1))[0])
        row = "a row"
        if isinstance(key, slice) and key.step in (None, 1):
            row = f"row {(key.start or 0) + i}"
        elif isinstance(key, (np.ndarray, list)):
            row = f"row {int(np.asarray(key)[i])}"
        raise self._bad(f"source {name!r}: {row} holds a NaN or infinite value")

    # --- vocabulary -------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return int(self._f["vocab"].shape[0])

    @property
    def vocab(self) -> list[str]:
        if self._vocab is None:
            try:
                words = list(self._f["vocab"].asstr()[...])
            except (UnicodeDecodeError, *_H5_ERRORS) as exc:
                raise self._bad(f"the vocabulary cannot be read ({exc})") from exc
            if len(set(words)) != len(words):
                raise self._bad("the vocabulary holds a word twice")
            expected = self.attrs.get("vocab_sha256")  # absent in stores from before it
            if expected is not None and expected != _vocab_sha256(words):
                raise self._bad("the vocabulary does not match its vocab_sha256 checksum")
            self._vocab = words
        return self._vocab

    @property
    def case_policy(self) -> str:
        return str(self.attrs.get("case_policy", "exact"))

    @property
    def tokenizer(self) -> dict[str, Any]:
        return dict(self.attrs.get("tokenizer", {}))

    # --- sources ----------------------------------------------------------------------------
    def _group(self, name: str) -> h5py.Group:
        if name not in self.sources:
            raise StoreError(
                f"no source named {name!r}; the store has: {', '.join(self.sources)}",
                path=self.path,
            )
        return self._f["sources"][name]

    def dim(self, name: str) -> int:
        return int(self._group(name)["vectors"].shape[1])

    def vectors(self, name: str) -> CheckedVectors:
        """The on-disk dataset (lazy; slice it to read); what a slice reads is checked finite."""
        return CheckedVectors(self, name, self._group(name)["vectors"])

    def read_vectors(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Vectors as float32, all of them or the given rows."""
        ds = self.vectors(name)
        if rows is None:
            return np.asarray(ds[:], dtype=np.float32)
        rows = np.asarray(rows)
        order = np.argsort(rows, kind="stable")
        uniq, inverse = np.unique(rows[order], return_inverse=True)
        block = np.asarray(ds[uniq], dtype=np.float32) if len(uniq) else np.zeros((0, ds.shape[1]))
        out = np.empty((len(rows), ds.shape[1]), dtype=np.float32)
        out[order] = block[inverse]
        return out

    def present(self, name: str) -> np.ndarray:
        return self._mask(name, "present")

    def derived(self, name: str) -> np.ndarray:
        """Rows an OOV strategy derived from the word itself (all False when none were)."""
        if "derived" not in self._group(name):
            return np.zeros(self.vocab_size, dtype=bool)
        return self._mask(name, "derived")

    def _mask(self, name: str, key: str) -> np.ndarray:
        try:
            return np.asarray(self._group(name)[key][...], dtype=bool)
        except _H5_ERRORS as exc:
            raise self._bad(f"/sources/{name}/{key} cannot be read ({exc})") from exc

    def source_attrs(self, name: str) -> dict[str, Any]:
        try:
            return _read_attrs(self._group(name), self.path)
        except _H5_ERRORS as exc:
            raise self._bad(f"the attributes of /sources/{name} cannot be read ({exc})") from exc

    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        return self._sha256

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CheckedVectors:
    """One source's vectors dataset, read lazily like an h5py.Dataset: every slice read is
    checked to hold finite values only (a StoreError names the row otherwise)."""

    def __init__(self, store: Store, name: str, ds: h5py.Dataset) -> None:
        self._store, self._name, self._ds = store, name, ds
        self.shape: tuple[int, ...] = ds.shape
        self.dtype: np.dtype[Any] = ds.dtype
        self.chunks: tuple[int, ...] | None = ds.chunks

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            block = np.asarray(self._ds[key])
        except _H5_ERRORS as exc:
            raise self._store._bad(f"source {self._name!r}: cannot read vectors ({exc})") from exc
        return self._store._finite(self._name, block, key)


def open_store(path: str | Path) -> Store:
    return Store(path)
