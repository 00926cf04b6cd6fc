"""runtime/spark.py on a local Spark cluster of two executors, each its own JVM with one core
(``local-cluster[2,1,1024]``, from the pip pyspark): predictions equal Model's for every row, the
Model is loaded once per executor Python worker, a model sent with ship_model is found by every
executor, and an executor killed mid-job loses and duplicates no row.

Skips, saying why, where pyspark (with pandas and pyarrow) or a Java 17+ runtime is missing."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from enginekit import (
    engine_model,
    engine_texts,
    killing_the_stalled,
    spark_missing,
    spark_session,
    wait_for_executors,
)

from metaprep.runtime.model import Model

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(spark_missing() is not None, reason=str(spark_missing()))]

PARTITIONS = 4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return engine_model(tmp_path_factory.mktemp("spark-model"))


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    base = tmp_path_factory.mktemp("spark")
    keep = {k: os.environ.get(k) for k in ("SPARK_HOME", "SPARK_LOCAL_IP")}
    session = spark_session("local-cluster[2,1,1024]", base,
                            **{"spark.task.maxFailures": "4"})
    wait_for_executors(session, 2, timeout=240)
    yield session
    session.stop()
    for k, v in keep.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _frame(spark: Any, texts: list[str | None]) -> Any:
    rows = spark.sparkContext.parallelize(list(enumerate(texts)), PARTITIONS)  # no shuffle
    return spark.createDataFrame(rows, "id long, text string")


def _check_rows(rows: list[Any], texts: list[str | None], model: Model) -> None:
    """Every id once, and each row's outputs those of Model.predict on its text."""
    ids = [r.id for r in rows]
    assert len(ids) == len(texts) and sorted(ids) == list(range(len(texts)))
    by_id = {r.id: r for r in rows}
    kept = [i for i, t in enumerate(texts) if t is not None]
    want = model.predict([texts[i] for i in kept])
    for i, (label, probs) in zip(kept, want, strict=True):
        got = by_id[i].p
        assert got.label == label, i
        np.testing.assert_allclose(got.probabilities, [probs[k] for k in model.labels],
                                   rtol=1e-6, atol=1e-7)
        assert got.probability == pytest.approx(probs[label], rel=1e-6)
    for i in set(range(len(texts))) - set(kept):
        assert by_id[i].p.label is None and by_id[i].p.probability is None


def test_predictions_equal_model_predict(spark: Any, model_dir: Path) -> None:
    from metaprep.runtime.spark import predict_udf

    texts: list[str | None] = [*engine_texts(300), None]
    udf = predict_udf(model_dir, outputs=("label", "probability", "probabilities", "embedding"),
                      batch_size=32)
    rows = _frame(spark, texts).withColumn("p", udf("text")).collect()
    model = Model(model_dir, threads=1)
    _check_rows(rows, texts, model)
    by_id = {r.id: r.p.embedding for r in rows}
    np.testing.assert_allclose([by_id[i] for i in range(10)], model.embed(texts[:10]),  # type: ignore[arg-type]
                               rtol=1e-5, atol=1e-6)


