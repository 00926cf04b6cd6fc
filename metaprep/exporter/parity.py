"""The export's checks: does the ONNX model compute what the torch model computes?

Framework-free on purpose: the checks take two callables that map a feed (``ids``, ``lengths``
[, ``ids_b``, ``lengths_b``] as numpy arrays) to named numpy outputs, one for the reference (torch)
and one for the candidate (onnxruntime), so the comparison itself has no torch in it. The gate
(``parity_gate``) runs the float32 graphs against torch on every feed and fails the export when
any output is beyond the tolerance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metaprep.errors import ExportError
from metaprep.runtime.modeldir import GRAPH_FILES
from metaprep.runtime.textpath import pad_batch

if TYPE_CHECKING:
    from metaprep.stages import ExportOptions

__all__ = [
    "Feed",
    "accuracy_change",
    "accuracy_feeds",
    "compare",
    "ensemble_runner",
    "gate_failures",
    "micro_f1",
    "ort_runner",
    "parity_feeds",
    "parity_gate",
    "torch_runner",
]

Feed = dict[str, np.ndarray]
Runner = Callable[[Feed], dict[str, np.ndarray]]
_REAL_BATCH_SIZES = (1, 7, 32, 64)  # cycled over the dev examples: batch 1 and padded batches


def _random_case(rng: np.random.Generator, num_ids: int, batch: int, width: int,
                 lengths: Sequence[int] | None, *, garbage_pad: bool) -> tuple[np.ndarray, ...]:
    lens = (np.asarray(lengths, dtype=np.int64) if lengths is not None
            else rng.integers(1, width + 1, size=batch))
    ids = rng.integers(1, num_ids, size=(batch, width), dtype=np.int64)
    if not garbage_pad:
        ids[np.arange(width)[None, :] >= lens[:, None]] = 0
    return ids, lens


def parity_feeds(
    examples: Sequence[tuple[Sequence[int], Sequence[int] | None]],
    *,
    num_ids: int,
    pair: bool,
    limit: int = 512,
    seed: int = 0,
) -> list[tuple[str, Feed]]:
    """Named feeds: real examples at several batch sizes, then random ids with awkward shapes
    (batch 1 x length 1, heavy padding, non-pad ids past the length, pad ids inside the length,
    a length of 0 and one longer than the batch)."""
    feeds: list[tuple[str, Feed]] = []
    real = list(examples[:limit])
    i = k = 0
    while i < len(real):
        size = _REAL_BATCH_SIZES[k % len(_REAL_BATCH_SIZES)]
        chunk, i, k = real[i : i + size], i + size, k + 1
        ids, lens = pad_batch([a for a, _ in chunk])
        feed: Feed = {"ids": ids, "lengths": lens}
        if pair:
            feed["ids_b"], feed["lengths_b"] = pad_batch([b or [] for _, b in chunk])
        feeds.append((f"dev batch {k} ({len(chunk)} x {ids.shape[1]})", feed))

    rng = np.random.default_rng(seed)
    heavy = [int(x) for x in rng.integers(1, 4, 16)]
    cases: list[tuple[str, int, int, Sequence[int] | None, bool]] = [
        ("random 1 x 1", 1, 1, None, False),
        ("random 1 x 20", 1, 20, [20], False),
        ("random 32 x 30", 32, 30, None, False),
        ("heavily padded 16 x 64 (lengths 1-3)", 16, 64, heavy, False),
        ("non-pad ids past the length 8 x 24", 8, 24, None, True),
        ("lengths 0 and over T, 5 x 6", 5, 6, [0, 6, 9, 1, 3], False),
    ]
    for name, batch, width, given, garbage in cases:
        ids, lengths = _random_case(rng, num_ids, batch, width, given, garbage_pad=garbage)
        feed = {"ids": ids, "lengths": lengths}
        if pair:
            feed["ids_b"], feed["lengths_b"] = _random_case(
                rng, num_ids, batch, max(1, width // 2), None, garbage_pad=garbage)
        feeds.append((name, feed))
    ids, lengths = _random_case(rng, num_ids, 6, 12, None, garbage_pad=False)
    ids[:, ::3] = 0  # padding ids inside the length: zero vectors, never an error
    feed = {"ids": ids, "lengths": lengths}
    if pair:
        feed["ids_b"], feed["lengths_b"] = ids.copy(), lengths.copy()
    feeds.append(("pad ids inside the length 6 x 12", feed))
    return feeds


def compare(reference: Runner, candidate: Runner, feeds: Sequence[tuple[str, Feed]],
            outputs: Sequence[str], *, rtol: float = 0.0) -> dict[str, Any]:
    """Max abs difference per output over all feeds, and which feed was worst; ``max_excess``
    is the largest ``|a - b| - rtol * |a|`` (``numpy.allclose`` passes where it is <= atol)."""
    worst: dict[str, float] = {name: 0.0 for name in outputs}
    excess: dict[str, float] = {name: -float("inf") for name in outputs}
    where: dict[str, str] = {name: "" for name in outputs}
    scale: dict[str, float] = {name: 0.0 for name in outputs}
    for case, feed in feeds:
        ref, got = reference(feed), candidate(feed)
        for name in outputs:
            a, b = np.asarray(ref[name], np.float64), np.asarray(got[name], np.float64)
            if a.shape != b.shape:
                raise ValueError(f"{case}: {name} has shape {b.shape}, expected {a.shape}")
            err = np.abs(a - b)
            diff = float(np.max(err, initial=0.0))
            over = float(np.max(err - rtol * np.abs(a), initial=-float("inf")))
            if not np.isfinite(diff):
                diff = over = float("inf")
            excess[name] = max(excess[name], over)
            scale[name] = max(scale[name], float(np.max(np.abs(a), initial=0.0)))
            if diff > worst[name] or not where[name]:
                worst[name], where[name] = max(worst[name], diff), case
    return {
        "cases": len(feeds),
        "max_abs_diff": worst,
        "max_excess": {k: (v if np.isfinite(v) or v > 0 else 0.0) for k, v in excess.items()},
        "rtol": rtol,
        "worst_case": where,
        "max_abs_value": scale,
        "case_names": [c for c, _ in feeds],
    }


def _predict(run: Runner, feeds: Sequence[Feed], thresholds: np.ndarray | None) -> np.ndarray:
    if thresholds is not None:  # multi-label: (N, C) label sets
        return np.concatenate([run(f)["probabilities"] >= thresholds[None, :] for f in feeds])
    return np.concatenate([np.argmax(run(f)["logits"], axis=1) for f in feeds])


def micro_f1(gold: np.ndarray, pred: np.ndarray) -> float:
    """F1 over every (example, label) decision of two (N, C) 0/1 matrices."""
    g, p = gold.astype(bool), pred.astype(bool)
    tp, wrong = int((g & p).sum()), int((g != p).sum())
    return 2 * tp / (2 * tp + wrong) if tp + wrong else 0.0


def accuracy_change(reference: Runner, candidate: Runner, feeds: Sequence[Feed],
                    gold: np.ndarray, *, thresholds: np.ndarray | None = None) -> dict[str, Any]:
    """Accuracy of both on labelled feeds (in order), the change, and how often they agree.
    Multi-label (``gold`` (N, C), ``thresholds`` (C,)): micro-F1 instead of accuracy, and
    agreement on the whole label set."""
    ref, got = _predict(reference, feeds, thresholds), _predict(candidate, feeds, thresholds)
    n = len(gold)
    if thresholds is not None:
        ref_acc, got_acc = micro_f1(gold, ref), micro_f1(gold, got)
        agree = float(np.mean(np.all(ref == got, axis=1))) if n else 1.0
    else:
        ref_acc, got_acc = float(np.mean(ref == gold)), float(np.mean(got == gold))
        agree = float(np.mean(ref == got))
    return {
        "examples": n,
        "torch_accuracy": round(ref_acc, 6),
        "onnx_accuracy": round(got_acc, 6),
        "change": round(got_acc - ref_acc, 6),
        "agreement": round(agree, 6),
    }


# --- runners for the checks: torch and onnxruntime behind the same callable ----------------------
def torch_runner(model: Any) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    import torch

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        t = {k: torch.from_numpy(v) for k, v in feed.items()}
        with torch.inference_mode():
            enc = model.encode(t["ids"], t["lengths"])
            out = {"sentence_embedding": enc.sentence.numpy(),
                   "token_embeddings": enc.meta.numpy()}
            if model.cfg.pair and "ids_b" not in t:  # one sentence of a pair: the front end
                return out
            second = (model.encode(t["ids_b"], t["lengths_b"]).sentence if "ids_b" in t
                      else None)  # a pair's first sentence is encoded once, above
            logits = model.head(enc.sentence, second)
            probs = logits.sigmoid() if model.cfg.task == "multilabel" else logits.softmax(-1)
            return {"logits": logits.numpy(), "probabilities": probs.numpy(), **out}

    return run


def ensemble_runner(runners: list[Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]]
                    ) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """An ensemble's outputs from its members' (as exporter/onnx_graph.py builds them): the mean
    of the probabilities, its log floored at the smallest normal float32, the embeddings side
    by side."""
    tiny = np.finfo(np.float32).tiny

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = [r(feed) for r in runners]
        joined = {"sentence_embedding": np.concatenate([o["sentence_embedding"] for o in outs], 1),
                  "token_embeddings": np.concatenate([o["token_embeddings"] for o in outs], 2)}
        if "probabilities" not in outs[0]:  # one sentence of a pair: the front end
            return joined
        probs = np.asarray(np.mean([o["probabilities"] for o in outs], axis=0,
                                   dtype=np.float32))
        logits: np.ndarray = np.log(np.maximum(probs, tiny))
        return {"logits": logits, "probabilities": probs, **joined}

    return run


def ort_runner(path: Path) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # no spinning: the torch reference runs between these calls and needs the cores
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ExportError(f"onnxruntime cannot load the exported graph: {exc}", path=path) from exc
    names = [i.name for i in sess.get_inputs()]
    outs = [o.name for o in sess.get_outputs()]

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(outs, sess.run(None, {k: feed[k] for k in names}), strict=True))

    return run


def accuracy_feeds(examples: Sequence[tuple[list[int], list[int] | None]], gold: np.ndarray,
                   pair: bool) -> tuple[list[Feed], np.ndarray]:
    """Length-sorted batches of 64 over labelled examples, and the gold labels in that order."""
    order = np.argsort([len(a) for a, _ in examples], kind="stable")
    feeds = []
    for start in range(0, len(order), 64):
        idx = order[start : start + 64]
        ids, lens = pad_batch([examples[i][0] for i in idx])
        feed = {"ids": ids, "lengths": lens}
        if pair:
            feed["ids_b"], feed["lengths_b"] = pad_batch([examples[i][1] or [] for i in idx])
        feeds.append(feed)
    return feeds, gold[order]


# --- the gate ------------------------------------------------------------------------------------
def gate_failures(parity: dict[str, Any], tol: float, graph: str) -> list[str]:
    """Failures: logits or probabilities where ``|onnx - torch| > tol + rtol * |torch|`` anywhere
    (numpy.allclose); embeddings beyond ``tol`` times their scale (>= 1)."""
    bad = []
    for out, diff in parity["max_abs_diff"].items():
        if out in ("logits", "probabilities"):
            ok = parity["max_excess"][out] <= tol
            limit = f"{tol:.3g} + {parity['rtol']:.3g} x |torch|"
        else:
            bound = tol * max(1.0, parity["max_abs_value"][out])
            ok, limit = diff <= bound, f"{bound:.3g}"
        if not ok:
            bad.append(f"{graph} {out}: max abs diff {diff:.3g} > {limit} "
                       f"(worst: {parity['worst_case'][out]})")
    return bad


def parity_gate(tmp: Path, reference: Any, feeds: list[Any], pair: bool,
                 opts: ExportOptions, log: Callable[[str], None]) -> dict[str, Any]:
    """The float32 graphs against torch on every feed; an ExportError (nothing written) when
    any output is beyond the tolerance."""
    outs = ["logits", "probabilities"] + ([] if pair else ["sentence_embedding"])
    parity = {"model": compare(reference, ort_runner(tmp / GRAPH_FILES["model"]), feeds, outs,
                               rtol=opts.rtol)}
    if opts.front_end:
        single = [(n, {k: v for k, v in f.items() if not k.endswith("_b")}) for n, f in feeds]
        parity["front_end"] = compare(reference, ort_runner(tmp / GRAPH_FILES["front_end"]),
                                      single, ["token_embeddings", "sentence_embedding"],
                                      rtol=opts.rtol)
    failures = [msg for g, p in parity.items() for msg in gate_failures(p, opts.tolerance, g)]
    for g, p in parity.items():
        figures = ", ".join(f"{k} {v:.2e}" for k, v in p["max_abs_diff"].items())
        log(f"parity {g} (float32, {p['cases']} batches): max abs diff {figures}")
    if failures:
        raise ExportError("parity gate failed: " + "; ".join(failures),
                          hint="nothing was written; please report this with the run")
    return parity
