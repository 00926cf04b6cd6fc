"""Score a Spark DataFrame with a model directory: a ``predict_batch_udf`` (docs/engines.md).

    from metaprep.runtime.spark import predict_udf
    score = predict_udf("/shared/models/topics", outputs=("label", "probability"))
    df.withColumn("p", score("text")).select("id", "p.label", "p.probability")

The UDF gives a struct with the outputs asked for (runtime/engines.py: label, probability,
probabilities, embedding). A sentence-pair model takes two columns: ``score("a", "b")``.

Where the model is loaded: in each executor's Python worker, once. ``predict_batch_udf`` calls
its ``make_predict_fn`` in a task and caches what it returns for the life of the Python worker
(pyspark.ml.model_cache, with ``spark.python.worker.reuse``, on by default), so every later task
and batch of that worker reuses the loaded Model; a worker idle for a minute is ended by Spark
and the next one loads again. The driver never loads the model.

Threads: a task is given ``spark.task.cpus`` cores (default 1), and that is how many batches its
Model runs at once (``threads`` overrides it). An executor with 4 cores thus runs 4 tasks, each
in its own Python worker with its own Model; to hold one copy of a large model per executor
instead, set ``spark.task.cpus`` to ``spark.executor.cores``.

Where the model directory comes from, for every executor:
* a path on storage every executor mounts (NFS, a shared disk): ``predict_udf("/mnt/m/topics")``;
* or ``ship_model(spark, "topics/")``: the directory zipped on the driver and sent with
  ``SparkContext.addArchive``; each executor unpacks it once, before its first task
  (``addFile`` refuses a local directory outside local mode, hence the archive).

Imports numpy and metaprep.runtime.model (through runtime/engines.py); pyspark only inside the
functions, so importing this module needs no Spark.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metaprep.errors import ModelError
from metaprep.runtime.engines import check_model, check_outputs, score
from metaprep.runtime.model import Model

__all__ = ["ShippedModel", "make_predict_fn", "predict_udf", "return_type", "ship_model"]

# rows per call of the model: predict_batch_udf cuts each Arrow batch (10,000 rows by default)
# into calls of this many; the Model sorts a call's texts by length, so a large call pads less
BATCH_SIZE = 4096


@dataclass(frozen=True)
class ShippedModel:
    """A model directory sent to the executors by ``ship_model``: an archive that Spark unpacks
    into each executor's SparkFiles directory."""

    archive: str  # the archive's file name: what SparkFiles.get finds the unpacked copy by

    def local_path(self) -> str:
        """Where this process sees the model directory (call it inside a task)."""
        from pyspark import SparkFiles

        return SparkFiles.get(self.archive)


def ship_model(spark: Any, model_dir: str | os.PathLike[str]) -> ShippedModel:
    """Zip ``model_dir`` (stored, not compressed: the tables do not shrink) into a temporary
    directory and add it to the Spark application with ``addArchive``. The archive's name
    carries a digest of the files' names, sizes and times, so two models, or a model exported
    again, never share one; it is removed when the driver exits."""
    src = Path(model_dir)
    if not src.is_dir():
        raise ModelError("not a model directory", path=src, hint="give the directory that "
                         "metaprep export-onnx wrote")
    files = sorted(p for p in src.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for p in files:
        st = p.stat()
        digest.update(f"{p.relative_to(src).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n"
                      .encode())
    name = f"{src.resolve().name}-{digest.hexdigest()[:12]}.zip"
    tmp = Path(tempfile.mkdtemp(prefix="metaprep-ship-"))  # our own: nothing else is in it
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    with zipfile.ZipFile(tmp / name, "w", compression=zipfile.ZIP_STORED) as zf:
        for p in files:
            zf.write(p, p.relative_to(src).as_posix())
    spark.sparkContext.addArchive(str(tmp / name))
    return ShippedModel(name)


def return_type(outputs: Sequence[str] = ("label", "probability")) -> Any:
    """The UDF's Spark type: a struct of the outputs, in the order asked for."""
    from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

    kinds = {"label": StringType(), "probability": FloatType(),
             "probabilities": ArrayType(FloatType()), "embedding": ArrayType(FloatType())}
    return StructType([StructField(o, kinds[o], True) for o in check_outputs(outputs)])


def make_predict_fn(model: str | os.PathLike[str] | ShippedModel, *,
                    outputs: Sequence[str] = ("label", "probability"),
                    threads: int | None = None, verify: str = "fast"
                    ) -> Callable[[], Callable[..., dict[str, np.ndarray]]]:
    """The ``make_predict_fn`` that predict_udf gives ``predict_batch_udf``: run in a task, it
    loads the Model and returns the function Spark calls on each batch (one text column, or two
    for a pair model)."""
    wanted = check_outputs(outputs)
    where = model if isinstance(model, ShippedModel) else os.fspath(model)
    if threads is not None and threads < 1:
        raise ValueError("threads must be at least 1")

    def load() -> Callable[..., dict[str, np.ndarray]]:
        path = where.local_path() if isinstance(where, ShippedModel) else where
        loaded = Model(path, threads=threads or _task_cpus(), verify=verify)
        check_model(loaded, wanted)
        if loaded.pair:
            def predict_pair(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
                return score(loaded, [a, b], wanted)
            return predict_pair

        def predict(texts: np.ndarray) -> dict[str, np.ndarray]:
            return score(loaded, [texts], wanted)
        return predict

    return load


def predict_udf(model: str | os.PathLike[str] | ShippedModel, *,
                outputs: Sequence[str] = ("label", "probability"), batch_size: int = BATCH_SIZE,
                threads: int | None = None, verify: str = "fast") -> Any:
    """A ``pyspark.ml.functions.predict_batch_udf`` scoring text columns with ``model`` (a
    path every executor can read, or what ``ship_model`` gave). ``batch_size``: rows per call
    of the model; ``threads``: batches a Model runs at once (default: the task's CPUs);
    ``verify``: as ``Model`` (checked once per Python worker)."""
    from pyspark.ml.functions import predict_batch_udf

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    return predict_batch_udf(
        make_predict_fn(model, outputs=outputs, threads=threads, verify=verify),
        return_type=return_type(outputs), batch_size=batch_size)


def _task_cpus() -> int:
    """The cores Spark gave the running task (``spark.task.cpus``), 1 outside a task."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    return max(1, ctx.cpus()) if ctx is not None else 1
