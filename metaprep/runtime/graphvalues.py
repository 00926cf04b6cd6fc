"""What ``graphcheck`` knows of a tensor (``V``: its shape at a concrete size, its element type,
its value when it is a small one made of shapes and constants), and the helpers its shape rules
(graphrules.py) share: a value worked out from known ones, an attribute of the kind the op takes,
an axis inside the rank. Whatever does not follow from shapes and constants is ``Refused``.
Standard library and numpy only: the runtime imports it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from metaprep.runtime.onnx_read import Node, Tensor

__all__ = ["BOOL", "FLOAT", "INT32", "INT64", "SIZES", "SMALL", "STRING", "UINT8", "Refused", "V",
           "attribute", "axis_index", "broadcast", "computed", "from_data", "known_ints",
           "known_value", "need", "tensor_value"]

# onnx TensorProto data types -> bytes an element holds in memory (a string: std::string's
# 32 bytes and a pointer's worth of text; the text itself is bounded by the input's size)
SIZES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 8: 40, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8,
          16: 2}
_NUMPY = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64,
          9: np.bool_, 10: np.float16, 11: np.float64}
FLOAT, UINT8, INT32, INT64, STRING, BOOL = 1, 2, 6, 7, 8, 9
SMALL = 64  # values worked out for tensors of at most this many elements (shapes)


class Refused(Exception):
    """A reason to refuse the graph (turned into a ModelError naming the file and node)."""


@dataclass
class V:
    """A tensor as the check sees it: its shape at this size, its element type, its value when
    it is a small one made of shapes and constants, and whether it depends on the inputs."""

    shape: tuple[int, ...]
    dtype: int
    value: np.ndarray | None = None
    data: bool = True  # depends on the inputs (else onnxruntime may fold it at load)

    @property
    def bytes(self) -> int:
        return math.prod(self.shape) * SIZES.get(self.dtype, 8)


# --- the helpers of the rules --------------------------------------------------------------------
def known_value(v: V | None, what: str) -> np.ndarray:
    if v is None or v.value is None:
        raise Refused(f"its {what} comes from the data, not from shapes and constants")
    return v.value


def known_ints(v: V | None, what: str) -> list[int]:
    return [int(x) for x in known_value(v, what).reshape(-1)]


def broadcast(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except (ValueError, RuntimeError) as exc:  # RuntimeError: more than 32 dimensions
        raise Refused(f"its inputs' shapes {list(shapes)} do not broadcast") from exc


def computed(fn: Callable[..., Any], vals: Sequence[V | None], dtype: int,
           shape: tuple[int, ...]) -> np.ndarray | None:
    """fn of the inputs' values when every one is known and the result is small."""
    if math.prod(shape) > SMALL or any(v is None or v.value is None for v in vals):
        return None
    try:
        with np.errstate(all="ignore"):
            out = np.asarray(fn(*[v.value for v in vals if v is not None]))
    except (ValueError, TypeError, IndexError, ZeroDivisionError):
        return None
    if out.dtype.kind == "f" and not np.isfinite(out).all():  # no shape is made of NaN
        return None
    try:
        return out.astype(_NUMPY.get(dtype, np.int64)).reshape(shape)
    except (ValueError, TypeError):
        return None


def from_data(*vals: V | None) -> bool:
    return any(v is not None and v.data for v in vals)


def attribute(node: Node, name: str, default: Any) -> Any:
    """An attribute's value, of the default's kind (int, a tuple of ints, bytes or a tensor);
    Refused when it holds another kind (or more ints than the reader decodes)."""
    a = node.attrs.get(name)
    if a is None:
        return default
    v = a.value
    kind = type(default)
    ok = (isinstance(v, int) and not isinstance(v, bool)) if kind is int else \
        isinstance(v, tuple) and all(isinstance(x, int) for x in v) if kind in (tuple, range) \
        else isinstance(v, kind) if default is not None else isinstance(v, Tensor)
    if not ok:
        raise Refused(f"its attribute {name} is not of the kind the op takes")
    return v


def axis_index(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise Refused(f"axis {axis} is outside a tensor of rank {rank}")
    return axis % max(rank, 1)


def need(ins: list[V | None], i: int) -> V:
    v = ins[i] if i < len(ins) else None
    if v is None:
        raise Refused(f"input {i} is missing")
    return v


def tensor_value(t: Tensor) -> np.ndarray | None:
    """A stored tensor's numbers, when they are in the graph and few."""
    kind = _NUMPY.get(t.dtype)
    if kind is None or t.values is None or math.prod(t.dims) > 4096:
        return None
    try:
        if isinstance(t.values, bytes):
            arr = np.frombuffer(t.values, dtype=np.dtype(kind).newbyteorder("<"))
        elif t.dtype == 10:  # float16 kept as its bits in int32_data
            arr = np.array(t.values, dtype=np.uint16).view(np.float16)
        else:
            arr = np.array(t.values, dtype=kind)
        return arr.reshape(t.dims).astype(kind)
    except (ValueError, OverflowError):
        return None
