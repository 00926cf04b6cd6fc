"""metaprep: align pretrained word embeddings, train (contextual) dynamic meta-embeddings, and
serve them with onnxruntime.

Importing this package loads nothing heavy; import the submodule you need (``metaprep.prep.align``,
``metaprep.train``, ``metaprep.export``, ``metaprep.runtime``).
"""

from __future__ import annotations

from metaprep.errors import (
    ConfigError,
    DataError,
    ExportError,
    FormatError,
    MetaprepError,
    ModelError,
    StoreError,
    VocabError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "ExportError",
    "FormatError",
    "MetaprepError",
    "ModelError",
    "StoreError",
    "VocabError",
    "__version__",
]
