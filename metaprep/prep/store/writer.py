"""Writing a store: a temporary file beside the target, renamed over it only when the writer
exits cleanly; the room it needs is checked before anything is written."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from metaprep.errors import StoreError
from metaprep.prep.store.guardfile import DiscardableFile
from metaprep.prep.store.heapcheck import written_here
from metaprep.prep.store.layout import (
    BLOCK_BYTES,
    CHUNK_BYTES,
    FORMAT_NAME,
    FORMAT_VERSION,
    GROWING_CHUNK_ROWS,
    H5_ERRORS,
    WRITE_CACHE_BYTES,
    vocab_sha256,
    write_attrs,
)

__all__ = ["NonFiniteRows", "RowSink", "StoreWriter", "store_bytes"]

# errnos of a write that found no room: a full disk, the file-size limit, a quota
_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def _check_room(path: Path, need: int) -> None:
    """Refuse up front a store the disk or the file-size limit cannot hold: HDF5 does not survive
    a write that fails half-way (it can crash the process while closing the file)."""
    import resource

    if need <= 0:
        return
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and need > limit:
        raise StoreError(f"the store needs about {need / 1e6:,.1f} MB but this process may write "
                         f"files of at most {limit / 1e6:,.1f} MB (ulimit -f)", path=path,
                         hint="raise the limit, or align fewer words or sources")
    st = os.statvfs(path.parent if str(path.parent) else ".")
    free = st.f_bavail * st.f_frsize
    if need > free:
        raise StoreError(f"the store needs about {need / 1e6:,.1f} MB but only "
                         f"{free / 1e6:,.1f} MB are free on its disk", path=path,
                         hint="free some space, or write the store elsewhere")


class NonFiniteRows(StoreError):
    """Rows that would be stored as NaN or infinite (a source's values near the float limit,
    overflowing when normalised or when its OOV rows are computed): never written, since a
    store holding them does not open. align names the source's file."""

    def __init__(self, name: str, row: int) -> None:
        super().__init__(f"source {name!r}: row {row} would be stored as NaN or infinite")
        self.name, self.row = name, row


def _check_finite(name: str, rows: np.ndarray, vectors: np.ndarray, dtype: np.dtype) -> None:
    limit = float(np.finfo(dtype).max)  # float16 rows past 65,504 would be stored as inf
    with np.errstate(invalid="ignore"):
        ok = (np.abs(vectors) <= limit).all(axis=1)  # NaN compares False
    if not ok.all():
        raise NonFiniteRows(name, int(rows[int(np.argmin(ok))]))


def store_bytes(rows: int, word_bytes: int, dims: Sequence[int], dtype: str) -> int:
    """About how large a store of ``rows`` words (``word_bytes`` of UTF-8 in all) and these
    sources will be: vectors, masks, the words and HDF5's own structures."""
    per_row = sum(dims) * np.dtype(dtype).itemsize + 2 * len(dims) + 32
    return int(word_bytes + rows * per_row + (1 << 20))


