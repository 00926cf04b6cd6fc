"""The HDF5 store: the only package that knows its layout (documented in docs/store.md).

    layout.py   names, limits, attributes      writer.py   StoreWriter, RowSink (atomic)
    reader.py   Store (checked on open, lazy)
"""

from __future__ import annotations

from metaprep.checksum import file_sha256
from metaprep.prep.store.layout import FORMAT_NAME, FORMAT_VERSION
from metaprep.prep.store.reader import CheckedVectors, Store, only_replace_a_store, open_store
from metaprep.prep.store.writer import RowSink, StoreWriter, store_bytes

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CheckedVectors",
    "RowSink",
    "Store",
    "StoreWriter",
    "file_sha256",
    "only_replace_a_store",
    "open_store",
    "store_bytes",
]
