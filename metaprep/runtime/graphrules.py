"""The shape rules of ``graphcheck``: for each op the exporter writes, the shapes (and, for the
small integer tensors that shapes are made of, the values) of its outputs from its inputs',
on concrete sizes (``RULES``). A shape, range or padding that does not follow from shapes and
constants is ``Refused``. What a tensor is to the check, and the helpers, are in graphvalues.py.
Standard library and numpy only: the runtime imports it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from metaprep.runtime.graphvalues import (
    BOOL,
    FLOAT,
    INT32,
    INT64,
    SIZES,
    SMALL,
    STRING,
    UINT8,
    Refused,
    V,
    attribute,
    axis_index,
    broadcast,
    computed,
    from_data,
    known_ints,
    known_value,
    need,
    tensor_value,
)
from metaprep.runtime.onnx_read import Node, Tensor

__all__ = ["RULES", "TextOps"]


# --- shape rules ---------------------------------------------------------------------------------
def _elementwise(fn: Callable[..., Any] | None, dtype: int | None = None
                 ) -> Callable[[Node, list[V | None]], list[V]]:
    def rule(node: Node, ins: list[V | None]) -> list[V]:
        vals = [v for v in ins if v is not None]
        if not vals or len(vals) != len(ins):
            raise Refused("an input is missing")
        shape = broadcast(*(v.shape for v in vals))
        out = dtype if dtype is not None else (vals[1] if node.op == "Where" else vals[0]).dtype
        value = None if fn is None else computed(fn, vals, out, shape)
        return [V(shape, out, value, from_data(*vals))]
    return rule


def _same(dtype: int | None = None) -> Callable[[Node, list[V | None]], list[V]]:
    """A unary op: the input's shape (Cast: to ``to``)."""
    def rule(node: Node, ins: list[V | None]) -> list[V]:
        x = ins[0]
        if x is None:
            raise Refused("an input is missing")
        out = attribute(node, "to", x.dtype) if node.op == "Cast" else dtype or x.dtype
        if node.op == "Cast" and out not in SIZES:
            raise Refused(f"it casts to type {out}")
        value = computed(lambda a: a, [x], out, x.shape) if node.op in ("Cast", "Identity") \
            else computed(np.logical_not, [x], out, x.shape) if node.op == "Not" else None
        return [V(x.shape, out, value, x.data)]
    return rule


def _shape(node: Node, ins: list[V | None]) -> list[V]:
    x = need(ins, 0)
    rank = len(x.shape)
    start, end = attribute(node, "start", 0), attribute(node, "end", rank)
    dims = x.shape[slice(start, end)]
    return [V((len(dims),), INT64, np.array(dims, dtype=np.int64), x.data)]


def _gather(node: Node, ins: list[V | None]) -> list[V]:
    data, idx = need(ins, 0), need(ins, 1)
    axis = axis_index(attribute(node, "axis", 0), len(data.shape))
    shape = data.shape[:axis] + idx.shape + data.shape[axis + 1 :]
    value = computed(lambda d, i: np.take(d, i, axis=axis), [data, idx], data.dtype, shape)
    return [V(shape, data.dtype, value, from_data(data, idx))]


def _slice(node: Node, ins: list[V | None]) -> list[V]:
    data = need(ins, 0)
    starts, ends = known_ints(ins[1], "start"), known_ints(ins[2], "end")
    axes = known_ints(ins[3], "axes") if len(ins) > 3 and ins[3] is not None \
        else list(range(len(starts)))
    steps = known_ints(ins[4], "steps") if len(ins) > 4 and ins[4] is not None \
        else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps) or 0 in steps:
        raise Refused("its starts, ends, axes and steps do not agree")
    shape, index = list(data.shape), [slice(None)] * len(data.shape)
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        a = axis_index(a, len(shape))
        index[a] = slice(s, e, st)
        shape[a] = len(range(*index[a].indices(shape[a])))
    value = computed(lambda d: d[tuple(index)], [data], data.dtype, tuple(shape))
    return [V(tuple(shape), data.dtype, value, data.data)]


