"""Build the ONNX graphs of a meta-embedding classifier from plain numpy weights.

The graph is written op by op with ``onnx.helper`` (no torch exporter): that keeps padding out of
every computation explicitly (the ONNX ``LSTM`` op's ``sequence_lens``, masked max and mean, zero
steps around the cnn's windows), keeps big tables in memory-mappable external data, and works for
any batch size and length.
``serve.bake`` turns a torch model into a :class:`GraphSpec`; this module knows ONNX only
(``serve.onnx_data`` writes the external data file the graphs share).

Graph inputs: ``ids`` (B,T) int64 and ``lengths`` (B,) int64 (pairs add ``ids_b``, ``lengths_b``).
A length is clamped to [1, T], as the torch model does. Outputs of the classifier graph:
``logits`` and ``probabilities`` (B,C), plus ``sentence_embedding`` (B,E) for single sentences;
of the front-end graph: ``token_embeddings`` (B,T,D) and ``sentence_embedding`` (B,E).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from metaprep.exporter.onnx_data import ExternalData
from metaprep.ids import BIGRAM_MULT

__all__ = [
    "OPSET",
    "FrontSpec",
    "GraphSpec",
    "LSTMSpec",
    "build_graph",
]

OPSET = 17
_MASKED = -1e9  # same masked score as the torch model: softmax gives exactly 0, never NaN


@dataclass
class LSTMSpec:
    """One bidirectional LSTM layer in ONNX layout (gates i, o, f, c; forward then reverse)."""

    W: np.ndarray  # (2, 4h, in)
    R: np.ndarray  # (2, 4h, h)
    B: np.ndarray  # (2, 8h): input bias then recurrent bias

    @property
    def hidden(self) -> int:
        return int(self.R.shape[2])


@dataclass
class FrontSpec:
    """ids -> meta-embeddings. Either ``folded`` (one (N,D) table: the whole front end per id) or
    the per-source pieces, with everything that depends on the word alone precomputed."""

    method: str  # dme | cdme | concat | sum | single
    dim: int  # D
    folded: np.ndarray | None = None  # (N, D); row 0 (padding) must be all zeros
    tables: list[np.ndarray] = field(default_factory=list)  # (N, D) projected (raw for concat)
    use: np.ndarray | None = None  # (N, S) float32: 1 where source k counts for the word
    known: np.ndarray | None = None  # (N,) bool: some source has the word (else the UNK vector)
    unk: np.ndarray | None = None  # (D,)
    gating: str = "softmax"
    scorer_w: np.ndarray | None = None  # (D or 2h, 1)
    scorer_b: np.ndarray | None = None  # (1,)
    context: LSTMSpec | None = None  # cdme
    relu: bool = False
    score_offsets: np.ndarray | None = None  # (N, S): word features' score offset per source
    # the learned source's word bigrams (learn/learned.py), added after the front end
    pair_table: np.ndarray | None = None  # (buckets, d), or (buckets, D) already mapped
    pair_map: np.ndarray | None = None  # (d, D) into meta space; None: the last d columns


@dataclass
class GraphSpec:
    front: FrontSpec
    encoder: str  # bilstm | pool | cnn
    encoder_lstm: LSTMSpec | None
    hidden_w: np.ndarray  # (F, H) (transposed torch weight: x @ W)
    hidden_b: np.ndarray
    out_w: np.ndarray  # (H, C)
    out_b: np.ndarray
    pair: bool = False
    table_dtype: str = "float32"  # float32 | float16 (cast to float32 after the gather)
    multilabel: bool = False  # probabilities: a sigmoid per label instead of a softmax
    # cnn: per width, the Conv kernel (C, D, w) and bias (C,)
    encoder_convs: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)


class _Builder:
    """Accumulates nodes and initializers; tables go to the external data file."""

    def __init__(self, data: ExternalData, *, table_dtype: str) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.data = data
        self.table_dtype = np.dtype(table_dtype)
        self._n = 0
        self._consts: dict[tuple[Any, ...], str] = {}
        self._names: set[str] = set()
        self.prefix = ""  # of the weights' names: an ensemble's members each have their own

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def rename(self, src: str, dst: str) -> None:
        self.nodes.append(helper.make_node("Identity", [src], [dst]))

    def init(self, name: str, array: np.ndarray, *, external: bool = False) -> str:
        """Add an initializer once: a second sentence (pairs) reuses the first one's."""
        name = self.prefix + name
        if name in self._names:
            return name
        self._names.add(name)
        if external:
            self.inits.append(self.data.tensor(name, array))
        else:
            self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def const(self, values: Any, dtype: Any = np.int64) -> str:
        arr = np.asarray(values, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:  # shared by every member
            prefix, self.prefix = self.prefix, ""
            self._consts[key] = self.init(self.fresh("const"), arr)
            self.prefix = prefix
        return self._consts[key]

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, n_out: int = 1,
           **attrs: Any) -> Any:
        outs = [self.fresh(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def table(self, name: str, array: np.ndarray) -> str:
        if self.prefix + name in self._names:
            return self.prefix + name
        return self.init(name, array.astype(self.table_dtype, copy=False), external=True)

    def gather_table(self, table: str, ids: str, hint: str) -> str:
        g = self.op("Gather", [table, ids], hint)
        return g if self.table_dtype == np.float32 else self.op("Cast", [g], hint, to=1)


# --- pieces ----------------------------------------------------------------------------------
def _lengths(b: _Builder, ids: str, lengths: str) -> tuple[str, str, str]:
    """-> clamped lengths (B,), step mask (B,T) bool, and T as a (1,) tensor."""
    t1 = b.op("Shape", [ids], "T", start=1, end=2)  # (1,)
    clamped = b.op("Min", [b.op("Max", [lengths, b.const([1])]), t1], "len")
    steps = b.op("Range", [b.const(0), b.op("Squeeze", [t1, b.const([0])]), b.const(1)], "steps")
    mask = b.op("Less", [b.op("Unsqueeze", [steps, b.const([0])]),
                         b.op("Unsqueeze", [clamped, b.const([1])])], "stepmask")
    return clamped, mask, t1


def _lstm_op(b: _Builder, x_btd: str, lengths: str, spec: LSTMSpec, name: str) -> str:
    """(N,T,d) -> the ONNX LSTM's own output (T,2,N,h), zeros after each length; padding is
    never read."""
    w = b.init(f"{name}.W", spec.W.astype(np.float32))
    r = b.init(f"{name}.R", spec.R.astype(np.float32))
    bias = b.init(f"{name}.B", spec.B.astype(np.float32))
    x = b.op("Transpose", [x_btd], perm=[1, 0, 2])  # (T,N,d)
    seq = b.op("Cast", [lengths], "seq_lens", to=TensorProto.INT32)
    return b.op("LSTM", [x, w, r, bias, seq], "lstm", hidden_size=spec.hidden,
                direction="bidirectional")  # (T,2,N,h)


def _lstm(b: _Builder, x_btd: str, lengths: str, spec: LSTMSpec, name: str) -> str:
    """(N,T,d) -> (N,T,2h), zeros after each length."""
    y = b.op("Transpose", [_lstm_op(b, x_btd, lengths, spec, name)], perm=[2, 0, 1, 3])
    return b.op("Reshape", [y, b.const([0, 0, -1])], "lstm_out")  # (N,T,2h)


def _lstm_max(b: _Builder, x_btd: str, lengths: str, stepmask: str, spec: LSTMSpec,
              name: str) -> str:
    """(N,T,d) -> (N,2h): the max over each sentence's steps of the BiLSTM outputs. The max is
    taken in the LSTM's own (T,2,N,h) layout, with -inf added at the padded steps: no
    transpose or select of the whole output (0.7 ms instead of 1.4 ms at 32 x 30, hidden 512)."""
    y = _lstm_op(b, x_btd, lengths, spec, name)  # (T,2,N,h)
    steps = b.op("Unsqueeze", [b.op("Transpose", [stepmask], perm=[1, 0]), b.const([1, 3])])
    pad = b.op("Where", [steps, b.const(0.0, np.float32), b.const(-np.inf, np.float32)],
               "pad")  # (T,1,N,1): 0 in the sentence, -inf after it
    m = b.op("ReduceMax", [b.op("Add", [y, pad])], "lstm_max", axes=[0], keepdims=0)  # (2,N,h)
    m = b.op("Transpose", [m], perm=[1, 0, 2])  # (N,2,h): forward then reverse, as torch
    return b.op("Reshape", [m, b.const([0, -1])], "sentence")


def _conv_max(b: _Builder, meta: str, clamped: str, convs: list[tuple[np.ndarray, np.ndarray]]
              ) -> str:
    """(B,T,D) -> (B,K*C): the torch model's wide Conv1d (w-1 zero steps each side), ReLU, and
    the max over the n+w-1 windows touching the text (meta is already 0 at padded steps).

    Written as one MatMul rather than Conv ops: every tap j of every width is a (D,C) map, all
    applied at once, P_j = meta @ W_j; window t of width w is then sum_j P_j[t + j - (w-1)], each
    P_j shifted by padding the time axis. MLAS's GEMM runs this several times faster than
    onnxruntime's Conv over [batch, channels, time]."""
    taps = [w_arr[:, :, j].T for w_arr, _ in convs for j in range(w_arr.shape[2])]  # (D,C) each
    all_w = b.init("encoder.conv_taps", np.concatenate(taps, axis=1).astype(np.float32))
    sizes = [int(t.shape[1]) for t in taps]
    p = b.op("MatMul", [meta, all_w], "conv_taps")  # (B,T,C*sum(w))
    parts = b.op("Split", [p, b.const(sizes)], "tap", n_out=len(sizes), axis=2)
    parts = parts if isinstance(parts, list) else [parts]
    lens = b.op("Unsqueeze", [clamped, b.const([1])], "len_b1")  # (B,1)
    out, at = [], 0
    for k, (w_arr, bias) in enumerate(convs):
        width = int(w_arr.shape[2])
        shifted = [b.op("Pad", [parts[at + j], b.const([0, width - 1 - j, 0, 0, j, 0])],
                        "tap_shifted") for j in range(width)]  # (B,T+w-1,C)
        at += width
        y = shifted[0] if width == 1 else b.op("Sum", shifted, "conv")
        bb = b.init(f"encoder.conv_{k}.b", bias.astype(np.float32))
        y = b.op("Relu", [b.op("Add", [y, bb])], "conv_relu")  # (B,T+w-1,C)
        n = b.op("Squeeze", [b.op("Shape", [y], start=1, end=2), b.const([0])])
        steps = b.op("Unsqueeze", [b.op("Range", [b.const(0), n, b.const(1)]), b.const([0])])
        windows = b.op("Less", [steps, b.op("Add", [lens, b.const([[width - 1]])])],
                       "windows")  # (B,T+w-1)
        y = b.op("Where", [b.op("Unsqueeze", [windows, b.const([2])]), y,
                           b.const(-np.inf, np.float32)])
        out.append(b.op("ReduceMax", [y], "conv_max", axes=[1], keepdims=0))  # (B,C)
    return out[0] if len(out) == 1 else b.op("Concat", out, "sentence", axis=1)


def _front(b: _Builder, f: FrontSpec, ids: str, lengths: str, stepmask: str, t1: str) -> str:
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
        if f.score_offsets is not None:
            off = b.init("front.score_offsets", f.score_offsets.astype(np.float32),
                         external=True)
            scores = b.op("Add", [scores, b.op("Gather", [off, ids])], "scores")  # (B,T,S)
        if f.gating == "sigmoid":
            w = b.op("Mul", [b.op("Sigmoid", [scores]), use], "weights")
        else:
            used = b.op("Greater", [use, b.const(0.0, np.float32)])
            masked = b.op("Where", [used, scores, b.const(_MASKED, np.float32)])
            w = b.op("Mul", [b.op("Softmax", [masked], axis=-1), use], "weights")  # (B,T,S)
        mixed = b.op("Mul", [stacked, b.op("Unsqueeze", [w, b.const([3])])])
        meta = b.op("ReduceSum", [mixed, b.const([2])], "meta", keepdims=0)  # (B,T,D)
    meta = b.op("Where", [b.op("Unsqueeze", [known, b.const([2])]), meta, unk], "meta")
    if f.relu:
        meta = b.op("Relu", [meta], "meta")
    return b.op("Mul", [meta, validf], "meta")


def _pairs(b: _Builder, f: FrontSpec, ids: str, stepmask: str) -> str:
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


def _context_scores(b: _Builder, f: FrontSpec, stacked: str, lengths: str, t1: str, sw: str,
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
    ctx = _lstm(b, seqs, rep, f.context, "front.context")  # (B*S,T,2h)
    s = b.op("Add", [b.op("MatMul", [ctx, sw]), sb])  # (B*S,T,1)
    s = b.op("Reshape", [s, b.op("Gather", [bts, b.const([0, 2, 1])])])  # (B,S,T)
    return b.op("Transpose", [s], "scores", perm=[0, 2, 1])  # (B,T,S)


def _meta(b: _Builder, f: FrontSpec, ids: str, lengths: str) -> tuple[str, str, str]:
    """-> meta-embeddings (B,T,D) with the bigram vectors added, clamped lengths, step mask."""
    clamped, stepmask, t1 = _lengths(b, ids, lengths)
    meta = _front(b, f, ids, clamped, stepmask, t1)
    if f.pair_table is not None:
        meta = b.op("Add", [meta, _pairs(b, f, ids, stepmask)], "meta")
    return meta, clamped, stepmask


def _encode(b: _Builder, spec: GraphSpec, ids: str, lengths: str) -> tuple[str, str]:
    """-> (meta (B,T,D), sentence (B,E)) for one input sentence."""
    meta, clamped, stepmask = _meta(b, spec.front, ids, lengths)
    if spec.encoder == "bilstm":
        assert spec.encoder_lstm is not None
        sent = _lstm_max(b, meta, clamped, stepmask, spec.encoder_lstm, "encoder.lstm")
    elif spec.encoder == "cnn":
        sent = _conv_max(b, meta, clamped, spec.encoder_convs)
    else:
        sent = b.op("Concat", list(_pool(b, meta, stepmask, clamped)), "sentence", axis=1)
    return meta, sent


def _pool(b: _Builder, meta: str, stepmask: str, clamped: str) -> tuple[str, str]:
    """Max and mean over each text's steps (meta is 0 at pads): (B,D) each. The max reads meta
    plus a (B,T,1) term, log(1) = 0 at steps and log(0) = -inf at pads: that broadcast Add
    costs less than the Where over (B,T,D) it replaced, which had been the costliest node of
    the graph (profiled on fortunes, one padded batch: 4.8 ms -> 4.1 ms a run). A Sum of the
    bigram vectors and this term in one node was no faster than two Adds."""
    step3 = b.op("Unsqueeze", [b.op("Cast", [stepmask], to=1), b.const([2])], "step3")
    pad = b.op("Log", [step3], "pad_bias")  # (B,T,1)
    mx = b.op("ReduceMax", [b.op("Add", [meta, pad])], "max", axes=[1], keepdims=0)
    total = b.op("ReduceSum", [meta, b.const([1])], "sum", keepdims=0)
    count = b.op("Unsqueeze", [b.op("Cast", [clamped], to=1), b.const([1])], "count")
    return mx, b.op("Div", [total, count], "mean")


def _classify(b: _Builder, spec: GraphSpec, u: str, pair_inputs: bool) -> tuple[str, str]:
    """Sentence (B,E) -> (logits before the bias (B,C), the bias), through the pair features
    for sentence pairs."""
    feats = u
    if pair_inputs:
        _, v = _encode(b, spec, "ids_b", "lengths_b")
        diff = b.op("Abs", [b.op("Sub", [u, v])])
        feats = b.op("Concat", [u, v, diff, b.op("Mul", [u, v])], "features", axis=1)
    hw = b.init("classifier.hidden.w", spec.hidden_w.astype(np.float32))
    hb = b.init("classifier.hidden.b", spec.hidden_b.astype(np.float32))
    ow = b.init("classifier.out.w", spec.out_w.astype(np.float32))
    ob = b.init("classifier.out.b", spec.out_b.astype(np.float32))
    h = b.op("Relu", [b.op("Add", [b.op("MatMul", [feats, hw]), hb])], "hidden")
    return b.op("MatMul", [h, ow], "logits_mm"), ob


def build_graph(spec: GraphSpec | list[GraphSpec], data: ExternalData, *,
                front_end: bool = False) -> onnx.ModelProto:
    """The classifier graph (or, with ``front_end``, the ids -> embeddings graph); tables are
    written to ``data`` as they are met (once, whichever graph meets them first).

    A list of specs is an ensemble (learn/ensemble.py): each member's weights under its own
    prefix; ``probabilities`` the mean of the members' softmaxes, ``logits`` its log (floored at
    the smallest normal float32, so a probability that underflows gives no -inf), and the
    embeddings the members' side by side."""
    specs = [spec] if isinstance(spec, GraphSpec) else list(spec)
    first = specs[0]
    b = _Builder(data, table_dtype=first.table_dtype)
    i64, f32 = TensorProto.INT64, TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("ids", i64, ["batch", "tokens"]),
              helper.make_tensor_value_info("lengths", i64, ["batch"])]
    if first.pair and not front_end:
        inputs += [helper.make_tensor_value_info("ids_b", i64, ["batch", "tokens_b"]),
                   helper.make_tensor_value_info("lengths_b", i64, ["batch"])]
    if _fusable(specs):
        return _finish(b, inputs, _fused(b, specs, front_end))
    metas, sents, logits = [], [], []
    for k, member in enumerate(specs):
        b.prefix = f"member{k}." if len(specs) > 1 else ""
        meta, u = _encode(b, member, "ids", "lengths")
        metas.append(meta)
        sents.append(u)
        if not front_end:
            mm, ob = _classify(b, member, u, member.pair)
            logits.append((mm, ob))
    b.prefix = ""
    d = sum(s.front.dim for s in specs)
    e = sum(_sentence_dim(s) for s in specs)
    meta = metas[0] if len(specs) == 1 else b.op("Concat", metas, "meta", axis=2)
    u = sents[0] if len(specs) == 1 else b.op("Concat", sents, "sentence", axis=1)
    if front_end:
        b.rename(meta, "token_embeddings")
        b.rename(u, "sentence_embedding")
        outputs = [helper.make_tensor_value_info("token_embeddings", f32,
                                                 ["batch", "tokens", d]),
                   helper.make_tensor_value_info("sentence_embedding", f32, ["batch", e])]
    else:
        c = first.out_w.shape[1]
        if len(specs) == 1:
            mm, ob = logits[0]
            b.nodes.append(helper.make_node("Add", [mm, ob], ["logits"]))
            if first.multilabel:
                b.nodes.append(helper.make_node("Sigmoid", ["logits"], ["probabilities"]))
            else:
                b.nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"],
                                                axis=-1))
        else:
            probs = [b.op("Softmax", [b.op("Add", [mm, ob], "logits")], "probs", axis=-1)
                     for mm, ob in logits]
            b.nodes.append(helper.make_node("Mean", probs, ["probabilities"]))
            _mixture_logits(b)
        outputs = [helper.make_tensor_value_info("logits", f32, ["batch", c]),
                   helper.make_tensor_value_info("probabilities", f32, ["batch", c])]
        if not first.pair:
            b.rename(u, "sentence_embedding")
            outputs.append(helper.make_tensor_value_info("sentence_embedding", f32,
                                                         ["batch", e]))
    return _finish(b, inputs, outputs)


