"""The external-data locations an ONNX graph refers to, read from its protobuf bytes without the
``onnx`` package (the runtime must not need it), and the protobuf reading that ``onnx_read``
shares.

A model directory may come from a stranger, and onnxruntime opens whatever file a tensor's
``external_data`` ``location`` names, relative to the graph (``../../etc/...`` or an absolute path
included). So before a session is created, every location is read here and checked by
``modeldir``. The walk follows the protobuf schema (onnx.proto) to every place a TensorProto can
sit: graph initializers, sparse initializers, node attributes (tensors and nested graphs),
functions and training info. As a guard against a place this walk misses, the number of
``location`` keys found must equal the number of times the encoded key occurs in the raw bytes;
if not, the graph is refused rather than trusted.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

__all__ = ["external_locations", "fields", "items", "read_value", "read_varint"]

_LOCATION_KEY = b"\x0a\x08location"  # field 1 (key), length 8, "location"
_MAX_DEPTH = 64  # nested graphs (If/Loop bodies); deeper is refused, not recursed into

# message -> {field number: message type of that (length-delimited) field}
_SCHEMA: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 3: "graph"},
    "function": {5: "node", 11: "attribute"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse",
                  23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {13: "entry"},
}


def read_varint(buf: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def read_value(buf: bytes | memoryview, pos: int, end: int, wire: int) -> tuple[Any, int]:
    """A field's value (an int for varint and fixed fields, (start, end) for a length-delimited
    one) and where the next field starts."""
    if wire == 0:
        return read_varint(buf, pos, end)
    if wire in (1, 5):
        size = 8 if wire == 1 else 4
        if pos + size > end:
            raise ValueError("a field runs past the end of its message")
        return int.from_bytes(buf[pos : pos + size], "little"), pos + size
    if wire == 2:
        length, pos = read_varint(buf, pos, end)
        if pos + length > end:
            raise ValueError("a field runs past the end of its message")
        return (pos, pos + length), pos + length
    raise ValueError(f"unsupported protobuf wire type {wire}")


def items(buf: bytes | memoryview, start: int, end: int) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field."""
    pos = start
    while pos < end:
        key, pos = read_varint(buf, pos, end)
        value, pos = read_value(buf, pos, end, key & 7)
        yield key >> 3, key & 7, value


def fields(buf: bytes | memoryview, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(field number, start, end) of each length-delimited field; other wire types skipped."""
    for number, wire, value in items(buf, start, end):
        if wire == 2:
            yield number, value[0], value[1]


def _walk(buf: bytes, kind: str, start: int, end: int, depth: int, out: list[str],
          keys: list[int]) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError("graphs nested too deeply")
    if kind == "entry":
        key = value = None
        canonical = False
        for number, s, e in fields(buf, start, end):
            if number == 1:
                key, canonical = buf[s:e], buf[s - 2 : s] == _LOCATION_KEY[:2]
            elif number == 2:
                value = buf[s:e]
        if key == b"location":
            if not canonical:  # the count below relies on the plain encoding of the key
                raise ValueError("an external data key is not plainly encoded")
            try:
                out.append((value or b"").decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise ValueError("an external data location is not UTF-8") from exc
        return
    children = _SCHEMA[kind]
    for number, s, e in fields(buf, start, end):
        child = children.get(number)
        # a message without the key's bytes holds no location: not walked (a text graph's
        # million vocabulary strings took seconds to step through); ``keys``: where they are
        if child is None:
            continue
        i = bisect_left(keys, s)
        if i < len(keys) and keys[i] + len(_LOCATION_KEY) <= e:
            _walk(buf, child, s, e, depth + 1, out, keys)


def external_locations(model: bytes) -> list[str]:
    """Every external-data ``location`` in a serialized ModelProto, in order of appearance.
    ValueError if the bytes do not parse, or hold ``location`` keys the walk did not reach."""
    found: list[str] = []
    keys, at = [], model.find(_LOCATION_KEY)
    while at >= 0:  # bytes.find, not a regex: a fast search through a 17 MB graph
        keys.append(at)
        at = model.find(_LOCATION_KEY, at + len(_LOCATION_KEY))
    _walk(model, "model", 0, len(model), 0, found, keys)
    if len(keys) != len(found):
        raise ValueError("the graph holds external-data entries in places this reader does not "
                         "check")
    return found
