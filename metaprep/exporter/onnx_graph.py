"""Build the ONNX graphs of a meta-embedding classifier from plain numpy weights.

The graph is written op by op with ``onnx.helper`` (no torch exporter): that keeps padding out of
every computation explicitly (the ONNX ``LSTM`` op's ``sequence_lens``, masked max and mean, zero
steps around the cnn's windows), keeps big tables in memory-mappable external data, and works for
any batch size and length.
``exporter.bake`` turns a torch model into a :class:`GraphSpec` (graphspec.py); this module
writes the encoders, the classifier and ensembles, with the front end (onnx_front.py) and the
op writer (onnx_builder.py); ``exporter.onnx_data`` writes the external data file the graphs
share.

Graph inputs: ``ids`` (B,T) int64 and ``lengths`` (B,) int64 (pairs add ``ids_b``, ``lengths_b``).
A length is clamped to [1, T], as the torch model does. Outputs of the classifier graph:
``logits`` and ``probabilities`` (B,C), plus ``sentence_embedding`` (B,E) for single sentences;
of the front-end graph: ``token_embeddings`` (B,T,D) and ``sentence_embedding`` (B,E).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from metaprep.exporter.graphspec import FrontSpec, GraphSpec, LSTMSpec
from metaprep.exporter.onnx_builder import Builder, finish, lstm_op
from metaprep.exporter.onnx_data import ExternalData
from metaprep.exporter.onnx_front import meta_embeddings

__all__ = ["build_graph"]


# --- encoders ------------------------------------------------------------------------------------
def _lstm_max(b: Builder, x_btd: str, lengths: str, stepmask: str, spec: LSTMSpec,
              name: str) -> str:
    """(N,T,d) -> (N,2h): the max over each sentence's steps of the BiLSTM outputs. The max is
    taken in the LSTM's own (T,2,N,h) layout, with -inf added at the padded steps: no
    transpose or select of the whole output (0.7 ms instead of 1.4 ms at 32 x 30, hidden 512)."""
    y = lstm_op(b, x_btd, lengths, spec, name)  # (T,2,N,h)
    steps = b.op("Unsqueeze", [b.op("Transpose", [stepmask], perm=[1, 0]), b.const([1, 3])])
    pad = b.op("Where", [steps, b.const(0.0, np.float32), b.const(-np.inf, np.float32)],
               "pad")  # (T,1,N,1): 0 in the sentence, -inf after it
    m = b.op("ReduceMax", [b.op("Add", [y, pad])], "lstm_max", axes=[0], keepdims=0)  # (2,N,h)
    m = b.op("Transpose", [m], perm=[1, 0, 2])  # (N,2,h): forward then reverse, as torch
    return b.op("Reshape", [m, b.const([0, -1])], "sentence")


def _conv_max(b: Builder, meta: str, clamped: str, convs: list[tuple[np.ndarray, np.ndarray]]
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


def _encode(b: Builder, spec: GraphSpec, ids: str, lengths: str) -> tuple[str, str]:
    """-> (meta (B,T,D), sentence (B,E)) for one input sentence."""
    meta, clamped, stepmask = meta_embeddings(b, spec.front, ids, lengths)
    if spec.encoder == "bilstm":
        assert spec.encoder_lstm is not None
        sent = _lstm_max(b, meta, clamped, stepmask, spec.encoder_lstm, "encoder.lstm")
    elif spec.encoder == "cnn":
        sent = _conv_max(b, meta, clamped, spec.encoder_convs)
    else:
        sent = b.op("Concat", list(_pool(b, meta, stepmask, clamped, spec.pool_combiner)),
                    "sentence", axis=1)
    return meta, sent


def _pool(b: Builder, meta: str, stepmask: str, clamped: str, combiner: str
          ) -> tuple[str, str]:
    """Max and mean (sqrtn: the sum over sqrt(n)) over each text's steps (meta is 0 at pads):
    (B,D) each. The max reads meta plus a (B,T,1) term, log(1) = 0 at steps and log(0) = -inf
    at pads: that broadcast Add costs less than the Where over (B,T,D) it replaced, which had
    been the costliest node of the graph (profiled on fortunes, one padded batch: 4.8 ms ->
    4.1 ms a run). A Sum of the bigram vectors and this term in one node was no faster than two
    Adds."""
    step3 = b.op("Unsqueeze", [b.op("Cast", [stepmask], to=1), b.const([2])], "step3")
    pad = b.op("Log", [step3], "pad_bias")  # (B,T,1)
    mx = b.op("ReduceMax", [b.op("Add", [meta, pad])], "max", axes=[1], keepdims=0)
    total = b.op("ReduceSum", [meta, b.const([1])], "sum", keepdims=0)
    count = b.op("Unsqueeze", [b.op("Cast", [clamped], to=1), b.const([1])], "count")
    if combiner == "sqrtn":
        count = b.op("Sqrt", [count], "sqrt_count")
    return mx, b.op("Div", [total, count], "mean")


def _classify(b: Builder, spec: GraphSpec, u: str, pair_inputs: bool) -> tuple[str, str]:
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
    b = Builder(data, table_dtype=first.table_dtype)
    i64, f32 = TensorProto.INT64, TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("ids", i64, ["batch", "tokens"]),
              helper.make_tensor_value_info("lengths", i64, ["batch"])]
    if first.pair and not front_end:
        inputs += [helper.make_tensor_value_info("ids_b", i64, ["batch", "tokens_b"]),
                   helper.make_tensor_value_info("lengths_b", i64, ["batch"])]
    if _fusable(specs):
        return finish(b, inputs, _fused(b, specs, front_end))
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
    return finish(b, inputs, outputs)


def _mixture_logits(b: Builder) -> None:
    """An ensemble's ``logits``: the log of its ``probabilities``, floored at the smallest
    normal float32 so that a probability that underflows gives no -inf."""
    floor = b.const(np.finfo(np.float32).tiny, np.float32)
    b.nodes.append(helper.make_node("Log", [b.op("Max", ["probabilities", floor])], ["logits"]))


def _fusable(specs: list[GraphSpec]) -> bool:
    """An ensemble of folded pool models of single sentences, bigram tables already mapped (the
    `accurate` preset): one table, one Gather and one pooling serve every member."""
    f = [s.front for s in specs]
    return (len(specs) > 1 and all(s.encoder == "pool" and not s.pair and not s.multilabel
                                   for s in specs)
            and all(x.folded is not None and x.pair_map is None and x.dim == f[0].dim
                    for x in f)
            and len({None if x.pair_table is None else x.pair_table.shape[0] for x in f}) == 1
            and len({s.pool_combiner for s in specs}) == 1)


def _fused(b: Builder, specs: list[GraphSpec], front_end: bool) -> list[Any]:
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
    meta, clamped, stepmask = meta_embeddings(b, merged, "ids", "lengths")  # (B,T,KD)
    mx, mean = _pool(b, meta, stepmask, clamped, specs[0].pool_combiner)  # (B,KD) each
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