def _mixture_logits(b: _Builder) -> None:
    """An ensemble's ``logits``: the log of its ``probabilities``, floored at the smallest
    normal float32 so that a probability that underflows gives no -inf."""
    floor = b.const(np.finfo(np.float32).tiny, np.float32)
    b.nodes.append(helper.make_node("Log", [b.op("Max", ["probabilities", floor])], ["logits"]))


def _finish(b: _Builder, inputs: list[Any], outputs: list[Any]) -> onnx.ModelProto:
    graph = helper.make_graph(b.nodes, "metaprep", inputs, outputs, b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="metaprep")
    model.ir_version = 8  # readable by onnxruntime >= 1.14
    return model


def _fusable(specs: list[GraphSpec]) -> bool:
    """An ensemble of folded pool models of single sentences, bigram tables already mapped (the
    `accurate` preset): one table, one Gather and one pooling serve every member."""
    f = [s.front for s in specs]
    return (len(specs) > 1 and all(s.encoder == "pool" and not s.pair and not s.multilabel
                                   for s in specs)
            and all(x.folded is not None and x.pair_map is None and x.dim == f[0].dim
                    for x in f)
            and len({None if x.pair_table is None else x.pair_table.shape[0] for x in f}) == 1)


def _fused(b: _Builder, specs: list[GraphSpec], front_end: bool) -> list[Any]:
    """The members' folded tables side by side (N, K D), gathered and pooled once; then each
    member's classifier as one batched MatMul over a (K, B, 2D) stack. The same numbers as
    building each member apart, in a third of the nodes."""
    k, d = len(specs), specs[0].front.dim
    fronts = [s.front for s in specs]
    assert all(f.folded is not None for f in fronts)
    pair = None if fronts[0].pair_table is None else np.concatenate(
        [f.pair_table for f in fronts if f.pair_table is not None], axis=1)
    merged = FrontSpec(method=fronts[0].method, dim=k * d,
                       folded=np.concatenate([f.folded for f in fronts if f.folded is not None],
                                             axis=1), pair_table=pair)
    meta, clamped, stepmask = _meta(b, merged, "ids", "lengths")  # (B,T,KD)
    mx, mean = _pool(b, meta, stepmask, clamped)  # (B,KD) each
    shape = b.const([0, k, d])
    per = b.op("Concat", [b.op("Reshape", [mx, shape]), b.op("Reshape", [mean, shape])],
               "sentences", axis=2)  # (B,K,2D): member k's [max, mean]
    sentence = b.op("Reshape", [per, b.const([0, -1])], "sentence")  # (B, K 2D)
    f32 = TensorProto.FLOAT
    if front_end:
        b.rename(meta, "token_embeddings")
        b.rename(sentence, "sentence_embedding")
        return [helper.make_tensor_value_info("token_embeddings", f32, ["batch", "tokens", k * d]),
                helper.make_tensor_value_info("sentence_embedding", f32, ["batch", 2 * k * d])]
    hw = b.init("members.hidden.w", np.stack([s.hidden_w for s in specs]).astype(np.float32))
    hb = b.init("members.hidden.b", np.stack([s.hidden_b[None] for s in specs]).astype(
        np.float32))  # (K,1,H)
    ow = b.init("members.out.w", np.stack([s.out_w for s in specs]).astype(np.float32))
    ob = b.init("members.out.b", np.stack([s.out_b[None] for s in specs]).astype(np.float32))
    stack = b.op("Transpose", [per], "by_member", perm=[1, 0, 2])  # (K,B,2D)
    h = b.op("Relu", [b.op("Add", [b.op("MatMul", [stack, hw]), hb])], "hidden")
    probs = b.op("Softmax", [b.op("Add", [b.op("MatMul", [h, ow]), ob], "logits")], "probs",
                 axis=-1)  # (K,B,C)
    b.nodes.append(helper.make_node("ReduceMean", [probs], ["probabilities"], axes=[0],
                                    keepdims=0))
    _mixture_logits(b)
    b.rename(sentence, "sentence_embedding")
    c = specs[0].out_w.shape[1]
    return [helper.make_tensor_value_info("logits", f32, ["batch", c]),
            helper.make_tensor_value_info("probabilities", f32, ["batch", c]),
            helper.make_tensor_value_info("sentence_embedding", f32, ["batch", 2 * k * d])]


def _sentence_dim(spec: GraphSpec) -> int:
    if spec.encoder == "bilstm":
        assert spec.encoder_lstm is not None
        return 2 * spec.encoder_lstm.hidden
    if spec.encoder == "cnn":
        return sum(int(w.shape[0]) for w, _ in spec.encoder_convs)
    return 2 * spec.front.dim
