"""Reading a store: checked on open (datasets, shapes, dtypes, attributes, finite values), then
lazy: vectors stay on disk until asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from metaprep.checksum import file_sha256
from metaprep.errors import ConfigError, StoreError
from metaprep.names import is_name
from metaprep.patterncheck import pattern_problem
from metaprep.prep.store.heapcheck import check_strings, damaged_heap, scan_heaps
from metaprep.prep.store.layout import (
    CASE_POLICIES,
    CHECK_AT_OPEN_BYTES,
    FORMAT_NAME,
    FORMAT_VERSION,
    H5_ERRORS,
    HINT_REALIGN,
    VECTOR_DTYPES,
    read_attrs,
    vocab_sha256,
)
from metaprep.tokenize import TokenizerConfig

__all__ = ["CheckedVectors", "Store", "only_replace_a_store", "open_store"]


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
        self._heaps = scan_heaps(self.path)  # damaged string storage would hang HDF5
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as exc:
            raise StoreError(f"not a readable HDF5 file: {exc}", path=self.path) from exc
        try:
            self.attrs = read_attrs(self._f, self.path)
            self.sources: list[str] = self._validate()
            if self._vector_bytes() <= CHECK_AT_OPEN_BYTES:
                for name in self.sources:
                    self.read_vectors(name)  # raises on a NaN or infinite value
        except (StoreError, *H5_ERRORS) as exc:
            self._f.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot read the store: {exc}", path=self.path,
                             hint=HINT_REALIGN) from exc
        self._vocab: list[str] | None = None
        self._sha256: str | None = None

    # --- validation -------------------------------------------------------------------------
    def _bad(self, what: str) -> StoreError:
        return StoreError(what, path=self.path, hint=HINT_REALIGN)

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
        if policy not in CASE_POLICIES:
            raise self._bad(f"unknown case_policy {policy!r}")
        tokenizer = attrs.get("tokenizer", {})
        try:
            tok = TokenizerConfig.from_dict(tokenizer)
        except (TypeError, ValueError) as exc:
            raise self._bad(f"bad tokenizer attribute {tokenizer!r} ({exc})") from exc
        problem = pattern_problem(tok.pattern) if tok.mode == "regex" else None
        if problem:  # train would stall tokenizing the task data with it
            raise self._bad(f"the tokenizer pattern {tok.pattern!r} {problem}")
        names = attrs.get("sources")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or \
                len(set(names)) != len(names):
            raise self._bad("the sources attribute is not a JSON list of distinct names")
        odd = [n for n in names if not is_name(n)]
        if odd:  # align names sources so; "a/b" or "/vocab" would be a path inside the file
            raise self._bad(f"the sources attribute lists {odd[0][:60]!r}, not a source name")
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
        if vectors.dtype.name not in VECTOR_DTYPES:
            raise self._bad(f"{where}/vectors has dtype {vectors.dtype}; expected float32 or "
                            "float16")
        for mask in ("present", "derived"):
            ds = g.get(mask)
            if ds is None and mask == "derived":
                continue
            if not isinstance(ds, h5py.Dataset) or ds.shape != (v,) or ds.dtype != bool:
                raise self._bad(f"{where}/{mask} is missing or is not {v} booleans")
        attrs = read_attrs(g, self.path)
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
            ds = self._f["vocab"]
            check_strings(self.path, ds.id.get_offset(), len(ds), self._heaps, "/vocab")
            try:
                words = list(ds.asstr()[...])
            except (UnicodeDecodeError, *H5_ERRORS) as exc:
                raise self._bad(f"the vocabulary cannot be read ({exc})") from exc
            if len(set(words)) != len(words):
                raise self._bad("the vocabulary holds a word twice")
            expected = self.attrs.get("vocab_sha256")  # absent in stores from before it
            if expected is not None and expected != vocab_sha256(words):
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
        except H5_ERRORS as exc:
            raise self._bad(f"/sources/{name}/{key} cannot be read ({exc})") from exc

    def source_attrs(self, name: str) -> dict[str, Any]:
        try:
            return read_attrs(self._group(name), self.path)
        except H5_ERRORS as exc:
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
        self.maxshape: tuple[int | None, ...] = ds.maxshape

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            block = np.asarray(self._ds[key])
        except H5_ERRORS as exc:
            raise self._store._bad(f"source {self._name!r}: cannot read vectors ({exc})") from exc
        return self._store._finite(self._name, block, key)


def open_store(path: str | Path) -> Store:
    return Store(path)


def only_replace_a_store(path: Path) -> None:
    """align replaces an existing file only if it is a metaprep store (its own earlier output)."""
    if not path.exists():
        return
    try:  # a damaged string heap would hang HDF5 (see heapcheck)
        ours = path.is_file() and damaged_heap(path) is None
        if ours:
            with h5py.File(path, "r") as f:
                ours = f.attrs.get("format") in (FORMAT_NAME, FORMAT_NAME.encode())
    except OSError:
        ours = False
    if not ours:
        raise ConfigError("exists and is not a metaprep store: align replaces only its own "
                          "earlier output", path=path, hint="remove it yourself, or write "
                          "elsewhere")
