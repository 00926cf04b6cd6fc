"""metaprep's stages as library functions: the documented Python API.

Each stage takes one typed options dataclass and returns a typed result. ``metaprep <command>``
and ``metaprep run PIPELINE.toml`` are two thin faces over these same functions.

    stage     options          result           implementation
    split     SplitOptions     SplitResult      metaprep.prep.split
    align     AlignOptions     AlignResult      metaprep.prep.align
    distill   DistillOptions   DistillResult    metaprep.learn.distill
    train     TrainOptions     TrainResult      metaprep.learn.train
    evaluate  EvaluateOptions  EvaluateResult   metaprep.learn.evaluate
    export    ExportOptions    ExportResult     metaprep.exporter.run
    predict   PredictOptions   PredictResult    metaprep.runtime.predict
    embed     EmbedOptions     EmbedResult      metaprep.runtime.predict

A field that names a file says so in its metadata: ``{"path": "in"}`` for what a stage reads,
``{"path": "out"}`` for what it writes. The pipeline hashes the first and fills the second.
Importing this package is cheap: each stage imports its heavy libraries when it runs.

One module per stage holds its options, result and function (``split.py``, ``align.py``,
``distill.py``, ``train.py``, ``evaluate.py``, ``export.py``; predict and embed live in
``metaprep.runtime.predict``); ``_common.py`` holds what they share. The package re-exports the
functions under the modules' own names, so ``metaprep.stages.train`` is the function: reach a
module with ``from metaprep.stages.train import ...``.

    import metaprep as mp
    mp.align(mp.AlignOptions(sources={"glove": "glove.txt"}, vocab=("train.tsv",),
                             output="store.h5"))
    run = mp.train(mp.TrainOptions(store="store.h5", train="train.tsv", dev="dev.tsv",
                                   output="run"))
    mp.export(mp.ExportOptions(run="run", output="model"))
    mp.Model("model").predict(["a fine film"])
"""

from __future__ import annotations

from metaprep.outputs import path_fields
from metaprep.stages._common import TaskColumns
from metaprep.stages.align import AlignOptions, AlignResult, align
from metaprep.stages.distill import DistillOptions, DistillResult, distill
from metaprep.stages.evaluate import EvaluateOptions, EvaluateResult, evaluate
from metaprep.stages.export import ExportOptions, ExportResult, export
from metaprep.stages.split import SplitOptions, SplitResult, split
from metaprep.stages.train import HYPER as HYPER
from metaprep.stages.train import TrainOptions, TrainResult, train

__all__ = [
    "AlignOptions",
    "AlignResult",
    "DistillOptions",
    "DistillResult",
    "EvaluateOptions",
    "EvaluateResult",
    "ExportOptions",
    "ExportResult",
    "SplitOptions",
    "SplitResult",
    "TaskColumns",
    "TrainOptions",
    "TrainResult",
    "align",
    "distill",
    "evaluate",
    "export",
    "path_fields",
    "split",
    "train",
]
