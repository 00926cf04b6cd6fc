"""Where `Model.predict` spends its time: texts in, labels out, stage by stage.

    python benchmarks/bench_text_path.py MODEL_DIR DATA.tsv [--threads 2] [--batch-size 64]
        [--fasttext FASTTEXT.bin]

Prints sentences/s end to end for `predict_proba` (arrays) and `predict` (labels and per-row
dicts), then where the time of `predict` goes, measured in the same passes by timing each stage's
calls: tokenize and vocabulary lookup (one stage when the compiled tokenizer does both), padding,
onnxruntime's `run`, the rest of `predict_proba` (length ordering, gathering the rows) and the
post-process (argmax, labels, dicts). The texts are the first column of DATA.tsv (a header line
first), repeated to at least 15,000. The same script runs against an older checkout (set
PYTHONPATH): stages that checkout does not have are simply not timed. With ``--fasttext``, the
same texts also go through fastText's ``predict`` (k=1) in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import metaprep.serve.runtime as runtime
from metaprep.runtime import Model


def _texts(path: Path, n: int) -> list[str]:
    rows = [line.split("\t")[0] for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    return (rows * (n // max(1, len(rows)) + 1))[:n]


def _timed(owner: Any, name: str, stage: str, spent: dict[str, float]) -> None:
    """Replace ``owner.name`` by a wrapper that adds its wall time to ``spent[stage]``."""
    real: Callable[..., Any] | None = getattr(owner, name, None)
    if real is None:
        return

    def wrapper(*a: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            return real(*a, **kw)
        finally:
            spent[stage] += time.perf_counter() - start

    setattr(owner, name, wrapper)


def _fasttext_rate(path: Path, texts: list[str], passes: int) -> float:
    import fasttext  # only for the comparison

    ft = fasttext.load_model(str(path))
    ft.predict(texts[:1000], k=1)
    walls = []
    for _ in range(passes):
        start = time.perf_counter()
        labels, _ = ft.predict(texts, k=1)
        walls.append(time.perf_counter() - start)
    assert len(labels) == len(texts)
    return len(texts) / statistics.median(walls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("data", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--texts", type=int, default=15_000)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--fasttext", type=Path, help="a fastText .bin to compare with")
    ap.add_argument("--spin", action="store_true",
                    help="let onnxruntime's threads spin between batches (Model(spin=True))")
    args = ap.parse_args()
    extra = {"spin": True} if args.spin else {}  # an older checkout has no spin keyword
    model = Model(args.model, threads=args.threads, batch_size=args.batch_size, **extra)
    texts = _texts(args.data, args.texts)
    model.predict(texts[:1000])  # warm up: sessions, caches

    proba_walls = []
    for _ in range(args.passes):
        start = time.perf_counter()
        probs = model.predict_proba(texts)
        proba_walls.append(time.perf_counter() - start)
    assert probs.shape[0] == len(texts) and np.isfinite(probs).all()

    spent: dict[str, float] = defaultdict(float)
    _timed(model, "_tokens", "tokenize", spent)  # the regex path (either checkout)
    _timed(model.vocab, "encode_array", "lookup", spent)
    _timed(model, "_fast_ids", "tokenize+lookup (compiled)", spent)
    _timed(runtime, "pad_flat", "pad", spent)
    _timed(model._session("model"), "run", "onnxruntime run", spent)
    _timed(model, "predict_proba", "predict_proba", spent)
    walls, stages = [], []
    for _ in range(args.passes):
        spent.clear()
        start = time.perf_counter()
        out = model.predict(texts)
        walls.append(time.perf_counter() - start)
        stages.append(dict(spent))
    assert len(out) == len(texts)

    wall = statistics.median(walls)
    print(f"{args.model}: {len(texts):,} texts, {args.threads} threads, batch {args.batch_size}"
          + (", spinning threads" if args.spin else ""))
    print(f"predict_proba: {len(texts) / statistics.median(proba_walls):,.0f} sentences/s; "
          f"predict: {len(texts) / wall:,.0f} sentences/s (medians of {args.passes} passes)")
    inner = ("tokenize", "lookup", "tokenize+lookup (compiled)", "pad", "onnxruntime run")
    rows = []
    for s in stages:
        w = walls[stages.index(s)]
        shares = {k: s.get(k, 0.0) / w for k in inner if k in s}
        rest = s["predict_proba"] - sum(s.get(k, 0.0) for k in inner)
        shares["rest of predict_proba"] = rest / w
        shares["post-process (labels, dicts)"] = (w - s["predict_proba"]) / w
        rows.append(shares)
    for key in rows[0]:
        print(f"  {key:30s} {100 * statistics.median(r[key] for r in rows):5.1f}%")
    inside = statistics.median(r["onnxruntime run"] for r in rows)
    print(f"predict: inside onnxruntime run {100 * inside:.1f}%, outside {100 * (1 - inside):.1f}%")
    if args.fasttext:
        rate = _fasttext_rate(args.fasttext, texts, args.passes)
        print(f"fastText predict (k=1, same texts): {rate:,.0f} sentences/s")


if __name__ == "__main__":
    main()
