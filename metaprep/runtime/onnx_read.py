"""An ONNX graph read from its protobuf bytes without the ``onnx`` package (the runtime must
not need it): its nodes, initializers, inputs and outputs, for the checks of ``graphcheck`` and
``graphjoin``. Every raw message is kept beside what was read of it, so two graphs can be
compared byte for byte. ValueError, and only ValueError, on bytes that do not parse.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import Any

from metaprep.runtime.onnx_scan import fields, items, read_value, read_varint

__all__ = ["Attribute", "Graph", "Node", "Tensor", "ValueInfo", "read_model"]


@dataclass(frozen=True)
class Tensor:
    """A TensorProto: ``values`` are its numbers when they are stored in the graph and few
    (at most _DECODED), else None; ``stored`` the bytes (or entries) it holds."""

    name: str
    dtype: int
    dims: tuple[int, ...]
    values: tuple[Any, ...] | bytes | None
    stored: int  # raw bytes, or the count of typed entries (``typed``)
    typed: bool  # numbers in the typed fields (float_data, int64_data...) rather than raw_data
    external: dict[str, str] | None
    raw: memoryview  # the serialized TensorProto


@dataclass(frozen=True)
class Attribute:
    name: str
    # AttributeProto.type: 1 FLOAT, 2 INT, 3 STRING, 4 TENSOR, 6 FLOATS, 7 INTS, 8 STRINGS...;
    # 0: a long one read by its name alone (_bulk)
    kind: int
    # float, int, bytes, Tensor, tuple; None for kinds not read (strings, graphs...) and for
    # more than _INTS ints (a text graph's vocabulary and ids: the join compares ``raw``)
    value: Any
    raw: memoryview  # the serialized AttributeProto (the join check compares these)


@dataclass(frozen=True)
class Node:
    op: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Attribute]
    raw: memoryview


@dataclass(frozen=True)
class ValueInfo:
    name: str
    dtype: int | None  # None: not a tensor
    dims: tuple[int | str | None, ...] | None  # None: no shape given
    raw: memoryview


@dataclass
class Graph:
    """A ModelProto's graph and what else of the model the checks need."""

    ir_version: int = 0
    opsets: dict[str, int] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    initializers: list[Tensor] = field(default_factory=list)
    inputs: list[ValueInfo] = field(default_factory=list)
    outputs: list[ValueInfo] = field(default_factory=list)
    value_info: list[ValueInfo] = field(default_factory=list)
    # what the exporter never writes, counted so the checks can refuse it
    functions: int = 0
    training: int = 0
    sparse: int = 0
    graphs: int = 0  # graphs given twice (one is all a model has)


_DECODED = 4096  # typed numbers decoded at most (shapes and small constants)
_INTS = 256  # an attribute's ints decoded at most (axes, perms)
_BULK = 1 << 16  # bytes from which an attribute is read by its name alone (_bulk)


