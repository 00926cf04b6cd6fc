"""The model directory written by ``metaprep export-onnx`` (documented in docs/model-dir.md).

The only module that knows the directory's layout: file names, the manifest, and the memory-mapped
vocabulary index. Standard library and numpy only, because the runtime imports it.

The vocabulary is served from disk: ``vocab.txt`` (one word per line, row ``i`` is id ``i + 2``),
``vocab.offsets.npy`` (byte offset of every line) and ``vocab.index.npy`` (an open-addressing hash
table of ``row + 1``, 0 = empty slot, linear probing, slot = blake2b-64(word) mod size). All three
are memory-mapped, so opening a model with millions of words costs milliseconds and almost no
resident memory; a lookup hashes the token and compares the word's bytes.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metaprep.atomic import atomic_path
from metaprep.checksum import file_sha256
from metaprep.errors import ModelError
from metaprep.ids import CASE_POLICIES, ID_OFFSET, UNK_ID, case_variants

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "GRAPH_FILES",
    "MANIFEST",
    "Manifest",
    "MappedVocab",
    "file_sha256",
    "read_manifest",
    "verify_files",
    "word_hash",
    "write_vocab",
]

FORMAT_NAME = "metaprep-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VOCAB_TXT = "vocab.txt"
VOCAB_OFFSETS = "vocab.offsets.npy"
VOCAB_INDEX = "vocab.index.npy"
GRAPH_FILES = {"model": "model.onnx", "front_end": "front_end.onnx"}
# Files larger than this are checked by size only unless a full check is asked for: hashing a
# multi-GB table on every load would cost seconds, and onnxruntime memory-maps it anyway.
LARGE_FILE_BYTES = 64 << 20


def word_hash(word: bytes) -> int:
    """64-bit hash of a word's UTF-8 bytes (stable across processes, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(word, digest_size=8).digest(), "little")