def _concat(node: Node, ins: list[V | None]) -> list[V]:
    vals = [need(ins, i) for i in range(len(ins))]
    rank = len(vals[0].shape)
    axis = axis_index(attribute(node, "axis", 0), rank)
    if any(len(v.shape) != rank or v.shape[:axis] + v.shape[axis + 1 :] != vals[0].shape[
            :axis] + vals[0].shape[axis + 1 :] for v in vals):
        raise Refused("its inputs' shapes do not concatenate")
    shape = vals[0].shape[:axis] + (sum(v.shape[axis] for v in vals),) + vals[0].shape[axis + 1 :]
    value = computed(lambda *a: np.concatenate(a, axis=axis), vals, vals[0].dtype, shape)
    return [V(shape, vals[0].dtype, value, from_data(*vals))]


def _squeeze(node: Node, ins: list[V | None]) -> list[V]:
    x = need(ins, 0)
    axes = {axis_index(a, len(x.shape)) for a in known_ints(ins[1], "axes")} if len(ins) > 1 and \
        ins[1] is not None else {i for i, d in enumerate(x.shape) if d == 1}
    if any(x.shape[a] != 1 for a in axes):
        raise Refused("it squeezes an axis that is not 1 long")
    shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return [V(shape, x.dtype, computed(lambda a: a, [x], x.dtype, shape), x.data)]


def _unsqueeze(node: Node, ins: list[V | None]) -> list[V]:
    x = need(ins, 0)
    rank = len(x.shape) + len(known_ints(ins[1], "axes"))
    axes = sorted(axis_index(a, rank) for a in known_ints(ins[1], "axes"))
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return [V(tuple(shape), x.dtype, computed(lambda a: a, [x], x.dtype, tuple(shape)), x.data)]


def _reshape(node: Node, ins: list[V | None]) -> list[V]:
    x, want = need(ins, 0), known_ints(ins[1], "shape")
    shape = [x.shape[i] if d == 0 and not attribute(node, "allowzero", 0) and i < len(x.shape)
             else d for i, d in enumerate(want)]
    if shape.count(-1) > 1 or any(d < -1 for d in shape):
        raise Refused(f"it reshapes to {want}")
    known = math.prod(d for d in shape if d != -1)
    if -1 in shape:
        if known == 0 or math.prod(x.shape) % known:
            raise Refused(f"it reshapes {list(x.shape)} to {want}")
        shape[shape.index(-1)] = math.prod(x.shape) // known
    if math.prod(shape) != math.prod(x.shape):
        raise Refused(f"it reshapes {list(x.shape)} to {want}")
    out = tuple(shape)
    return [V(out, x.dtype, computed(lambda a: a, [x], x.dtype, out), x.data)]


def _transpose(node: Node, ins: list[V | None]) -> list[V]:
    x = need(ins, 0)
    perm = list(attribute(node, "perm", range(len(x.shape) - 1, -1, -1)))
    if sorted(perm) != list(range(len(x.shape))):
        raise Refused(f"its perm {perm} does not fit rank {len(x.shape)}")
    return [V(tuple(x.shape[p] for p in perm), x.dtype, None, x.data)]


def _range(node: Node, ins: list[V | None]) -> list[V]:
    start, limit, delta = (known_value(need(ins, i), w) for i, w in enumerate(
        ("start", "limit", "delta")))
    if delta.item() == 0:
        raise Refused("its delta is 0")
    n = max(math.ceil((limit.item() - start.item()) / delta.item()), 0)
    value = np.arange(start.item(), limit.item(), delta.item()) if n <= SMALL else None
    return [V((n,), need(ins, 0).dtype, value, from_data(*ins))]


def _expand(node: Node, ins: list[V | None]) -> list[V]:
    x, shape = need(ins, 0), known_ints(ins[1], "shape")
    out = broadcast(x.shape, tuple(shape))
    return [V(out, x.dtype, computed(lambda a: np.broadcast_to(a, out), [x], x.dtype, out),
              from_data(*ins))]


def _constant_of_shape(node: Node, ins: list[V | None]) -> list[V]:
    shape = tuple(known_ints(ins[0], "shape"))
    if any(d < 0 for d in shape):
        raise Refused(f"its shape {list(shape)} is negative")
    fill: Tensor | None = attribute(node, "value", None)
    dtype = FLOAT if fill is None else fill.dtype
    known = None if fill is None else tensor_value(fill)
    value = None
    if known is not None and known.size == 1 and math.prod(shape) <= SMALL:
        value = np.full(shape, known.reshape(-1)[0])
    return [V(shape, dtype, value, from_data(*ins))]