def _text(buf: memoryview, s: int, e: int) -> str:
    try:
        return str(buf[s:e], "utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("a name or string is not UTF-8") from exc


def _packed(buf: memoryview, wire: int, value: Any, size: int) -> list[int]:
    """The numbers of a repeated numeric field: packed (wire 2) or one (size 0: varints)."""
    if wire != 2:
        return [value]
    s, e = value
    if size:
        if (e - s) % size:
            raise ValueError("a packed field's length is not a multiple of its element size")
        return [int.from_bytes(buf[i : i + size], "little") for i in range(s, e, size)]
    out = []
    while s < e:
        v, s = read_varint(buf, s, e)
        out.append(v)
    return out


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _float(bits: int) -> float:
    return float(struct.unpack("<f", bits.to_bytes(4, "little"))[0])


def _tensor(buf: memoryview, s: int, e: int) -> Tensor:
    name, dtype, dims, raw_data, external = "", 0, [], None, None
    typed: list[tuple[int, int, Any]] = []
    for number, wire, value in items(buf, s, e):
        if number == 1:
            dims += [_signed(v) for v in _packed(buf, wire, value, 0)]
        elif number == 2 and wire == 0:
            dtype = value
        elif number == 8 and wire == 2:
            name = _text(buf, *value)
        elif number == 9 and wire == 2:
            raw_data = buf[value[0] : value[1]]  # a view: no copy of a big table
        elif number == 13 and wire == 2:
            entry = {n2: _text(buf, s2, e2) for n2, s2, e2 in fields(buf, *value)}
            external = external or {}
            external[entry.get(1, "")] = entry.get(2, "")
        elif number in (4, 5, 6, 7, 10, 11):  # float, int32, string, int64, double, uint64
            typed.append((number, wire, value))
        elif number == 3:
            raise ValueError("a segmented tensor")
    count = sum(_count(buf, *t) for t in typed)
    values: tuple[Any, ...] | bytes | None = None
    if raw_data is not None:
        values = bytes(raw_data) if len(raw_data) <= 8 * _DECODED else None
    elif typed and count <= _DECODED and not any(n == 6 for n, _, _ in typed):
        values = tuple(v for t in typed for v in _typed(buf, *t))
    return Tensor(name, dtype, tuple(dims), values,
                  len(raw_data) if raw_data is not None else count,
                  raw_data is None and bool(typed), external, buf[s:e])


_HIGH = bytes(range(0x80, 0x100))
_INT_RUN = re.compile(rb"(?:\x40[\x80-\xff]{0,9}[\x00-\x7f])*")  # repeated field 8 varints


def _count(buf: memoryview, number: int, wire: int, value: Any) -> int:
    """Entries in one occurrence of a typed data field (packed or not)."""
    if wire != 2 or number == 6:
        return 1
    s, e = value
    size = {4: 4, 10: 8}.get(number, 0)
    if size:
        if (e - s) % size:
            raise ValueError("a packed field's length is not a multiple of its element size")
        return (e - s) // size
    return len(bytes(buf[s:e]).translate(None, _HIGH))  # one byte under 0x80 ends each varint


def _typed(buf: memoryview, number: int, wire: int, value: Any) -> list[Any]:
    if number in (4, 10):
        size = 4 if number == 4 else 8
        if wire != 2:
            return [_float(value) if size == 4 else _double(value)]
        s, e = value
        return [(_float if size == 4 else _double)(int.from_bytes(buf[i : i + size], "little"))
                for i in range(s, e, size)]
    nums = _packed(buf, wire, value, 0)
    return nums if number == 11 else [_signed(v) for v in nums]


def _double(bits: int) -> float:
    return float(struct.unpack("<d", bits.to_bytes(8, "little"))[0])


def _strings(buf: memoryview, s: int, e: int) -> int:
    """Steps over a run of a repeated string field (field 9 of an attribute: a text graph's
    vocabulary, a million strings); returns where the run ends."""
    while s < e and buf[s] == 0x4A:
        length = buf[s + 1] if s + 1 < e else 0x80
        if length < 0x80:  # the usual one-byte length, without a call
            s += 2 + length
        else:
            length, s = read_varint(buf, s + 1, e)
            s += length
    if s > e:
        raise ValueError("a field runs past the end of its message")
    return s


def _attribute(buf: memoryview, s: int, e: int) -> Attribute:
    name, kind = "", 0
    got: dict[int, Any] = {}
    ints: list[int] = []
    floats: list[float] = []
    many = 0
    pos = s
    while pos < e:
        if buf[pos] == 0x40:  # a run of unpacked ints (field 8): a text graph's ids
            run, pos = pos, _INT_RUN.match(buf, pos, e).end()  # type: ignore[union-attr]
            # two bytes under 0x80 an entry: its key, and its varint's last byte
            many += len(bytes(buf[run:pos]).translate(None, _HIGH)) // 2
            if many <= _INTS:
                ints += [_signed(v) for _, _, v in items(buf, run, pos)]
            if pos < e and buf[pos] == 0x40:
                raise ValueError("a varint of more than 10 bytes")
            continue
        if buf[pos] == 0x4A:  # strings (field 9): stepped over, never read by the checks
            pos = _strings(buf, pos, e)
            continue
        key, pos = read_varint(buf, pos, e)
        number, wire = key >> 3, key & 7
        value, pos = read_value(buf, pos, e, wire)
        if number == 1 and wire == 2:
            name = _text(buf, *value)
        elif number == 20 and wire == 0:
            kind = value
        elif number == 2 and wire == 5:
            got[2] = _float(value)
        elif number == 3 and wire == 0:
            got[3] = _signed(value)
        elif number == 4 and wire == 2:
            got[4] = bytes(buf[value[0] : value[1]])
        elif number == 5 and wire == 2:
            got[5] = _tensor(buf, *value)
        elif number == 7:
            floats += [_float(v) for v in _packed(buf, wire, value, 4 if wire == 2 else 0)]
        elif number == 8:
            many += _count(buf, 7, wire, value)
            if many <= _INTS:  # a text graph's million ids: counted, not decoded
                ints += [_signed(v) for v in _packed(buf, wire, value, 0)]
    value = {1: got.get(2), 2: got.get(3), 3: got.get(4), 4: got.get(5), 6: tuple(floats),
             7: tuple(ints) if many <= _INTS else None}.get(kind)
    if kind in (1, 2, 3, 4) and value is None:
        raise ValueError(f"attribute {name} of type {kind} holds no value")
    return Attribute(name, kind, value, buf[s:e])


def _bulk(buf: memoryview, s: int, e: int) -> Attribute | None:
    """A long attribute (a text graph's vocabulary and ids) by its name alone, when the name
    comes first as the onnx package writes it: its kind (0) and value are left unread, and
    onnxruntime refuses a value whose type is not the one the op's schema gives the name."""
    if e - s < _BULK or buf[s] != 0x0A:
        return None
    number, wire, value = next(items(buf, s, e))
    return Attribute(_text(buf, *value), 0, None, buf[s:e])


def _node(buf: memoryview, s: int, e: int) -> Node:
    op = domain = ""
    inputs: list[str] = []
    outputs: list[str] = []
    attrs: dict[str, Attribute] = {}
    for number, ns, ne in fields(buf, s, e):
        if number == 1:
            inputs.append(_text(buf, ns, ne))
        elif number == 2:
            outputs.append(_text(buf, ns, ne))
        elif number == 4:
            op = _text(buf, ns, ne)
        elif number == 7:
            domain = _text(buf, ns, ne)
        elif number == 5:
            a = _bulk(buf, ns, ne) or _attribute(buf, ns, ne)
            if a.name in attrs:
                raise ValueError(f"attribute {a.name} given twice")
            attrs[a.name] = a
    return Node(op, "" if domain == "ai.onnx" else domain, tuple(inputs), tuple(outputs),
                attrs, buf[s:e])


def _value_info(buf: memoryview, s: int, e: int) -> ValueInfo:
    name, dtype, dims = "", None, None
    for number, ts, te in fields(buf, s, e):
        if number == 1:
            name = _text(buf, ts, te)
        elif number == 2:
            for n2, s2, e2 in fields(buf, ts, te):
                if n2 != 1:  # not a tensor type: sequence, map, optional...
                    continue
                dtype = 0
                for n3, w3, v3 in items(buf, s2, e2):
                    if n3 == 1 and w3 == 0:
                        dtype = v3
                    elif n3 == 2 and w3 == 2:
                        dims = tuple(_dim(buf, s4, e4) for n4, s4, e4 in fields(buf, *v3)
                                     if n4 == 1)
    return ValueInfo(name, dtype, dims, buf[s:e])


def _dim(buf: memoryview, s: int, e: int) -> int | str | None:
    for number, wire, value in items(buf, s, e):
        if number == 1 and wire == 0:
            return _signed(value)
        if number == 2 and wire == 2:
            return _text(buf, *value)
    return None


def read_model(data: bytes) -> Graph:
    """The graph of a serialized ModelProto (ValueError if the bytes do not parse). The raw
    messages kept are views into ``data``, not copies (a graph's inline weights can be large)."""
    model = memoryview(data)
    g = Graph()
    for number, wire, value in items(model, 0, len(model)):
        if number == 1 and wire == 0:
            g.ir_version = value
        elif number == 8 and wire == 2:
            domain, version = "", 0
            for n2, w2, v2 in items(model, *value):
                if n2 == 1 and w2 == 2:
                    domain = _text(model, *v2)
                elif n2 == 2 and w2 == 0:
                    version = v2
            g.opsets["" if domain == "ai.onnx" else domain] = version
        elif number == 7 and wire == 2:
            g.graphs += 1
            _graph(model, value[0], value[1], g)
        elif number == 20:
            g.training += 1
        elif number == 25:
            g.functions += 1
    if g.graphs != 1:
        raise ValueError("a model holds one graph")
    return g


def _graph(buf: memoryview, s: int, e: int, g: Graph) -> None:
    for number, ns, ne in fields(buf, s, e):
        if number == 1:
            g.nodes.append(_node(buf, ns, ne))
        elif number == 5:
            g.initializers.append(_tensor(buf, ns, ne))
        elif number == 11:
            g.inputs.append(_value_info(buf, ns, ne))
        elif number == 12:
            g.outputs.append(_value_info(buf, ns, ne))
        elif number == 13:
            g.value_info.append(_value_info(buf, ns, ne))
        elif number == 15:
            g.sparse += 1
