"""Writing an ONNX graph op by op with ``onnx.helper``: the ``Builder`` that accumulates nodes and
initializers (tables to the external data file), and the pieces the front end and the encoders
both use (lengths and step masks, the bidirectional LSTM).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from metaprep.exporter.graphspec import LSTMSpec
from metaprep.exporter.onnx_data import ExternalData

__all__ = ["OPSET", "Builder", "finish", "lengths_mask", "lstm", "lstm_op"]

OPSET = 17


class Builder:
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


def lengths_mask(b: Builder, ids: str, lengths: str) -> tuple[str, str, str]:
    """-> clamped lengths (B,), step mask (B,T) bool, and T as a (1,) tensor."""
    t1 = b.op("Shape", [ids], "T", start=1, end=2)  # (1,)
    clamped = b.op("Min", [b.op("Max", [lengths, b.const([1])]), t1], "len")
    steps = b.op("Range", [b.const(0), b.op("Squeeze", [t1, b.const([0])]), b.const(1)], "steps")
    mask = b.op("Less", [b.op("Unsqueeze", [steps, b.const([0])]),
                         b.op("Unsqueeze", [clamped, b.const([1])])], "stepmask")
    return clamped, mask, t1


def lstm_op(b: Builder, x_btd: str, lengths: str, spec: LSTMSpec, name: str) -> str:
    """(N,T,d) -> the ONNX LSTM's own output (T,2,N,h), zeros after each length; padding is
    never read."""
    w = b.init(f"{name}.W", spec.W.astype(np.float32))
    r = b.init(f"{name}.R", spec.R.astype(np.float32))
    bias = b.init(f"{name}.B", spec.B.astype(np.float32))
    x = b.op("Transpose", [x_btd], perm=[1, 0, 2])  # (T,N,d)
    seq = b.op("Cast", [lengths], "seq_lens", to=TensorProto.INT32)
    return b.op("LSTM", [x, w, r, bias, seq], "lstm", hidden_size=spec.hidden,
                direction="bidirectional")  # (T,2,N,h)


def lstm(b: Builder, x_btd: str, lengths: str, spec: LSTMSpec, name: str) -> str:
    """(N,T,d) -> (N,T,2h), zeros after each length."""
    y = b.op("Transpose", [lstm_op(b, x_btd, lengths, spec, name)], perm=[2, 0, 1, 3])
    return b.op("Reshape", [y, b.const([0, 0, -1])], "lstm_out")  # (N,T,2h)


def finish(b: Builder, inputs: list[Any], outputs: list[Any]) -> onnx.ModelProto:
    graph = helper.make_graph(b.nodes, "metaprep", inputs, outputs, b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="metaprep")
    model.ir_version = 8  # readable by onnxruntime >= 1.14
    return model
