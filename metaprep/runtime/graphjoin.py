"""A serve graph proven to be the join of the model directory's text graph and model graph.

``serve.onnx`` (textgraph.serve_graph) is the text graph's tokenizer and map, a few nodes that
cut the ids at ``max_tokens`` and count them (textgraph.JOIN_NODES), and the model graph, in
one graph. The runtime used to run it on a few probe texts against the two graphs; a forgery
that agreed on those texts was served. Here it is compared with the two graphs themselves:
every node and initializer of the model graph byte for byte, the text graph's two nodes byte
for byte but for their renamed tensors, the join's own nodes and constants value for value,
and the inputs, outputs, opsets and IR version, with nothing else in the graph. Python and numpy:
the runtime imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from metaprep.errors import ModelError
from metaprep.ids import UNK_ID
from metaprep.runtime.graphvalues import INT64, tensor_value
from metaprep.runtime.onnx_read import Graph, Node, Tensor
from metaprep.runtime.runcheck import one_line

__all__ = ["JOIN_DROPPED", "JOIN_KEPT", "JOIN_NODES", "JOIN_RENAMES", "check_join", "join_consts"]

# What textgraph.serve_graph adds between the two graphs, as plain data: it builds them from
# these, and check_join compares a serve graph with them.
JOIN_RENAMES = {"tokens": "text_tokens", "ids": "text_ids"}  # the text graph's own names
JOIN_KEPT = ("Tokenizer", "LabelEncoder")  # the missed-token output is not needed: UNK already
JOIN_DROPPED = ("flat", "missed_id")  # the text graph's constants for its missed tokens


def join_consts(max_tokens: int) -> list[tuple[str, list[int], list[int]]]:
    """(name, dims, int64 values) of the constants the join adds."""
    return [("text_cap", [], [max_tokens + 1]), ("text_limit_s", [], [max_tokens]),
            ("text_limit", [1], [max_tokens]), ("text_zero", [], [0]), ("text_zero1", [1], [0]),
            ("text_one", [1], [1]), ("text_two", [1], [2]), ("text_axis", [1], [1])]


# (op, inputs, outputs, attributes): a tensor attribute is ("tensor", name, dims, int64 values)
JOIN_NODES: list[tuple[str, list[str], list[str], dict[str, Any]]] = [
    # counts: every text's tokens (padding is id 0, no token is), at most max_tokens + 1
    ("Equal", ["text_ids", "text_zero"], ["text_pad"], {}),
    ("Not", ["text_pad"], ["text_real"], {}),
    ("Cast", ["text_real"], ["text_counted"], {"to": 7}),  # int64
    ("ReduceSum", ["text_counted", "text_axis"], ["text_all"], {"keepdims": 0}),
    ("Min", ["text_all", "text_cap"], ["counts"], {}),
    ("Min", ["counts", "text_limit_s"], ["lengths"], {}),
    # ids: a zero column appended (a batch of empty texts still has one), then the first
    # max(1, min(T, max_tokens)) columns
    ("Shape", ["text_ids"], ["text_shape"], {}),
    ("Slice", ["text_shape", "text_zero1", "text_one"], ["text_b"], {}),
    ("Concat", ["text_b", "text_one"], ["text_zshape"], {"axis": 0}),
    ("ConstantOfShape", ["text_zshape"], ["text_zcol"], {"value": ("tensor", "v", [1], [0])}),
    ("Concat", ["text_ids", "text_zcol"], ["text_padded"], {"axis": 1}),
    ("Slice", ["text_shape", "text_one", "text_two"], ["text_t"], {}),
    ("Min", ["text_t", "text_limit"], ["text_tmin"], {}),
    ("Max", ["text_tmin", "text_one"], ["text_width"], {}),
    ("Slice", ["text_padded", "text_zero1", "text_width", "text_one"], ["ids"], {}),
]


class _Differs(Exception):
    pass


def check_join(serve: Graph, text: Graph, model: Graph, max_tokens: int, path: Path,
               files: Mapping[str, str]) -> None:
    """A ModelError naming ``path`` unless ``serve`` is exactly the join of ``text`` and
    ``model`` at ``max_tokens``, as textgraph.serve_graph builds it (``files``: each graph's
    file name, for the message)."""
    try:
        _compare(serve, text, model, max_tokens)
    except _Differs as exc:  # it may quote the graph's own strings: one line, whatever they hold
        raise ModelError(f"{files['serve']} is not the join of {files['text']} and "
                         f"{files['model']}: {one_line(exc)}",
                         path=path, hint="refusing to load it; re-export the model directory"
                         ) from exc


def _compare(serve: Graph, text: Graph, model: Graph, max_tokens: int) -> None:
    if serve.opsets != text.opsets or model.opsets != {"": text.opsets.get("")}:
        raise _Differs("the opsets differ")
    if serve.ir_version != max(text.ir_version, model.ir_version):
        raise _Differs("the IR version differs")
    if serve.value_info or serve.functions or serve.training or serve.sparse:
        raise _Differs("it holds more than the two graphs")
    if not _same_raws([v.raw for v in serve.inputs], [v.raw for v in text.inputs]):
        raise _Differs("its input is not the text graph's")
    outs = serve.outputs
    n = len(model.outputs)
    if not _same_raws([v.raw for v in outs[:n]], [v.raw for v in model.outputs]) or \
            [(o.name, o.dtype, o.dims) for o in outs[n:]] != [
                ("ids", INT64, ("batch", "tokens")), ("counts", INT64, ("batch",))]:
        raise _Differs("its outputs are not the model's, ids and counts")
    first = [k for k in text.nodes if k.op in JOIN_KEPT]
    defaults = [a.value for k in first for a in k.attrs.values() if a.name == "default_int64"]
    if [k.op for k in first] != list(JOIN_KEPT) or defaults != [UNK_ID]:
        raise _Differs("the text graph's map does not answer every token itself")
    nodes = serve.nodes
    if len(nodes) != len(first) + len(JOIN_NODES) + len(model.nodes):
        raise _Differs("it has other nodes")
    for k, (got, want) in enumerate(zip(nodes, first, strict=False)):
        if (got.op, got.domain, got.inputs, got.outputs) != (
                want.op, want.domain, _renamed(want.inputs), _renamed(want.outputs)) or \
                sorted(got.attrs) != sorted(want.attrs) or \
                not _same_raws([got.attrs[a].raw for a in sorted(got.attrs)],
                               [want.attrs[a].raw for a in sorted(got.attrs)]):
            raise _Differs(f"node {k} is not the text graph's {want.op}")
    at = len(first)
    for k, (op, ins, outs_, attrs) in enumerate(JOIN_NODES):
        if not _same_node(nodes[at + k], op, ins, outs_, attrs):
            raise _Differs(f"node {at + k} is not the join's {op}")
    at += len(JOIN_NODES)
    for k, want in enumerate(model.nodes):
        if not _same_raws([nodes[at + k].raw], [want.raw]):
            raise _Differs(f"node {at + k} is not the model graph's {want.op}")
    inits = serve.initializers
    consts = join_consts(max_tokens)
    kept = [t for t in text.initializers if t.name not in JOIN_DROPPED]
    if len(inits) != len(consts) + len(kept) + len(model.initializers):
        raise _Differs("it has other initializers")
    for t, (name, dims, values) in zip(inits, consts, strict=False):
        if not _same_tensor(t, name, dims, values):
            raise _Differs(f"its constant {t.name} is not the join's {name}")
    for t, same in zip(inits[len(consts) :], [*kept, *model.initializers], strict=True):
        if not _same_raws([t.raw], [same.raw]):
            raise _Differs(f"its initializer {t.name} is not the graphs' {same.name}")


def _same_raws(got: list[memoryview], want: list[memoryview]) -> bool:
    """Byte-equal messages; numpy compares a 45 MB vocabulary map in 30 ms, where comparing
    the memoryviews took 0.35 s."""
    return len(got) == len(want) and all(
        len(a) == len(b) and np.array_equal(np.frombuffer(a, np.uint8), np.frombuffer(b, np.uint8))
        for a, b in zip(got, want, strict=True))


def _renamed(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(JOIN_RENAMES.get(x, x) for x in names)


def _same_node(node: Node, op: str, ins: list[str], outs: list[str],
               attrs: dict[str, Any]) -> bool:
    if (node.op, node.domain, list(node.inputs), list(node.outputs)) != (op, "", ins, outs) or \
            set(node.attrs) != set(attrs):
        return False
    for name, want in attrs.items():
        got = node.attrs[name].value
        if isinstance(want, tuple):  # ("tensor", name, dims, int64 values)
            if not isinstance(got, Tensor) or not _same_tensor(got, *want[1:]):
                return False
        elif got != want:
            return False
    return True


def _same_tensor(t: Tensor, name: str, dims: list[int], values: list[int]) -> bool:
    value = tensor_value(t) if t.external is None else None
    return (t.name, t.dtype, list(t.dims)) == (name, INT64, dims) and value is not None and \
        value.reshape(-1).tolist() == values
