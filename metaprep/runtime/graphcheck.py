"""What a model directory's graph may allocate, bounded before onnxruntime sees it.

A graph from a stranger can ask onnxruntime for any amount of memory: a ``serve.onnx`` that
expanded a constant to batch x 2e7 floats took 6.4 GB and 30 s for 64 short lines. So every
graph is read here (``onnx_read``, no ``onnx`` package) and refused unless

- every node is an op the exporter writes (graphrules.RULES: the classifier, front-end, text
  and serve graphs, int8 and float16 variants), with no subgraph, function or sparse tensor;
- its inputs are exactly the runtime's feeds (``ids``/``lengths``, ``_b`` for pairs, or
  ``text``), and its outputs the ones the manifest lists;
- the shape of every tensor follows from the input shapes and the graph's constants: a shape,
  a range or a padding read from the data (or from nothing the reader can follow) is refused;
- worked out for the largest inputs the runtime feeds (``max_tokens`` tokens, texts of at most
  ``TEXT_CHARS`` characters), the tensors alive at once hold at most ``ROW_BYTES`` plus
  ``TOKEN_BYTES`` per token for each text of a batch, and grow with the batch no faster than
  it does (a batch of B texts: at most B times one text's); a tensor made of constants alone
  (onnxruntime folds those when the session is created) holds at most ``CONST_BYTES``, or four
  times the graph's largest initializer (int8 weights dequantized).
- every initializer holds exactly the bytes its shape needs, inside its data file;
- its outputs' shapes are the ones the manifest's task says (``check_output_shapes``).

The shapes are worked out by running every node's shape rule on concrete sizes (one text of 1
token, one of ``max_tokens``, two of ``max_tokens``), with the values of the small integer
tensors that shapes are made of; the tensors alive at once are summed in node order, each
freed after its last reader. The exported graphs of the tests use at most 8 KiB a token (an
ensemble of two BiLSTMs of 512 units); a single model at the largest proj_dim (16,384) or a
fused ensemble of 64 members of 256 uses 128 KiB. Export opens what it wrote with the runtime,
so a model beyond the bounds is refused there. A graph beyond them is a ``ModelError`` naming
the graph and the node. Standard library and numpy only: the runtime imports it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from metaprep.errors import ModelError
from metaprep.runtime.graphrules import RULES, TextOps
from metaprep.runtime.graphvalues import INT64, SIZES, STRING, Refused, V, tensor_value
from metaprep.runtime.manifest import TaskInfo
from metaprep.runtime.onnx_read import Graph, Tensor
from metaprep.runtime.runcheck import one_line

__all__ = ["CONST_BYTES", "ROW_BYTES", "TEXT_CHARS", "TOKEN_BYTES", "Bound", "check_graph",
           "check_output_shapes", "text_chars"]

# Per text of a batch: 8 MiB, plus 256 KiB per token (64k float32 values a token alive at
# once). The forged serve.onnx of issue 21 took 80 MB for a text of one token.
ROW_BYTES = 8 << 20
TOKEN_BYTES = 256 << 10
CONST_BYTES = 64 << 20
_MAX_RANK = 8  # the exporter's tensors have at most 4 dimensions
TEXT_CHARS = 32  # characters a token may take in a text a text graph reads (text_chars)


def text_chars(max_tokens: int) -> int:
    """The longest text (in characters) the runtime gives a text graph: a longer one is
    tokenized in Python, which stops after max_tokens + 1 tokens."""
    return TEXT_CHARS * (max_tokens + 1)


@dataclass(frozen=True)
class Bound:
    """What the check found: the most bytes alive at once for one text at the token limit."""

    row_bytes: int
    token_bytes: float


# --- the check -----------------------------------------------------------------------------------
_FEEDS = {"model": ("ids", "lengths"), "front_end": ("ids", "lengths"), "text": ("text",),
          "serve": ("text",)}
_FEED_TYPES = {"ids": (INT64, 2), "lengths": (INT64, 1), "ids_b": (INT64, 2),
               "lengths_b": (INT64, 1), "text": (STRING, 1)}


def check_graph(graph: Graph, *, kind: str, max_tokens: int, pair: bool = False,
                data_sizes: Mapping[str, int] | None = None, path: Path | str = "graph"
                ) -> tuple[Bound, dict[str, tuple[int, ...]]]:
    """The bound on what ``graph`` (a model directory's ``kind`` graph) allocates, and the shapes
    of its outputs for a batch of two texts of ``max_tokens`` tokens; a ModelError naming
    ``path`` (and the node) when the graph is refused. ``data_sizes``: the bytes of each
    external data file the graph may read."""
    try:
        return _check(graph, kind, max_tokens, pair, data_sizes or {})
    except Refused as exc:  # it may quote the graph's own strings: one line, whatever they hold
        raise ModelError(f"graph refused: {one_line(exc)}", path=path,
                         hint="refusing to load it; re-export the model directory") from exc


def _check(graph: Graph, kind: str, max_tokens: int, pair: bool,
           data_sizes: Mapping[str, int]) -> tuple[Bound, dict[str, tuple[int, ...]]]:
    if graph.functions or graph.training or graph.sparse:
        raise Refused("it holds functions, training information or sparse tensors, which "
                      "metaprep never writes")
    feeds = _FEEDS[kind] + (("ids_b", "lengths_b") if pair and kind == "model" else ())
    got = tuple(i.name for i in graph.inputs)
    if got != feeds:
        raise Refused(f"it reads {list(got)}, not {list(feeds)}")
    for i in graph.inputs:
        dtype, rank = _FEED_TYPES[i.name]
        if i.dtype != dtype or i.dims is None or len(i.dims) != rank or any(
                isinstance(d, int) for d in i.dims):
            raise Refused(f"its input {i.name} is not of the type and free shape the runtime "
                          "feeds")
    consts = {t.name: _initializer(t, data_sizes) for t in graph.initializers}
    if len(consts) != len(graph.initializers) or set(consts) & set(feeds):
        raise Refused("it names two initializers, or an input and an initializer, alike")
    own = max((v.bytes for v in consts.values()), default=0)
    chars = text_chars(max_tokens)
    one = _run(graph, consts, _inputs(feeds, 1, 1), TextOps(1))
    top = _run(graph, consts, _inputs(feeds, 1, max_tokens), TextOps(chars))
    two = _run(graph, consts, _inputs(feeds, 2, max_tokens), TextOps(chars))
    for name, v in two.tensors.items():  # a batch of two holds at most twice one text's
        if v.data and v.bytes > 2 * top.tensors[name].bytes:
            raise Refused(f"{name} grows faster than the batch ({list(top.tensors[name].shape)} "
                          f"for one text, {list(v.shape)} for two)")
    for run, tokens in ((one, 1), (top, max_tokens)):
        if run.peak > ROW_BYTES + TOKEN_BYTES * tokens:
            raise Refused(f"a text of {tokens} token(s) would take {run.peak:,} bytes at once "
                          f"(at {run.peak_at}), more than the runtime allows "
                          f"({ROW_BYTES + TOKEN_BYTES * tokens:,})")
        for name, v in run.tensors.items():
            if not v.data and v.bytes > max(CONST_BYTES, 4 * own):
                raise Refused(f"the constant {name} would take {v.bytes:,} bytes")
    outputs = {o.name: two.tensors[o.name].shape for o in graph.outputs
               if o.name in two.tensors and o.name not in consts}
    if len(outputs) != len(graph.outputs) or len(set(outputs)) != len(graph.outputs):
        raise Refused("an output is not computed by its nodes")
    return Bound(top.peak, (top.peak - one.peak) / max(1, max_tokens - 1)), outputs


def _initializer(t: Tensor, data_sizes: Mapping[str, int]) -> V:
    size = SIZES.get(t.dtype)
    if size is None or any(d < 0 for d in t.dims) or not t.name:
        raise Refused(f"its initializer {t.name!r} has type {t.dtype} or shape {list(t.dims)}")
    count = math.prod(t.dims)
    if t.external is not None:
        where = t.external.get("location", "")
        try:
            offset, length = int(t.external.get("offset", "0")), int(t.external["length"])
        except (KeyError, ValueError) as exc:
            raise Refused(f"its initializer {t.name} has no readable offset and length") from exc
        if t.dtype == STRING or length != count * size or offset < 0 or \
                offset + length > data_sizes.get(where, -1):
            raise Refused(f"its initializer {t.name} ({list(t.dims)}) does not fit {length} "
                          f"bytes at {offset} of {where!r}")
    elif t.stored != (count if t.typed or t.dtype == STRING else count * size):
        raise Refused(f"its initializer {t.name} holds {t.stored} values or bytes for "
                      f"{list(t.dims)}")
    return V(t.dims, t.dtype, tensor_value(t) if t.external is None else None, False)


def _inputs(feeds: Sequence[str], batch: int, tokens: int) -> dict[str, V]:
    shapes = {"ids": (batch, tokens), "ids_b": (batch, tokens), "lengths": (batch,),
              "lengths_b": (batch,), "text": (batch,)}
    return {n: V(shapes[n], _FEED_TYPES[n][0]) for n in feeds}


@dataclass
class _Run:
    tensors: dict[str, V]
    peak: int
    peak_at: str


def _run(graph: Graph, consts: Mapping[str, V], feeds: dict[str, V], text: TextOps) -> _Run:
    """Every node's shape rule in order; the most bytes alive at once (tensors that depend on
    the inputs, each until its last use)."""
    rules = {**RULES, ("com.microsoft", "Tokenizer"): text.tokenizer,
             ("ai.onnx.ml", "LabelEncoder"): TextOps.label_encoder}
    last: dict[str, int] = {}
    for k, node in enumerate(graph.nodes):
        for name in node.inputs:
            last[name] = k
    for o in graph.outputs:
        last[o.name] = len(graph.nodes)
    tensors: dict[str, V] = {**consts, **feeds}
    live = sum(v.bytes for v in feeds.values())
    peak, peak_at = live, "the inputs"
    for k, node in enumerate(graph.nodes):
        where = f"node {k} ({node.op}{' ' + repr(node.outputs[0]) if node.outputs else ''})"
        rule = rules.get((node.domain, node.op))
        if rule is None:
            raise Refused(f"{where} is an op metaprep's exporter never writes")
        if any(a.kind in (5, 10, 11, 12, 13, 14) for a in node.attrs.values()):
            raise Refused(f"{where} holds a subgraph or another attribute metaprep never writes")
        try:
            ins = [tensors[n] if n else None for n in node.inputs]
        except KeyError as exc:
            raise Refused(f"{where} reads {exc.args[0]!r}, which nothing before it makes") \
                from exc
        try:
            outs = rule(node, ins)
        except Refused as exc:
            raise Refused(f"{where}: {exc}") from exc
        except (ArithmeticError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            # an input missing, a value of the wrong size: no node the exporter writes does that
            raise Refused(f"{where}: its inputs do not fit the op ({exc})") from exc
        if any(len(v.shape) > _MAX_RANK for v in outs):
            raise Refused(f"{where} makes a tensor of more than {_MAX_RANK} dimensions")
        if len(outs) < len(node.outputs):
            raise Refused(f"{where} has more outputs than its op gives")
        for name, v in zip(node.outputs, outs, strict=False):
            if not name:
                continue
            if name in tensors:
                raise Refused(f"{where} makes {name!r} again")
            tensors[name] = v
            if v.data:
                live += v.bytes
        if live > peak:
            peak, peak_at = live, where
        for name in {*node.inputs, *node.outputs}:  # what no later node reads is freed
            done = tensors.get(name)
            if name and done is not None and done.data and last.get(name, -1) <= k:
                live -= done.bytes
                last[name] = len(graph.nodes) + 1  # freed once
    return _Run(tensors, peak, peak_at)


# the outputs the runtime reads from each graph (a model graph of pairs has no sentence vector)
_OUTPUTS = {"model": {"logits", "probabilities"},
            "front_end": {"token_embeddings", "sentence_embedding"},
            "text": {"ids", "missed"}, "serve": {"logits", "probabilities", "ids", "counts"}}


def check_output_shapes(path: Path, name: str, shapes: Mapping[str, tuple[int, ...]],
                        listed: set[str], task: TaskInfo, max_tokens: int) -> None:
    """The outputs and their shapes for a batch of two texts of max_tokens tokens, as
    check_graph worked them out, against the manifest (``listed``: the graph's outputs it
    lists): a graph giving more columns than it declares is refused before it runs."""
    t = max_tokens
    if set(shapes) != listed or not _OUTPUTS[name] <= listed:
        raise ModelError(f"{path.name} gives {sorted(shapes)}; the manifest lists "
                         f"{sorted(listed)}, and the runtime reads {sorted(_OUTPUTS[name])}",
                         path=path, hint="refusing to load it; re-export the model directory")
    want = {"logits": (2, len(task.labels)), "probabilities": (2, len(task.labels)),
            "sentence_embedding": (2, task.sentence_dim),
            "token_embeddings": (2, t, task.meta_dim), "counts": (2,)}
    for out, shape in shapes.items():
        if out == "ids":  # every token (text graph), or at most max_tokens (serve graph)
            ok = len(shape) == 2 and shape[0] == 2 and (name == "text" or 1 <= shape[1] <= t)
        elif out == "missed":
            ok = len(shape) == 1
        else:
            ok = shape == want.get(out)
        if not ok:
            raise ModelError(f"{path.name} would give {out} of shape {list(shape)} for 2 texts "
                             f"of {t} tokens, not {list(want.get(out, ('...',)))}", path=path,
                             hint="refusing to load it; re-export the model directory")
