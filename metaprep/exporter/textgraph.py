"""The text graph: texts -> ids inside onnxruntime, exactly as ``metaprep.tokenize`` and the
vocabulary give them in Python.

Tokenizing with Python's ``re`` and looking each token up in a dict held the GIL and took about
half of a pooled model's serving time (benchmarks/results/text-path.md). onnxruntime ships a
regex tokenizer (``com.microsoft`` Tokenizer, RE2) and a string -> int map (``ai.onnx.ml``
LabelEncoder); both run in C++ without the GIL, so batches can run on several threads at once.

Exactness: RE2's ``\\w``, ``\\s`` and ``.`` are ASCII, Python's are Unicode, so the pattern is
rewritten with every class spelled out code point by code point from Python's own ``re``. The map
holds each vocabulary word's id under the case policy; a token it lacks comes back as -1 with its
string, and the runtime looks it up in Python (the case policy's other forms, or UNK).
Lowercasing stays in Python (``str.lower``: onnxruntime's StringNormalizer needs a system locale).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from functools import cache
from itertools import chain
from typing import Any

from metaprep.ids import MISSED_ID, PAD_ID, UNK_ID, first_row, token_id
from metaprep.runtime.graphjoin import (
    JOIN_DROPPED,
    JOIN_KEPT,
    JOIN_NODES,
    JOIN_RENAMES,
    join_consts,
)
from metaprep.tokenize import TokenizerConfig

__all__ = ["PAD_TOKEN", "TEXT_OPSET", "map_is_complete", "re2_pattern", "serve_graph",
           "text_graph"]

C: Any = importlib.import_module("re._constants")
P: Any = importlib.import_module("re._parser")

# the tokenizer's padding string: no token holds whitespace, so no token can be this
PAD_TOKEN = " "
TEXT_OPSET = 17


# --- Python regex -> RE2 ------------------------------------------------------------------------
@cache
def _all_chars() -> str:
    """Every code point that UTF-8 can carry (surrogates cannot)."""
    return "".join(map(chr, chain(range(0xD800), range(0xE000, 0x110000))))


@cache
def _class(python_class: str) -> str:
    """An RE2 class with exactly the code points ``python_class`` matches in Python."""
    cps = [ord(c) for c in re.findall(python_class, _all_chars())]
    if not cps:
        return r"[^\x{0}-\x{10FFFF}]"
    ranges, start, prev = [], cps[0], cps[0]
    for cp in cps[1:]:
        if cp != prev + 1:
            ranges.append((start, prev))
            start = cp
        prev = cp
    ranges.append((start, prev))
    return "[" + "".join(rf"\x{{{a:X}}}" if a == b else rf"\x{{{a:X}}}-\x{{{b:X}}}"
                         for a, b in ranges) + "]"


_CATEGORY = {C.CATEGORY_WORD: r"\w", C.CATEGORY_NOT_WORD: r"\W", C.CATEGORY_SPACE: r"\s",
             C.CATEGORY_NOT_SPACE: r"\S", C.CATEGORY_DIGIT: r"\d", C.CATEGORY_NOT_DIGIT: r"\D"}


def _item(op: Any, av: Any) -> str:
    """One member of a parsed [...] written back as Python class syntax."""
    if op == C.LITERAL:
        return f"\\U{av:08x}"
    if op == C.RANGE:
        return f"\\U{av[0]:08x}-\\U{av[1]:08x}"
    if op == C.CATEGORY and av in _CATEGORY:
        return _CATEGORY[av]
    raise ValueError(f"class member {op}")


def _rewrite(nodes: Sequence[Any]) -> str:
    out = []
    for op, av in nodes:
        if op == C.LITERAL:
            out.append(rf"\x{{{av:X}}}")
        elif op == C.NOT_LITERAL:
            out.append(_class(f"[^\\U{av:08x}]"))
        elif op == C.ANY:
            out.append(_class("."))
        elif op == C.IN:
            negate = bool(av) and av[0][0] == C.NEGATE
            body = "".join(_item(o, a) for o, a in av[negate:])
            out.append(_class(f"[{'^' if negate else ''}{body}]"))
        elif op == C.BRANCH:
            out.append("(?:" + "|".join(_rewrite(b) for b in av[1]) + ")")
        elif op == C.SUBPATTERN and av[0] is None and not av[1] and not av[2]:
            out.append("(?:" + _rewrite(av[3]) + ")")
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            low, high = av[0], av[1]
            if low > 1000 or (high != C.MAXREPEAT and high > 1000):
                raise ValueError("a repeat count over 1000")  # RE2's limit
            span = f"{{{low},}}" if high == C.MAXREPEAT else f"{{{low},{high}}}"
            out.append("(?:" + _rewrite(av[2]) + ")" + span + ("?" if op == C.MIN_REPEAT else ""))
        else:
            raise ValueError(f"no exact RE2 form for {op}")
    return "".join(out)


def re2_pattern(mode: str, pattern: str) -> str:
    """The tokenizer's pattern for RE2 (also valid Oniguruma), or ValueError when it cannot be
    rewritten exactly (flags, groups, anchors, look-arounds, back-references, empty matches)."""
    if mode == "whitespace":
        pattern = r"\S+"  # str.split() splits exactly where \S+ ends (tokenize.py)
    compiled = re.compile(pattern)
    if compiled.flags & ~(re.UNICODE | re.VERBOSE) or compiled.groups:
        raise ValueError("flags or groups")
    tree = P.parse(pattern)
    if tree.getwidth()[0] == 0:
        raise ValueError("can match the empty string")
    return _rewrite(list(tree))


# --- the graph ------------------------------------------------------------------------------------
def _keys(words: Sequence[str], case_policy: str) -> dict[str, int]:
    """token -> id for every vocabulary word and its common case forms, each through the case
    policy exactly as the runtime looks it up (the first row of a word wins, as in the index)."""
    rows: dict[str, int] = {}
    for row, w in enumerate(words):
        rows.setdefault(w, row)
    forms = (lambda w: (w,)) if case_policy == "exact" else (
        lambda w: (w, w.lower(), w[:1].upper() + w[1:].lower(), w.upper()))
    keys: dict[str, int] = {}
    for w in rows:
        for form in forms(w):
            if form not in keys:
                keys[form] = token_id(first_row(form, case_policy, rows.get))
    keys.pop(PAD_TOKEN, None)
    return keys


def map_is_complete(tok: TokenizerConfig, case_policy: str) -> bool:
    """Whether the text graph's map answers every token itself, a token it lacks being UNK:
    exact lookups, or lowercase lookups of lowercased text (str.lower is idempotent on every
    code point). Otherwise the runtime looks such tokens up in Python (the other case forms)."""
    return case_policy == "exact" or (case_policy == "lower" and tok.lowercase)


def text_graph(tok: TokenizerConfig, words: Sequence[str], case_policy: str) -> Any:
    """The ONNX model: text (N,) string -> ids (N, T) int64 of every token (0 past a text's
    end; MISSED_ID where the map lacks the token), missed (M,) the strings of the MISSED_ID
    positions in row order. The runtime cuts at max_tokens (on ints: cheaper than on strings).
    ValueError when the pattern has no exact RE2 form."""
    from onnx import TensorProto, helper

    pattern = re2_pattern(tok.mode, tok.pattern)
    keys = _keys(words, case_policy)
    complete = map_is_complete(tok, case_policy)
    i64 = TensorProto.INT64
    consts = [helper.make_tensor("flat", i64, [1], [-1]),
              helper.make_tensor("missed_id", i64, [], [MISSED_ID])]
    nodes = [
        helper.make_node("Tokenizer", ["text"], ["tokens"], domain="com.microsoft", mark=0,
                         pad_value=PAD_TOKEN, tokenexp=pattern, mincharnum=1),
        helper.make_node("LabelEncoder", ["tokens"], ["ids"], domain="ai.onnx.ml",
                         keys_strings=[PAD_TOKEN, *keys],
                         values_int64s=[PAD_ID, *keys.values()],
                         default_int64=UNK_ID if complete else MISSED_ID),
        helper.make_node("Equal", ["ids", "missed_id"], ["miss"]),
        helper.make_node("Reshape", ["miss", "flat"], ["miss_flat"]),
        helper.make_node("Compress", ["tokens", "miss_flat"], ["missed"]),  # no axis: flattened
    ]
    graph = helper.make_graph(
        nodes, "metaprep_text",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
        [helper.make_tensor_value_info("ids", i64, ["batch", "tokens"]),
         helper.make_tensor_value_info("missed", TensorProto.STRING, ["missed"])],
        initializer=consts)
    return helper.make_model(graph, producer_name="metaprep", opset_imports=[
        helper.make_opsetid("", TEXT_OPSET), helper.make_opsetid("com.microsoft", 1),
        helper.make_opsetid("ai.onnx.ml", 3)])


# --- texts to labels in one graph ---------------------------------------------------------------
def serve_graph(text: Any, model: Any, max_tokens: int) -> Any:
    """The text graph and the model graph joined: text (N,) -> the model's outputs, plus ids
    (N, T) as the model read them (cut at ``max_tokens``, at least one column) and counts (N,)
    of every text's tokens up to max_tokens + 1 (one past the limit says "truncated"), from
    which the runtime keeps its statistics. One onnxruntime run a batch instead of two and the
    Python between them. Only for a complete map (map_is_complete) and a single-text model;
    ``model`` keeps its external data where it is (the graphs share model.data). ValueError
    when the two graphs cannot be joined."""
    from onnx import TensorProto, helper

    # the nodes and constants of the join are graphjoin's (the runtime checks serve.onnx
    # against them)
    opsets = {o.domain: o.version for o in text.opset_import}
    if {o.domain: o.version for o in model.opset_import} != {"": opsets.get("")}:
        raise ValueError("the text and model graphs use other opsets")
    if [i.name for i in model.graph.input] != ["ids", "lengths"]:
        raise ValueError("the model graph does not read ids and lengths alone")
    first = [n for n in text.graph.node if n.op_type in JOIN_KEPT]
    defaults = [a.i for n in first for a in n.attribute if a.name == "default_int64"]
    if defaults != [UNK_ID]:  # a map that leaves tokens to Python cannot be joined
        raise ValueError("the text graph's map does not answer every token itself")
    for n in first:  # tokens -> text_tokens, ids -> text_ids
        n.input[:] = [JOIN_RENAMES.get(x, x) for x in n.input]
        n.output[:] = [JOIN_RENAMES.get(x, x) for x in n.output]
    i64 = TensorProto.INT64
    consts = [helper.make_tensor(name, i64, dims, values)
              for name, dims, values in join_consts(max_tokens)]
    fix = [helper.make_node(op, ins, outs, **{
        k: helper.make_tensor(v[1], i64, v[2], v[3]) if isinstance(v, tuple) else v
        for k, v in attrs.items()}) for op, ins, outs, attrs in JOIN_NODES]
    ours = {x for n in [*first, *fix] for x in [*n.input, *n.output]} | {c.name for c in consts}
    ours -= {"ids", "lengths"}  # what the model graph reads from the part before it
    taken = {x for n in model.graph.node for x in [*n.input, *n.output]}
    taken |= {t.name for t in model.graph.initializer} | {o.name for o in model.graph.output}
    if taken & ours:
        raise ValueError(f"the model graph uses the names {sorted(taken & ours)}")
    outputs = [*model.graph.output,
               helper.make_tensor_value_info("ids", i64, ["batch", "tokens"]),
               helper.make_tensor_value_info("counts", i64, ["batch"])]
    graph = helper.make_graph(
        [*first, *fix, *model.graph.node], "metaprep_serve",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])], outputs,
        initializer=[*consts, *[t for t in text.graph.initializer
                                if t.name not in JOIN_DROPPED],
                     *model.graph.initializer])
    joined = helper.make_model(graph, producer_name="metaprep", opset_imports=[
        helper.make_opsetid(d, v) for d, v in opsets.items()])
    joined.ir_version = max(text.ir_version, model.ir_version)
    return joined
