"""metaprep: align pretrained word embeddings, train (contextual) dynamic meta-embeddings, and
serve them with onnxruntime.

The stages are library functions, each taking one typed options dataclass (``metaprep.stages``):

    import metaprep as mp
    mp.align(mp.AlignOptions(sources={"glove": "glove.txt", "ft": "crawl.vec"},
                             vocab=("train.tsv",), output="store.h5"))
    mp.train(mp.TrainOptions(store="store.h5", train="train.tsv", dev="dev.tsv", output="run"))
    mp.export(mp.ExportOptions(run="run", output="model"))
    mp.Model("model").predict(["a fine film"])

Importing this package loads nothing heavy: each name is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

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

# name -> the module that defines it, imported when the name is first used
_LAZY = {
    **{name: "metaprep.stages" for name in (
        "AlignOptions", "AlignResult", "EvaluateOptions", "EvaluateResult", "ExportOptions",
        "ExportResult", "SplitOptions", "SplitResult", "TrainOptions", "TrainResult", "align",
        "evaluate", "export", "split", "train")},
    **{name: "metaprep.runtime.predict" for name in (
        "EmbedOptions", "EmbedResult", "PredictOptions", "PredictResult", "embed", "predict")},
    "Model": "metaprep.runtime",
}

__all__ = [
    "AlignOptions",
    "AlignResult",
    "ConfigError",
    "DataError",
    "EmbedOptions",
    "EmbedResult",
    "EvaluateOptions",
    "EvaluateResult",
    "ExportError",
    "ExportOptions",
    "ExportResult",
    "FormatError",
    "MetaprepError",
    "Model",
    "ModelError",
    "PredictOptions",
    "PredictResult",
    "SplitOptions",
    "SplitResult",
    "StoreError",
    "TrainOptions",
    "TrainResult",
    "VocabError",
    "__version__",
    "align",
    "embed",
    "evaluate",
    "export",
    "predict",
    "split",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'metaprep' has no attribute {name!r}")