def test_model_loaded_once_per_python_worker(spark: Any, model_dir: Path,
                                             tmp_path: Path) -> None:
    """The make_predict_fn that predict_udf gives predict_batch_udf, wrapped to log (in the
    executor) every Model constructed and every batch scored, with the worker's pid: over 4
    tasks of about 8 batches each on 2 executors, each worker builds one Model and reuses it."""
    from pyspark.ml.functions import predict_batch_udf

    from metaprep.runtime.spark import make_predict_fn, return_type

    log = str(tmp_path)
    inner = make_predict_fn(model_dir, outputs=("label",))

    def logged() -> Any:  # runs in the executor's Python worker; pickled by value
        import os
        import uuid

        from pyspark import TaskContext

        import metaprep.runtime.model as rt

        if not getattr(rt.Model, "_test_logged", False):
            original = rt.Model.__init__

            def init(self: Any, *a: Any, **k: Any) -> None:
                Path(log, f"load-{os.getpid()}-{uuid.uuid4().hex}").touch()
                original(self, *a, **k)

            rt.Model.__init__ = init  # type: ignore[method-assign]
            rt.Model._test_logged = True  # type: ignore[attr-defined]
        predict = inner()

        def predict_logged(texts: Any) -> Any:
            task = TaskContext.get().partitionId()  # type: ignore[union-attr]
            Path(log, f"call-{os.getpid()}-{task}-{uuid.uuid4().hex}").touch()
            return predict(texts)

        return predict_logged

    udf = predict_batch_udf(logged, return_type=return_type(("label",)), batch_size=10)
    texts = engine_texts(300)
    rows = _frame(spark, texts).withColumn("p", udf("text")).collect()
    assert sorted(r.id for r in rows) == list(range(len(texts)))
    loads = Counter(p.name.split("-")[1] for p in tmp_path.glob("load-*"))
    calls = [p.name.split("-") for p in tmp_path.glob("call-*")]
    workers = {pid for _, pid, _, _ in calls}
    tasks = {task for _, _, task, _ in calls}
    assert len(tasks) == PARTITIONS
    assert 1 <= len(workers) <= 2 and set(loads) == workers  # two executors, one core each
    assert all(n == 1 for n in loads.values()), loads
    assert len(calls) >= len(texts) // 10  # every batch of 10 through the one loaded Model


def test_shipped_model_on_every_executor(spark: Any, model_dir: Path) -> None:
    from metaprep.runtime.spark import predict_udf, ship_model

    shipped = ship_model(spark, model_dir)
    assert shipped.archive.startswith("model-") and shipped.archive.endswith(".zip")
    texts: list[str | None] = list(engine_texts(40))
    udf = predict_udf(shipped, outputs=("label", "probability", "probabilities"))
    rows = _frame(spark, texts).withColumn("p", udf("text")).collect()
    _check_rows(rows, texts, Model(model_dir, threads=1))


def test_executor_killed_mid_job_loses_and_duplicates_no_row(spark: Any, model_dir: Path,
                                                             tmp_path: Path) -> None:
    """After scoring, one task stops in a pass-through step, writes its executor's pid and
    waits; the test kills that executor (SIGKILL, the JVM and its Python workers with it).
    Spark runs the task again elsewhere and starts a new executor: the result has every id
    once, each scored as Model scores it."""
    from metaprep.runtime.spark import predict_udf

    marks = str(tmp_path)

    def pass_through(batches: Any) -> Any:
        import os
        import time
        from pathlib import Path as P

        from pyspark import TaskContext

        def jvm_above(pid: int) -> int:  # worker -> pyspark daemon -> executor JVM
            while True:
                stat = P(f"/proc/{pid}/stat").read_text()
                if stat[stat.index("(") + 1: stat.rindex(")")] == "java":
                    return pid
                pid = int(stat[stat.rindex(")") + 2:].split()[1])

        ctx = TaskContext.get()
        yield from batches
        if ctx.partitionId() == 3 and not P(marks, "killed").exists():  # type: ignore[union-attr]
            jvm = jvm_above(os.getpid())
            P(marks, f"stalled-{jvm}").touch()
            end = time.monotonic() + 120
            while time.monotonic() < end:  # until killed (or its JVM is gone)
                time.sleep(0.2)
                try:
                    os.kill(jvm, 0)
                except ProcessLookupError:
                    return

    texts: list[str | None] = [*engine_texts(300), None]
    udf = predict_udf(model_dir, outputs=("label", "probability", "probabilities"),
                      batch_size=16)
    frame = _frame(spark, texts).withColumn("p", udf("text"))
    scored = frame.mapInPandas(pass_through, frame.schema)
    with killing_the_stalled(tmp_path) as killed:
        rows = scored.collect()
    assert killed, "the stalled task never wrote its marker"
    assert not Path(f"/proc/{killed[0]}/cmdline").exists()  # that executor is gone
    _check_rows(rows, texts, Model(model_dir, threads=1))
