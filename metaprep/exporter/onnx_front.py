"""The front end in ONNX: ids -> meta-embeddings (B,T,D), padding kept out explicitly.

A folded front end is one table gathered per id. Otherwise each source's projected table is
gathered and the sources are mixed per token (dme: a score per source; cdme: scores from a
BiLSTM over each source's sentence), the learned source's word bigrams added after. Every step
past a text's length, and every padding id, gives zeros.
"""

from __future__ import annotations

import numpy as np

from metaprep.exporter.graphspec import FrontSpec
from metaprep.exporter.onnx_builder import Builder, lengths_mask, lstm
from metaprep.ids import BIGRAM_MULT

__all__ = ["meta_embeddings"]

_MASKED = -1e9  # same masked score as the torch model: softmax gives exactly 0, never NaN


def _front(b: Builder, f: FrontSpec, ids: str, lengths: str, stepmask: str, t1: str) -> str:
    if f.folded is not None:
        # Row 0 of the folded table is the padding row, exactly zero: sending every id past the
        # length there zeroes the padding without touching the (B,T,D) result again.
        folded = b.table("front.folded", f.folded)
        safe = b.op("Where", [stepmask, ids, b.const(0)], "ids_in_length")
        return b.gather_table(folded, safe, "meta")

    assert f.use is not None and f.known is not None and f.unk is not None
    use_tab = b.init("front.use", f.use.astype(np.float32), external=True)  # (N,S)
    known_tab = b.init("front.known", f.known.astype(bool), external=True)  # (N,)
    unk = b.init("front.unk", f.unk.astype(np.float32))
    tables = [b.table(f"front.table_{k}", t) for k, t in enumerate(f.tables)]
    valid = b.op("And", [stepmask, b.op("Not", [b.op("Equal", [ids, b.const(0)])])], "valid")
    validf = b.op("Unsqueeze", [b.op("Cast", [valid], to=1), b.const([2])], "validf")  # (B,T,1)
    use = b.op("Mul", [b.op("Gather", [use_tab, ids]), validf], "use")  # (B,T,S)
    known = b.op("And", [b.op("Gather", [known_tab, ids]), valid], "known")  # (B,T)
    emb = [b.gather_table(t, ids, f"e{k}") for k, t in enumerate(tables)]  # (B,T,d_k)

    def use_k(k: int) -> str:
        return b.op("Slice", [use, b.const([k]), b.const([k + 1]), b.const([2])], f"use{k}")

    if f.method in ("concat", "sum", "single"):
        parts = [b.op("Mul", [e, use_k(k)]) for k, e in enumerate(emb)]
        if f.method == "concat":
            meta = b.op("Concat", parts, "meta", axis=2) if len(parts) > 1 else parts[0]
        else:
            meta = parts[0] if len(parts) == 1 else b.op("Sum", parts, "meta")
    else:
        stacked = b.op("Concat", [b.op("Unsqueeze", [e, b.const([2])]) for e in emb],
                       "proj", axis=2)  # (B,T,S,D)
        assert f.scorer_w is not None and f.scorer_b is not None
        sw = b.init("front.scorer.w", f.scorer_w.astype(np.float32))
        sb = b.init("front.scorer.b", f.scorer_b.astype(np.float32))
        if f.method == "dme":
            scores = b.op("Add", [b.op("MatMul", [stacked, sw]), sb])  # (B,T,S,1)
            scores = b.op("Squeeze", [scores, b.const([3])], "scores")  # (B,T,S)
        else:
            assert f.context is not None
            scores = _context_scores(b, f, stacked, lengths, t1, sw, sb)
        if f.gating == "sigmoid":
            w = b.op("Mul", [b.op("Sigmoid", [scores]), use], "weights")
        else:
            used = b.op("Greater", [use, b.const(0.0, np.float32)])
            masked = b.op("Where", [used, scores, b.const(_MASKED, np.float32)])
            w = b.op("Mul", [b.op("Softmax", [masked], axis=-1), use], "weights")  # (B,T,S)
        mixed = b.op("Mul", [stacked, b.op("Unsqueeze", [w, b.const([3])])])
        meta = b.op("ReduceSum", [mixed, b.const([2])], "meta", keepdims=0)  # (B,T,D)
    meta = b.op("Where", [b.op("Unsqueeze", [known, b.const([2])]), meta, unk], "meta")
    return b.op("Mul", [meta, validf], "meta")


