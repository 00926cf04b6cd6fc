"""A model directory -> predictions, with numpy and onnxruntime only: what ships to production.

    from metaprep.runtime import Model
    Model("model/").predict(["a fine film"])

    model.py       Model: the sessions, the graphs' loading, predict / embed
    textpath.py    texts -> ids, in Python or in the text graph    batching.py  batches, threads
    inputs.py      reading input texts      predict.py  the predict and embed stages
    sinks.py       what those stages write  probabilities.py  a row's labels and probabilities
    modeldir.py    the only module that knows the model directory (manifest.py: its records,
                   vocabfile.py: the vocabulary files, dirfiles.py: the files checked)
    graphcheck.py graphrules.py graphvalues.py graphjoin.py onnx_read.py onnx_scan.py
                   a graph's bounds, read from its bytes before onnxruntime sees it
    runcheck.py    what a graph gives, checked at run time
    engines.py spark.py ray.py   batch scoring on Spark and Ray (their packages inside functions)
    triton_backend.py   the model Triton's python backend runs

No module here imports torch, onnx, h5py or anything of prep, learn or exporter
(tests/test_layout.py).
"""

from __future__ import annotations

from metaprep.runtime.inputs import INPUT_FORMATS, Text, chunked, read_texts
from metaprep.runtime.model import Model, RunStats
from metaprep.runtime.predict import embed_stream, predict_stream, stats_notes
from metaprep.runtime.probabilities import Probabilities
from metaprep.runtime.textpath import pad_batch, pad_flat

__all__ = [
    "INPUT_FORMATS",
    "Model",
    "Probabilities",
    "RunStats",
    "Text",
    "chunked",
    "embed_stream",
    "pad_batch",
    "pad_flat",
    "predict_stream",
    "read_texts",
    "stats_notes",
]