class StoreWriter:
    """Builds a store in a temporary file; ``close()`` (or leaving the ``with``) publishes it."""

    def __init__(
        self, path: str | Path, vocab: Sequence[str] | None, *,
        attrs: Mapping[str, Any] | None = None, expected_bytes: int = 0,
    ) -> None:
        """``vocab=None``: the vocabulary grows while sources are written (``grow()`` before
        writing past the end, ``set_vocab()`` before closing), so a union needs no words-only
        pass over the sources first."""
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        _check_room(self.path, expected_bytes)
        self.tmp_path = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self._file = DiscardableFile(self.tmp_path)  # a failed write can be abandoned
            # HDF5 1.8's object headers carry checksums: damaged metadata is then an error
            # when read, not misread (the 'earliest' layout has none)
            self._f = h5py.File(self._file, "w", libver=("v108", "latest"),
                                rdcc_nbytes=WRITE_CACHE_BYTES)
        except OSError as exc:
            self.tmp_path.unlink(missing_ok=True)
            raise StoreError(f"cannot create the store: {exc}", path=self.path) from exc
        self._growing = vocab is None
        self.vocab_size = 0
        self._capacity = 0  # rows the datasets of a growing writer hold (doubles: resizes cost)
        self._f.create_group("sources")
        self._sources: list[str] = []
        self._vectors: dict[str, h5py.Dataset] = {}  # handles: an h5py look-up per write is slow
        write_attrs(self._f, {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                              "sources": []})
        if vocab is not None:
            self._write_vocab(vocab)
        if attrs:
            write_attrs(self._f, attrs)

    def _write_vocab(self, vocab: Sequence[str]) -> None:
        self.vocab_size = len(vocab)
        self._f.create_dataset(
            "vocab", data=np.array(list(vocab), dtype=object), dtype=h5py.string_dtype("utf-8")
        )
        write_attrs(self._f, {"vocab_size": len(vocab), "vocab_sha256": vocab_sha256(vocab)})

    def grow(self, rows: int) -> None:
        """Make every source ``rows`` rows long (a growing vocabulary only; new rows are 0)."""
        if rows <= self.vocab_size:
            return
        if not self._growing:
            raise ValueError("grow() needs a writer opened with vocab=None")
        if rows > self._capacity:
            self._resize(max(rows, 2 * self._capacity))
        self.vocab_size = rows

    def _resize(self, rows: int) -> None:
        for name in self._sources:
            self._vectors[name].resize(rows, axis=0)
        self._capacity = rows

    def set_vocab(self, vocab: Sequence[str]) -> None:
        """The final vocabulary of a growing writer: at least as many rows as written."""
        if not self._growing:
            raise ValueError("set_vocab() needs a writer opened with vocab=None")
        if len(vocab) < self.vocab_size:
            raise ValueError(f"{len(vocab)} words for {self.vocab_size} rows written")
        self._resize(len(vocab))  # exactly: drops the spare rows grow() reserved
        for name in self._sources:
            self._f["sources"][name]["present"].resize((len(vocab),))
        self._write_vocab(vocab)
        self._growing = False

    def add_source(
        self, name: str, dim: int, *, dtype: str = "float32", attrs: Mapping[str, Any] | None = None
    ) -> h5py.Dataset:
        if name in self._sources:
            raise StoreError(f"source {name!r} given twice", path=self.path)
        g = self._f["sources"].create_group(name)
        rows = max(1, CHUNK_BYTES // (dim * np.dtype(dtype).itemsize))
        # a growing store's final size is unknown: cap the chunk so a tiny one stays small
        rows = min(rows, GROWING_CHUNK_ROWS) if self._growing else min(rows, self.vocab_size)
        grows: dict[str, Any] = {"maxshape": (None, dim)} if self._growing else {}
        ds = g.create_dataset(
            "vectors", shape=(max(self.vocab_size, self._capacity), dim), dtype=dtype,
            chunks=(max(1, rows), dim),
            fillvalue=0, fletcher32=True,  # a damaged chunk is a read error, not other numbers
            **grows,
        )
        self._mask_dataset(g, "present")
        self._vectors[name] = ds
        self._sources.append(name)
        write_attrs(self._f, {"sources": self._sources})
        write_attrs(g, {"dim": dim, "dtype": dtype, **(attrs or {})})
        return ds

    def vectors(self, name: str) -> h5py.Dataset:
        return self._vectors[name]

    def write_block(self, name: str, start: int, vectors: np.ndarray) -> None:
        """Write consecutive rows ``start .. start+len(vectors)``."""
        ds = self.vectors(name)
        _check_finite(name, np.arange(start, start + len(vectors)), vectors, ds.dtype)
        ds[start : start + len(vectors)] = vectors

    def write_rows(self, name: str, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Write vectors at arbitrary (unique) rows."""
        if len(rows) == 0:
            return
        ds = self.vectors(name)
        _check_finite(name, rows, vectors, ds.dtype)
        order = np.argsort(rows, kind="stable")
        ds[rows[order]] = vectors[order]

    def read_block(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start .. stop`` as float32 (the store being written can be read back)."""
        return np.asarray(self.vectors(name)[start:stop], dtype=np.float32)

    def block_rows(self, name: str) -> int:
        """Rows per block for whole-dataset passes: whole HDF5 chunks, about 16 MiB."""
        ds = self.vectors(name)
        chunk = ds.chunks[0] if ds.chunks else 1
        per_row = ds.shape[1] * ds.dtype.itemsize
        return max(1, BLOCK_BYTES // (per_row * chunk)) * chunk

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
        if self._growing:  # resized with the vectors (set_vocab)
            g.create_dataset(name, shape=(v,), dtype=bool, fillvalue=False, maxshape=(None,),
                             chunks=(1 << 16,), fletcher32=True)
            return
        checked: dict[str, Any] = {"chunks": (min(v, CHUNK_BYTES),), "fletcher32": True}
        g.create_dataset(name, shape=(v,), dtype=bool, fillvalue=False, **(checked if v else {}))

    def set_source_attrs(self, name: str, attrs: Mapping[str, Any]) -> None:
        write_attrs(self._f["sources"][name], attrs)

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        write_attrs(self._f, attrs)

    def close(self) -> Path:
        """Finish and atomically publish the store at ``path``."""
        if self._growing:
            self.abort()
            raise ValueError("a growing store was closed before set_vocab()")
        try:
            # flushed while the file is still open: should this fail (a full disk), abort()
            # can still close it; a close that fails half-way leaves HDF5 broken for good
            self._f.flush()
            self._file.flush()
        except (*H5_ERRORS, OSError) as exc:
            self.abort()
            raise self._write_error(exc) from exc
        self._f.close()
        self._file.close()
        os.replace(self.tmp_path, self.path)
        written_here(self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; nothing appears at ``path``."""
        self._file.discard()
        try:
            self._f.close()
            self._file.close()
        except (*H5_ERRORS, OSError):
            pass  # the file is being removed: what it failed to write does not matter
        finally:
            self.tmp_path.unlink(missing_ok=True)
            for stage in self.tmp_path.parent.glob(f"{self.tmp_path.name}.*.stage"):
                stage.unlink(missing_ok=True)

    def _write_error(self, exc: BaseException) -> StoreError:
        if isinstance(exc, OSError) and exc.errno in _FULL:
            first = os.strerror(exc.errno)
        else:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return StoreError(f"cannot write the store ({first}); nothing was written and an "
                          "earlier store at this path is kept", path=self.path,
                          hint="free some space (or raise ulimit -f), or write elsewhere")

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
            return
        self.abort()
        if isinstance(exc, OSError) and exc.errno in _FULL:
            raise self._write_error(exc) from exc


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