def _pairs(b: Builder, f: FrontSpec, ids: str, stepmask: str) -> str:
    """(B,T,D): the bigram (t, t+1) vector at step t, hashed from the two ids with integer ops
    as learn/learned.py does; 0 where either token is padding, and at the last step. Those
    steps read an all-zero row appended to the table: masking the (B,T) ids costs far less
    than masking and padding the (B,T,D) vectors."""
    assert f.pair_table is not None
    buckets, width = f.pair_table.shape
    table = b.table("front.pairs", np.concatenate(
        [f.pair_table, np.zeros((1, width), dtype=f.pair_table.dtype)]))
    valid = b.op("And", [stepmask, b.op("Not", [b.op("Equal", [ids, b.const(0)])])], "valid")
    first = b.op("Slice", [ids, b.const([0]), b.const([-1]), b.const([1])], "first")  # (B,T-1)
    second = b.op("Slice", [ids, b.const([1]), b.const([np.iinfo(np.int64).max]),
                            b.const([1])], "second")
    rows = b.op("Mod", [b.op("Add", [b.op("Mul", [first, b.const(BIGRAM_MULT)]), second]),
                        b.const(buckets)], "pair_rows")  # (B,T-1)
    rows = b.op("Pad", [rows, b.const([0, 0, 0, 1]), b.const(buckets)], "pair_rows")  # (B,T)
    nxt = b.op("Pad", [b.op("Slice", [valid, b.const([1]), b.const([np.iinfo(np.int64).max]),
                                      b.const([1])]), b.const([0, 0, 0, 1])], "next_valid")
    rows = b.op("Where", [b.op("And", [valid, nxt]), rows, b.const(buckets)], "pair_rows")
    vec = b.gather_table(table, rows, "pair_vec")  # (B,T,d)
    if f.pair_map is not None:
        return b.op("MatMul", [vec, b.init("front.pair_map", f.pair_map.astype(np.float32))],
                    "pairs")
    left = f.dim - width  # concat's raw rows: the learned source's columns are the last d
    return vec if not left else b.op("Pad", [vec, b.const([0, 0, left, 0, 0, 0])], "pairs")


def _context_scores(b: Builder, f: FrontSpec, stacked: str, lengths: str, t1: str, sw: str,
                    sb: str) -> str:
    """CDME: each source's projected sentence through the context BiLSTM -> scores (B,T,S)."""
    bts = b.op("Slice", [b.op("Shape", [stacked]), b.const([0]), b.const([3])], "bts")  # [B,T,S]
    seqs = b.op("Transpose", [stacked], perm=[0, 2, 1, 3])  # (B,S,T,D): row b*S + s below
    seqs = b.op("Reshape", [seqs, b.op("Concat", [b.const([-1]), t1, b.const([f.dim])], axis=0)],
                "seqs")  # (B*S,T,D)
    bs = b.op("Gather", [bts, b.const([0, 2])])  # [B,S]
    rep = b.op("Expand", [b.op("Unsqueeze", [lengths, b.const([1])]), bs])  # (B,S)
    rep = b.op("Reshape", [rep, b.const([-1])], "seq_lens")  # (B*S,)
    assert f.context is not None
    ctx = lstm(b, seqs, rep, f.context, "front.context")  # (B*S,T,2h)
    s = b.op("Add", [b.op("MatMul", [ctx, sw]), sb])  # (B*S,T,1)
    s = b.op("Reshape", [s, b.op("Gather", [bts, b.const([0, 2, 1])])])  # (B,S,T)
    return b.op("Transpose", [s], "scores", perm=[0, 2, 1])  # (B,T,S)


def meta_embeddings(b: Builder, f: FrontSpec, ids: str, lengths: str) -> tuple[str, str, str]:
    """-> meta-embeddings (B,T,D) with the bigram vectors added, clamped lengths, step mask."""
    clamped, stepmask, t1 = lengths_mask(b, ids, lengths)
    meta = _front(b, f, ids, clamped, stepmask, t1)
    if f.pair_table is not None:
        meta = b.op("Add", [meta, _pairs(b, f, ids, stepmask)], "meta")
    return meta, clamped, stepmask