def _pad(node: Node, ins: list[V | None]) -> list[V]:
    x, pads = need(ins, 0), known_ints(ins[1], "pads")
    axes = known_ints(ins[3], "axes") if len(ins) > 3 and ins[3] is not None \
        else list(range(len(x.shape)))
    if len(pads) != 2 * len(axes):
        raise Refused("its pads do not fit its axes")
    shape = list(x.shape)
    for k, a in enumerate(axes):
        a = axis_index(a, len(shape))
        shape[a] += pads[k] + pads[k + len(axes)]
        if shape[a] < 0:
            raise Refused("its pads cut more than the tensor holds")
    return [V(tuple(shape), x.dtype, None, from_data(*ins))]


def _split(node: Node, ins: list[V | None]) -> list[V]:
    x = need(ins, 0)
    if "split" in node.attrs:  # the sizes as an attribute: opsets before 13
        raise Refused("its split is an attribute, not the input the exporter writes")
    axis = axis_index(attribute(node, "axis", 0), len(x.shape))
    n = len(node.outputs)
    sizes = known_ints(ins[1], "split") if len(ins) > 1 and ins[1] is not None \
        else [-(-x.shape[axis] // n)] * (n - 1) + [x.shape[axis] - -(-x.shape[axis] // n) * (n - 1)]
    if len(sizes) != n or sum(sizes) != x.shape[axis] or min(sizes) < 0:
        raise Refused("its split does not fit the tensor")
    return [V(x.shape[:axis] + (s,) + x.shape[axis + 1 :], x.dtype, None, x.data)
            for s in sizes]


def _matmul(node: Node, ins: list[V | None]) -> list[V]:
    a, b = need(ins, 0), need(ins, 1)
    if not a.shape or not b.shape:
        raise Refused("it multiplies a scalar")
    sa, sb = a.shape if len(a.shape) > 1 else (1, *a.shape), b.shape if len(b.shape) > 1 \
        else (*b.shape, 1)
    if sa[-1] != sb[-2]:
        raise Refused(f"it multiplies {list(a.shape)} by {list(b.shape)}")
    shape = broadcast(sa[:-2], sb[:-2]) + (sa[-2], sb[-1])
    if len(a.shape) == 1:
        shape = shape[:-2] + shape[-1:]
    if len(b.shape) == 1:
        shape = shape[:-1]
    dtype = INT32 if node.op == "MatMulInteger" else a.dtype
    return [V(shape, dtype, None, from_data(*ins))]


def _reduce(node: Node, ins: list[V | None]) -> list[V]:
    x = need(ins, 0)
    axes = known_ints(ins[1], "axes") if len(ins) > 1 and ins[1] is not None \
        else list(attribute(node, "axes", ()))  # opset 17's ReduceMax
    if not axes and attribute(node, "noop_with_empty_axes", 0):
        return [V(x.shape, x.dtype, None, x.data)]
    picked = {axis_index(a, len(x.shape)) for a in axes} or set(range(len(x.shape)))
    keep = attribute(node, "keepdims", 1)
    shape = tuple(1 if i in picked else d for i, d in enumerate(x.shape) if keep or
                  i not in picked)
    value = None
    if node.op == "ReduceSum" and x.value is not None:
        value = computed(lambda a: a.sum(axis=tuple(sorted(picked)), keepdims=bool(keep)), [x],
                       x.dtype, shape)
    return [V(shape, x.dtype, value, x.data)]


def _lstm(node: Node, ins: list[V | None]) -> list[V]:
    x, w, r = need(ins, 0), need(ins, 1), need(ins, 2)
    hidden = attribute(node, "hidden_size", 0)
    dirs = 2 if attribute(node, "direction", b"forward") == b"bidirectional" else 1
    if len(x.shape) != 3 or attribute(node, "layout", 0) != 0:
        raise Refused("its input is not (steps, batch, features)")
    quantized = node.op == "DynamicQuantizeLSTM"
    want_w = (dirs, x.shape[2], 4 * hidden) if quantized else (dirs, 4 * hidden, x.shape[2])
    want_r = (dirs, hidden, 4 * hidden) if quantized else (dirs, 4 * hidden, hidden)
    if hidden < 1 or w.shape != want_w or r.shape != want_r:
        raise Refused(f"its weights {list(w.shape)}, {list(r.shape)} do not fit hidden_size "
                      f"{hidden}")
    steps, batch = x.shape[0], x.shape[1]
    return [V((steps, dirs, batch, hidden), FLOAT, None, True),
            V((dirs, batch, hidden), FLOAT, None, True),
            V((dirs, batch, hidden), FLOAT, None, True)][: len(node.outputs)]


def _quantize(node: Node, ins: list[V | None]) -> list[V]:
    x = need(ins, 0)
    return [V(x.shape, UINT8, None, x.data), V((), FLOAT, None, x.data),
            V((), UINT8, None, x.data)]


def _dequantize(node: Node, ins: list[V | None]) -> list[V]:
    x = need(ins, 0)
    return [V(x.shape, FLOAT, None, from_data(*ins))]


def _compress(node: Node, ins: list[V | None]) -> list[V]:
    x, cond = need(ins, 0), need(ins, 1)
    if "axis" in node.attrs:
        axis = axis_index(attribute(node, "axis", 0), len(x.shape))
        shape = x.shape[:axis] + (min(x.shape[axis], math.prod(cond.shape)),) + \
            x.shape[axis + 1 :]
    else:  # flattened: at most every element
        shape = (min(math.prod(x.shape), math.prod(cond.shape)),)
    return [V(shape, x.dtype, None, True)]


class TextOps:
    """The text graph's two contrib ops; ``chars``: the longest text the runtime gives it."""

    def __init__(self, chars: int) -> None:
        self.chars = chars

    def tokenizer(self, node: Node, ins: list[V | None]) -> list[V]:
        x = need(ins, 0)
        if x.dtype != STRING or len(x.shape) != 1:
            raise Refused("it does not read a batch of texts")
        if "separators" in node.attrs or not attribute(node, "tokenexp", b"") \
                or attribute(node, "mincharnum", 0) < 1:
            raise Refused("it is not a regex tokenizer of tokens of at least one character")
        # each token takes at least one character; the marks add two
        marks = 2 if attribute(node, "mark", 0) else 0
        return [V((x.shape[0], self.chars + marks), STRING, None, True)]

    @staticmethod
    def label_encoder(node: Node, ins: list[V | None]) -> list[V]:
        x = need(ins, 0)
        if set(node.attrs) != {"keys_strings", "values_int64s", "default_int64"} or \
                x.dtype != STRING:
            raise Refused("it is not a map of strings to int64 ids")
        return [V(x.shape, INT64, None, x.data)]


def _fold(fn: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    return lambda *a: functools.reduce(fn, a)


def _np_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.trunc(a / b) if np.issubdtype(np.result_type(a, b), np.integer) else a / b


RULES: dict[tuple[str, str], Callable[[Node, list[V | None]], list[V]]] = {
    ("", "Add"): _elementwise(np.add), ("", "Sub"): _elementwise(np.subtract),
    ("", "Mul"): _elementwise(np.multiply), ("", "Div"): _elementwise(_np_div),
    ("", "Mod"): _elementwise(np.mod), ("", "Min"): _elementwise(_fold(np.minimum)),
    ("", "Max"): _elementwise(_fold(np.maximum)), ("", "Sum"): _elementwise(None),
    ("", "Mean"): _elementwise(None), ("", "And"): _elementwise(np.logical_and, BOOL),
    ("", "Equal"): _elementwise(np.equal, BOOL), ("", "Less"): _elementwise(np.less, BOOL),
    ("", "Greater"): _elementwise(np.greater, BOOL), ("", "Where"): _elementwise(np.where),
    ("", "Abs"): _same(), ("", "Relu"): _same(), ("", "Sigmoid"): _same(), ("", "Log"): _same(),
    ("", "Sqrt"): _same(), ("", "Not"): _same(), ("", "Identity"): _same(),
    ("", "Softmax"): _same(), ("", "Cast"): _same(), ("", "Shape"): _shape, ("", "Gather"): _gather,
    ("", "Slice"): _slice, ("", "Concat"): _concat, ("", "Squeeze"): _squeeze,
    ("", "Unsqueeze"): _unsqueeze, ("", "Reshape"): _reshape, ("", "Transpose"): _transpose,
    ("", "Range"): _range, ("", "Expand"): _expand, ("", "ConstantOfShape"): _constant_of_shape,
    ("", "Pad"): _pad, ("", "Split"): _split, ("", "MatMul"): _matmul,
    ("", "MatMulInteger"): _matmul, ("", "ReduceMax"): _reduce, ("", "ReduceSum"): _reduce,
    ("", "ReduceMean"): _reduce, ("", "LSTM"): _lstm,
    ("com.microsoft", "DynamicQuantizeLSTM"): _lstm,
    ("", "DynamicQuantizeLinear"): _quantize, ("", "DequantizeLinear"): _dequantize,
    ("", "Compress"): _compress,
}


