"""Batch scoring throughput: one process against Spark and Ray, the same texts and model, one run.

    python benchmarks/bench_engines.py [--texts 200000] [--model DIR] [--engines one,spark,ray]

1. the texts: the Debian task's package descriptions (``benchmarks/data/real/debian.*.tsv``,
   ``benchmarks/realdata.py``) repeated up to ``--texts``, or synthetic sentences where that
   data is missing;
2. the model: ``--model DIR``, or one with the ``fast`` preset's serving graph (sum of sources,
   mean pooling, a learned source of 64 dims over 200,000 bigram buckets) and random weights
   over the test kit's small store (tests/exportkit.py): most words are then unknown, which
   costs the text path the same lookups;
3. prints texts/s for each engine, with the machine's cores and load average:
   * ``one``: ``Model(threads=<cores>).predict_proba`` on all texts in one call;
   * ``spark``: ``metaprep.runtime.spark.predict_udf`` on ``local-cluster[2,1,1024]`` (2 executors
     of 1 core, each its own JVM), the DataFrame cached in 8 partitions, written to Spark's
     ``noop`` sink; the first pass (Python workers start, models load) and a second (warm);
   * ``ray``: ``metaprep.runtime.ray.predict_dataset`` with 2 actors of 1 CPU on ``ray.init
     (num_cpus=2)``, the Dataset materialized first; actors start and load within the time.

Everything listens on the loopback address only (tests/enginekit.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
REAL = ROOT / "benchmarks" / "data" / "real"


def load_texts(n: int, data: Path) -> tuple[list[str], str]:
    files = sorted(data.glob("debian.*.tsv"))
    if files:
        base = [line.split("\t")[0] for f in files
                for line in f.read_text(encoding="utf-8").splitlines()[1:]]
        what = f"Debian descriptions ({len(base):,} distinct, repeated)"
    else:
        from exportkit import sentences

        base, what = sentences(20_000, seed=3), "synthetic sentences (no benchmarks/data/real)"
    return (base * (n // len(base) + 1))[:n], what


def make_model(work: Path) -> Path:
    import torch
    from exportkit import make_run

    from metaprep.exporter.run import export_run
    from metaprep.stages import ExportOptions

    torch.set_num_threads(1)
    run = make_run(work / "src", method="sum", encoder="pool", proj_dim=64, mlp_hidden=256,
                   learned_dim=64, learned_buckets=200_000, source_norm="layernorm", dev=False)
    export_run(run, work / "model", options=ExportOptions(quiet=True), log=lambda _: None)
    return work / "model"


def one_process(model_dir: Path, texts: list[str]) -> float:
    from metaprep.runtime.model import Model

    model = Model(model_dir, threads=os.cpu_count())
    model.predict_proba(texts[:2000])  # warm-up
    start = time.perf_counter()
    model.predict_proba(texts)
    return time.perf_counter() - start


def on_spark(model_dir: Path, texts: list[str], work: Path, batch_size: int
             ) -> tuple[float, float]:
    from enginekit import spark_session, wait_for_executors

    from metaprep.runtime.spark import predict_udf

    spark = spark_session("local-cluster[2,1,1024]", work)
    try:
        wait_for_executors(spark, 2, timeout=300)
        df = spark.createDataFrame([(i, t) for i, t in enumerate(texts)],
                                   "id long, text string").repartition(8).cache()
        df.count()  # in the executors' memory before the clock starts
        score = predict_udf(model_dir, outputs=("label", "probability"), batch_size=batch_size)
        times = []
        for _ in range(2):  # cold (workers start, models load), then warm
            start = time.perf_counter()
            (df.withColumn("p", score("text")).select("id", "p.label", "p.probability")
             .write.format("noop").mode("overwrite").save())
            times.append(time.perf_counter() - start)
        return times[0], times[1]
    finally:
        spark.stop()


def on_ray(model_dir: Path, texts: list[str], batch_size: int) -> float:
    import ray
    import ray.data
    from enginekit import ray_init

    from metaprep.runtime.ray import predict_dataset

    ray_init(2)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)],
                                 override_num_blocks=8).materialize()
        start = time.perf_counter()
        predict_dataset(ds, model_dir, actors=2, batch_size=batch_size).materialize()
        return time.perf_counter() - start
    finally:
        ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--texts", type=int, default=200_000)
    ap.add_argument("--model", type=Path, help="a model directory (default: built, see above)")
    ap.add_argument("--data", type=Path, default=REAL)
    ap.add_argument("--engines", default="one,spark,ray")
    ap.add_argument("--batch-size", type=int, default=4096, help="rows per call of the model")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    engines = args.engines.split(",")
    texts, what = load_texts(args.texts, args.data)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    print(f"{dt.date.today()} commit {commit}; {os.cpu_count()} cores; "
          f"load average at start {os.getloadavg()[0]:.1f}")
    print(f"{len(texts):,} texts: {what}; {sum(map(len, texts)) / len(texts):.0f} characters "
          f"on average; batch size {args.batch_size}")
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        work = Path(tmp)
        model_dir = args.model or make_model(work)
        print(f"model: {model_dir if args.model else 'fast-preset graph, random weights'}")
        rows = []
        if "one" in engines:
            rows.append((f"one process, Model(threads={os.cpu_count()})",
                         one_process(model_dir, texts)))
        if "spark" in engines:
            cold, warm = on_spark(model_dir, texts, work, args.batch_size)
            rows += [("Spark, 2 executors x 1 core (first pass)", cold),
                     ("Spark, 2 executors x 1 core (second pass)", warm)]
        if "ray" in engines:
            rows.append(("Ray Data, 2 actors x 1 CPU", on_ray(model_dir, texts, args.batch_size)))
    print("\n| engine | seconds | texts/s |\n|---|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {len(texts) / seconds:,.0f} |")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
