"""Where `Model.predict` spends its time: texts in, labels out, stage by stage.

    python benchmarks/bench_text_path.py MODEL_DIR DATA.tsv [--threads 2] [--batch-size 64]
        [--fasttext FASTTEXT.bin]

Prints sentences/s end to end with ``--threads`` threads for `predict_proba` (arrays),
`predict` (labels and per-row probability views), `predict(top_k=1)`, `predict` with each
row's view copied to a dict and, for a model with a serve graph, `predict_proba` again with the
text graph and the model graph run one after the other, and for a model with a text graph with
the Python text path. Then, with one thread (so the stages add up to
the wall time), where the time of `predict` goes, by timing each stage's calls: the text graph's
onnxruntime run, or Python's tokenize, lookup and padding; the model's onnxruntime run; the rest
of `predict_proba` (length ordering, gathering rows) and the post-process (argmax, labels, dicts).
The texts are the first column of DATA.tsv (a header line first), repeated to at least 15,000.
With ``--fasttext``, the same texts also go through fastText's ``predict`` (k=1), raw (fastText
splits on spaces only), in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import metaprep.runtime.textpath as textpath
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


def _rate(fn: Callable[[], Any], n: int, passes: int) -> float:
    walls = []
    for _ in range(passes):
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
    return n / statistics.median(walls)


def _profile(model: Any, texts: list[str], passes: int) -> dict[str, float]:
    """Shares of ``predict``'s wall time per stage, one thread (the stages run one after the
    other, so their times add up to the wall time)."""
    spent: dict[str, float] = defaultdict(float)
    _timed(model.text_ids, "tokens", "tokenize (Python)", spent)
    _timed(model.vocab, "encode_array", "lookup (Python)", spent)
    _timed(textpath, "pad_flat", "pad", spent)
    if getattr(model, "_text", None) is not None:
        _timed(model._text, "run", "onnxruntime: text graph", spent)
    if getattr(model, "_serve", None) is not None:
        _timed(model._serve, "run", "onnxruntime: serve graph", spent)
    _timed(model._session("model"), "run", "onnxruntime: model", spent)
    _timed(model, "predict_proba", "predict_proba", spent)
    walls, stages = [], []
    for _ in range(passes):
        spent.clear()
        start = time.perf_counter()
        out = model.predict(texts)
        walls.append(time.perf_counter() - start)
        stages.append(dict(spent))
    assert len(out) == len(texts)
    inner = ("tokenize (Python)", "lookup (Python)", "pad", "onnxruntime: text graph",
             "onnxruntime: serve graph", "onnxruntime: model")
    rows = []
    for s, w in zip(stages, walls, strict=True):
        shares = {k: s[k] / w for k in inner if k in s}
        shares["rest of predict_proba"] = (s["predict_proba"] - sum(shares.values()) * w) / w
        shares["post-process (labels, dicts)"] = (w - s["predict_proba"]) / w
        rows.append(shares)
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


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
    texts = _texts(args.data, args.texts)
    n, passes = len(texts), args.passes
    model = Model(args.model, threads=args.threads, batch_size=args.batch_size, **extra)
    path = getattr(model, "text_path", "python")
    print(f"{args.model}: {n:,} texts, {args.threads} threads, batch {args.batch_size}, "
          f"texts -> ids in {path}" + (", spinning threads" if args.spin else ""))
    model.predict(texts[:1000])  # warm up: sessions, caches
    rates = {"predict_proba": _rate(lambda: model.predict_proba(texts), n, passes),
             "predict": _rate(lambda: model.predict(texts), n, passes),
             "predict(top_k=1)": _rate(lambda: model.predict(texts, top_k=1), n, passes),
             # what a caller pays who copies every row's probabilities into a dict of its own
             "predict, each row then dict(p)": _rate(
                 lambda: [dict(p) for _, p in model.predict(texts)], n, passes)}
    if getattr(model, "_serve", None) is not None:  # the text graph, then the model graph
        model._serve = None
        rates["predict_proba, text + model graphs"] = _rate(lambda: model.predict_proba(texts),
                                                            n, passes)
    if path != "python":  # the same model with the Python text path, in the same run
        model._text = None
        rates["predict_proba, Python text path"] = _rate(lambda: model.predict_proba(texts), n,
                                                         passes)
    if args.fasttext:
        rates["fastText predict (k=1)"] = _fasttext_rate(args.fasttext, texts, passes)
    for key, rate in rates.items():
        print(f"  {key:40s} {rate:10,.0f} sentences/s (median of {passes} passes)")

    for label, keep in (("serve graph", "serve"), ("text graph + model graph", "text"),
                        ("Python text path", "python")):
        one = Model(args.model, threads=1, batch_size=args.batch_size, **extra)
        if keep == "serve" and getattr(one, "_serve", None) is None:
            continue
        if keep != "serve":
            one._serve = None
        if keep == "python":
            one._text = None
        elif getattr(one, "_text", None) is None:
            continue
        one.predict(texts[:1000])
        shares = _profile(one, texts, passes)
        print(f"where predict's time goes, one thread, {label}:")
        for key, share in shares.items():
            print(f"  {key:40s} {100 * share:5.1f}%")
        inside = sum(v for k, v in shares.items() if k.startswith("onnxruntime"))
        print(f"  inside onnxruntime {100 * inside:.1f}%, outside {100 * (1 - inside):.1f}%")


if __name__ == "__main__":
    main()
