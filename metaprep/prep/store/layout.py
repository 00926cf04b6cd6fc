"""The store's layout: names, limits and how attributes are written and read back (JSON
values are kept as text and listed in ``_json_keys``). docs/store.md describes it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from metaprep.errors import StoreError

__all__ = [
    "BLOCK_BYTES",
    "CASE_POLICIES",
    "CHECK_AT_OPEN_BYTES",
    "CHUNK_BYTES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "GROWING_CHUNK_ROWS",
    "H5_ERRORS",
    "HINT_REALIGN",
    "VECTOR_DTYPES",
    "WRITE_CACHE_BYTES",
    "read_attrs",
    "vocab_sha256",
    "write_attrs",
]

FORMAT_NAME = "metaprep-store"
FORMAT_VERSION = 1
_JSON_KEYS = "_json_keys"  # attribute listing which attributes hold JSON text
CHUNK_BYTES = 1 << 20  # ~1 MiB chunks: small enough for lazy row reads, big enough for throughput


BLOCK_BYTES = 1 << 24  # ~16 MiB of rows per block in whole-dataset passes
# Chunk cache of each dataset being written. Rows arrive in batches that do not end on chunk
# boundaries; with HDF5's default 1 MiB cache a chunk cut by a batch edge is evicted and rewritten,
# which made writing a 200k x 300 source take ~0.9 s instead of ~0.2 s (measured with h5py 3).
WRITE_CACHE_BYTES = 1 << 25
GROWING_CHUNK_ROWS = 4096  # chunk rows when the vocabulary size is not known in advance
# Stores whose vectors fit in this many bytes have every value checked (finite) when opened;
# larger ones are checked block by block as their vectors are read (see Store).
CHECK_AT_OPEN_BYTES = 64 << 20
HINT_REALIGN = "the store is damaged or was edited: re-run `metaprep align`"
VECTOR_DTYPES = ("float32", "float16")
# What h5py raises on damaged metadata or data (HDF5's own messages inside)
H5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError)
CASE_POLICIES = ("exact", "lower", "fallback")


def vocab_sha256(words: Sequence[str]) -> str:
    """Hex SHA-256 of the words, each UTF-8 and newline-terminated. The strings live in HDF5's
    global heap, which has no checksum of its own: this catches a damaged word."""
    h = hashlib.sha256()
    for w in words:
        h.update(w.encode("utf-8", "surrogatepass") + b"\n")
    return h.hexdigest()


def write_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any]) -> None:
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


def read_attrs(obj: h5py.HLObject, path: Path | None = None) -> dict[str, Any]:
    """The attributes of ``obj``, JSON ones decoded; a StoreError names an undecodable one."""
    where = obj.name if obj.name != "/" else "the root"

    def bad(key: str, what: str) -> StoreError:
        return StoreError(f"attribute {key!r} of {where} {what}", path=path, hint=HINT_REALIGN)

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