# --- manifest --------------------------------------------------------------------------------
@dataclass
class Manifest:
    """What manifest.json holds; ``files`` maps a file name to {"sha256", "bytes"}."""

    task: dict[str, Any]  # {"pair": bool, "labels": [...], "method": ..., "encoder": ...}
    graphs: dict[str, dict[str, Any]]  # name -> {"file", "inputs", "outputs"}
    case_policy: str
    max_tokens: int
    export: dict[str, Any]  # options: fold, table_dtype, quantize, opset
    source_run: dict[str, Any]  # {"path", "config_sha256", "store_sha256"}
    checks: dict[str, Any] = field(default_factory=dict)  # parity / accuracy figures
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION
    metaprep_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "format_version": self.format_version,
            "metaprep_version": self.metaprep_version,
            "task": self.task,
            "graphs": self.graphs,
            "case_policy": self.case_policy,
            "max_tokens": self.max_tokens,
            "export": self.export,
            "source_run": self.source_run,
            "checks": self.checks,
            "files": self.files,
        }

    def write(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / MANIFEST
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return path

    def record_files(self, model_dir: str | Path, names: Iterable[str]) -> None:
        for name in names:
            p = Path(model_dir) / name
            self.files[name] = {"sha256": file_sha256(p), "bytes": p.stat().st_size}


def read_manifest(model_dir: str | Path) -> Manifest:
    path = Path(model_dir) / MANIFEST
    if not Path(model_dir).is_dir():
        raise ModelError("no such model directory", path=model_dir,
                         hint="create one with `metaprep export-onnx RUN_DIR -o MODEL_DIR`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError("no manifest.json: not a model directory", path=model_dir,
                         hint="create one with `metaprep export-onnx`") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"unreadable manifest: {exc}", path=path) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise ModelError(f"not a {FORMAT_NAME} manifest", path=path)
    if data.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"model directory format version {data.get('format_version')} is not supported "
            f"(this metaprep reads {FORMAT_VERSION})",
            path=path, hint="re-export the run with this version of metaprep",
        )
    known = set(Manifest.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ModelError(f"unknown manifest key(s): {', '.join(unknown)}", path=path)
    try:
        manifest = Manifest(**data)
    except TypeError as exc:
        raise ModelError(f"incomplete manifest: {exc}", path=path) from exc
    if manifest.case_policy not in CASE_POLICIES:
        raise ModelError(f"unknown case policy {manifest.case_policy!r}", path=path)
    return manifest


def verify_files(model_dir: str | Path, manifest: Manifest, *, full: bool = False) -> None:
    """Check every file the manifest lists: size always, sha256 for small files (all with full)."""
    for name, rec in manifest.files.items():
        p = Path(model_dir) / name
        if not p.is_file():
            raise ModelError(f"file {name} listed in the manifest is missing", path=model_dir,
                             hint="copy the whole model directory")
        size = p.stat().st_size
        if size != rec.get("bytes"):
            raise ModelError(
                f"{name} has {size} bytes, the manifest says {rec.get('bytes')}", path=p,
                hint="the model directory was modified or copied incompletely; re-export it",
            )
        if (full or size <= LARGE_FILE_BYTES) and file_sha256(p) != rec.get("sha256"):
            raise ModelError(f"{name} does not match its sha256 in the manifest", path=p,
                             hint="the model directory was modified; re-export it")


# --- vocabulary --------------------------------------------------------------------------------
def _build_index(words: Sequence[bytes]) -> np.ndarray:
    size = 1 << max(4, (2 * len(words) - 1).bit_length())  # load factor <= 0.5
    mask = size - 1
    slots = np.fromiter((word_hash(w) & mask for w in words), dtype=np.int64, count=len(words))
    table = np.zeros(size, dtype=np.int64)
    rows = np.arange(len(words), dtype=np.int64)
    # Vectorised linear probing: each round, the first pending row aiming at a free slot takes it;
    # the others move one slot on. A row only ever moves past occupied slots, so a lookup that
    # probes from the home slot to the first empty one finds it.
    while len(rows):
        free = table[slots] == 0
        _, first = np.unique(slots[free], return_index=True)
        winners = np.flatnonzero(free)[first]
        table[slots[winners]] = rows[winners] + 1
        keep = np.ones(len(rows), dtype=bool)
        keep[winners] = False
        rows, slots = rows[keep], (slots[keep] + 1) & mask
    return table


def write_vocab(model_dir: str | Path, words: Sequence[str]) -> list[str]:
    """Write vocab.txt, its offsets and its hash index; returns the file names written."""
    encoded: list[bytes] = []
    for i, w in enumerate(words):
        if "\n" in w or "\r" in w:
            raise ModelError(f"vocabulary word at row {i} contains a line break: {w!r}",
                             path=model_dir, hint="drop or rename that word in the store")
        encoded.append(w.encode("utf-8"))
    d = Path(model_dir)
    lengths = np.fromiter((len(b) + 1 for b in encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    with open(d / VOCAB_TXT, "wb") as f:
        for b in encoded:
            f.write(b + b"\n")
    np.save(d / VOCAB_OFFSETS, offsets)
    np.save(d / VOCAB_INDEX, _build_index(encoded))
    return [VOCAB_TXT, VOCAB_OFFSETS, VOCAB_INDEX]


class MappedVocab:
    """Token -> id through the memory-mapped index; same answers as ``vocab.VocabIndex``."""

    def __init__(self, model_dir: str | Path, *, case_policy: str) -> None:
        d = Path(model_dir)
        if case_policy not in CASE_POLICIES:
            raise ModelError(f"unknown case policy {case_policy!r}", path=d / MANIFEST)
        self.case_policy = case_policy
        try:
            self._offsets = np.load(d / VOCAB_OFFSETS, mmap_mode="r")
            self._table = np.load(d / VOCAB_INDEX, mmap_mode="r")
            with open(d / VOCAB_TXT, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                self._text: mmap.mmap | bytes = (
                    mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
                )
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot open the vocabulary: {exc}", path=d) from exc
        self._mask = len(self._table) - 1
        if len(self._table) & self._mask or int(self._offsets[-1]) != size:
            raise ModelError("vocabulary files do not agree with each other", path=d,
                             hint="re-export the model directory")
        self._cache: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def word(self, row: int) -> str:
        start, end = int(self._offsets[row]), int(self._offsets[row + 1]) - 1
        return bytes(self._text[start:end]).decode("utf-8")

    def _find(self, word: str) -> int | None:
        b = word.encode("utf-8", "surrogatepass")
        slot = word_hash(b) & self._mask
        while True:
            entry = int(self._table[slot])
            if entry == 0:
                return None
            row = entry - 1
            start, end = int(self._offsets[row]), int(self._offsets[row + 1]) - 1
            if end - start == len(b) and self._text[start:end] == b:
                return row
            slot = (slot + 1) & self._mask

    def row(self, token: str) -> int | None:
        for _, form in case_variants(token, self.case_policy):
            r = self._find(form)
            if r is not None:
                return r
        return None

    def id(self, token: str) -> int:
        # A small cache: real text repeats its frequent words, and a dict hit beats hashing.
        got = self._cache.get(token)
        if got is None:
            r = self.row(token)
            got = UNK_ID if r is None else r + ID_OFFSET
            if len(self._cache) < 200_000:
                self._cache[token] = got
        return got

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.id(t) for t in tokens]
