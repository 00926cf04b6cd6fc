"""``metaprep.runtime``, where users import the serving API from: the same as
:mod:`metaprep.serve.runtime` (numpy + onnxruntime only; no torch, gensim or h5py)."""

from __future__ import annotations

from metaprep.serve.runtime import *  # noqa: F403
from metaprep.serve.runtime import __all__ as __all__  # noqa: F401
