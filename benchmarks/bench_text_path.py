"""Where `Model.predict_proba` spends its time: texts in, probabilities out.

    python benchmarks/bench_text_path.py MODEL_DIR DATA.tsv [--threads 2] [--batch-size 64]

Prints sentences/s end to end, then the share of the time spent inside onnxruntime's `run` and
outside it (tokenizing, vocabulary lookups, padding, gathering the results), measured in the same
passes by timing every `run` call. The texts are the first column of DATA.tsv (a header line
first), repeated to at least 15,000.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from metaprep.runtime import Model


def _texts(path: Path, n: int) -> list[str]:
    rows = [line.split("\t")[0] for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    return (rows * (n // max(1, len(rows)) + 1))[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("data", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--texts", type=int, default=15_000)
    ap.add_argument("--passes", type=int, default=5)
    args = ap.parse_args()
    model = Model(args.model, threads=args.threads, batch_size=args.batch_size)
    texts = _texts(args.data, args.texts)
    model.predict_proba(texts[:1000])  # warm up: sessions, caches
    session = model._session("model")
    inside = [0.0]
    real_run = session.run

    def timed_run(*a: object, **kw: object) -> object:
        start = time.perf_counter()
        try:
            return real_run(*a, **kw)
        finally:
            inside[0] += time.perf_counter() - start

    session.run = timed_run  # type: ignore[method-assign]
    walls, shares = [], []
    for _ in range(args.passes):
        inside[0] = 0.0
        start = time.perf_counter()
        probs = model.predict_proba(texts)
        wall = time.perf_counter() - start
        walls.append(wall)
        shares.append(inside[0] / wall)
    assert probs.shape[0] == len(texts) and np.isfinite(probs).all()
    wall = statistics.median(walls)
    share = statistics.median(shares)
    print(f"{args.model}: {len(texts):,} texts, {args.threads} threads, batch {args.batch_size}")
    print(f"end to end: {len(texts) / wall:,.0f} sentences/s (median of {args.passes} passes)")
    print(f"inside onnxruntime run: {100 * share:.1f}%   outside (text path): "
          f"{100 * (1 - share):.1f}%")


if __name__ == "__main__":
    main()
