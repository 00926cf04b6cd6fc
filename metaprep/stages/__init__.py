"""metaprep's stages as library functions: the documented Python API.

Each stage takes one typed options dataclass and returns a typed result. ``metaprep <command>``
and ``metaprep run PIPELINE.toml`` are two thin faces over these same functions.

    stage           options               result                implementation
    split           SplitOptions          SplitResult           metaprep.prep.split
    align           AlignOptions          AlignResult           metaprep.prep.align
    inspect         InspectOptions        InspectResult         metaprep.prep.inspect
    export_vectors  ExportVectorsOptions  ExportVectorsResult   metaprep.prep.exportvec
    static_source   StaticSourceOptions   StaticSourceResult    metaprep.learn.staticsource
    train           TrainOptions          TrainResult           metaprep.learn.train
    evaluate        EvaluateOptions       EvaluateResult        metaprep.learn.evaluate
    export          ExportOptions         ExportResult          metaprep.exporter.run
    triton          TritonOptions         TritonResult          metaprep.exporter.triton_python
    predict         PredictOptions        PredictResult         metaprep.runtime.predict
    embed           EmbedOptions          EmbedResult           metaprep.runtime.predict

A field that names a file says so in its metadata: ``{"path": "in"}`` for what a stage reads,
``{"path": "out"}`` for what it writes. The pipeline hashes the first and fills the second.
Importing this package is cheap: each stage imports its heavy libraries when it runs.

One private module per stage holds its options, result and function (``_split.py``,
``_align.py``, ``_inspect.py``, ``_export_vectors.py``, ``_static_source.py``, ``_train.py``,
``_evaluate.py``, ``_export.py``, ``_triton.py``); ``_common.py`` holds what they share.
predict and embed are defined in ``metaprep.runtime.predict``, so that they run where only the
runtime is installed (numpy + onnxruntime), and ``TritonResult`` in
``metaprep.exporter.triton_python``, which makes it: this package hands them out on first use.
The modules' names start with an underscore so that none is shadowed by its function
(``metaprep.stages.train`` is the function, and only the function): import every name from the
package, ``from metaprep.stages import TrainOptions``.

    import metaprep as mp
    mp.align(mp.AlignOptions(sources={"glove": "glove.txt"}, vocab=("train.tsv",),
                             output="store.h5"))
    run = mp.train(mp.TrainOptions(store="store.h5", train="train.tsv", dev="dev.tsv",
                                   output="run"))
    mp.export(mp.ExportOptions(run="run", output="model"))
    mp.Model("model").predict(["a fine film"])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from metaprep.outputs import path_fields
from metaprep.stages._align import AlignOptions, AlignResult, align
from metaprep.stages._common import TaskColumns
from metaprep.stages._evaluate import EvaluateOptions, EvaluateResult, evaluate
from metaprep.stages._export import ExportOptions, ExportResult, export
from metaprep.stages._export_vectors import (
    ExportVectorsOptions,
    ExportVectorsResult,
    export_vectors,
)
from metaprep.stages._inspect import InspectOptions, InspectResult, inspect
from metaprep.stages._split import SplitOptions, SplitResult, split
from metaprep.stages._static_source import StaticSourceOptions, StaticSourceResult, static_source
from metaprep.stages._train import TrainOptions, TrainResult, train
from metaprep.stages._triton import TritonOptions, triton

if TYPE_CHECKING:
    from metaprep.exporter.triton_python import TritonResult
    from metaprep.runtime.predict import (
        EmbedOptions,
        EmbedResult,
        PredictOptions,
        PredictResult,
        embed,
        predict,
    )

__all__ = [
    "AlignOptions",
    "AlignResult",
    "EmbedOptions",
    "EmbedResult",
    "EvaluateOptions",
    "EvaluateResult",
    "ExportOptions",
    "ExportResult",
    "ExportVectorsOptions",
    "ExportVectorsResult",
    "InspectOptions",
    "InspectResult",
    "PredictOptions",
    "PredictResult",
    "SplitOptions",
    "SplitResult",
    "StaticSourceOptions",
    "StaticSourceResult",
    "TaskColumns",
    "TrainOptions",
    "TrainResult",
    "TritonOptions",
    "TritonResult",
    "align",
    "embed",
    "evaluate",
    "export",
    "export_vectors",
    "inspect",
    "path_fields",
    "predict",
    "split",
    "static_source",
    "train",
    "triton",
]

# name -> the module that defines it, imported when the name is first used
_LAZY = {
    **{name: "metaprep.runtime.predict" for name in (
        "EmbedOptions", "EmbedResult", "PredictOptions", "PredictResult", "embed", "predict")},
    "TritonResult": "metaprep.exporter.triton_python",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'metaprep.stages' has no attribute {name!r}")
