"""The ONNX side of `metaprep static-source`: a BERT exported to ONNX, run by onnxruntime, checked
before and while it runs.

Before: the file is a regular file; every external-data location its graph names is a file
inside the graph's folder (onnxruntime would open ``../../anything``); the session loads; its
inputs are ``input_ids`` and ``attention_mask`` (and an optional ``token_type_ids``), integers,
and nothing else; one output is (batch, tokens, hidden) floats. The word embedding table's rows
and the position table's length are read from the graph where it names them, so vocabulary ids
past the table are refused before any run. While: each output has the shape of its input batch
and the width of the first one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from metaprep.errors import ModelError
from metaprep.learn.bertfiles import SUPPORTED, read_bounded

__all__ = ["onnx_encoder"]

Encode = Callable[[np.ndarray, np.ndarray], np.ndarray]
MAX_ONNX_BYTES = 2 << 30  # protobuf's own limit for one message
_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
_FLOAT_TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _check_external_data(model: Path, data: bytes) -> None:
    from metaprep.runtime.onnx_scan import external_locations

    try:
        locations = external_locations(data)
    except ValueError as exc:
        raise ModelError(f"not a readable ONNX model ({exc})", path=model,
                         hint=f"static-source reads {SUPPORTED}") from exc
    root = model.resolve().parent
    for loc in sorted(set(locations)):
        target = (root / loc).resolve()
        if root not in target.parents or not target.is_file():
            raise ModelError(f"the graph reads external data from {loc!r}, which is not a file "
                             "inside its folder", path=model, hint="refusing to load it")


def _tables(model: Path, data: bytes) -> tuple[int | None, int | None]:
    """(rows of the table input_ids index, rows of the position table), each None when the
    graph does not name it plainly (then onnxruntime's own bounds checks are the guard)."""
    import onnx

    try:
        graph = onnx.load_from_string(data).graph
    except Exception:  # noqa: BLE001 - the session below reports an unreadable graph
        return None, None
    dims = {t.name: list(t.dims) for t in graph.initializer}
    rows = next((dims[n.input[0]][0] for n in graph.node if n.op_type == "Gather"
                 and len(n.input) == 2 and n.input[1] == "input_ids" and n.input[0] in dims
                 and len(dims[n.input[0]]) == 2), None)
    positions = next((d[0] for name, d in dims.items()
                      if name.endswith("position_embeddings.weight") and len(d) == 2), None)
    return rows, positions


def onnx_encoder(model: Path) -> tuple[Encode, dict[str, Any], int | None, int | None]:
    """(encode, what the model is, rows of its word table, its positions) for an ONNX BERT."""
    import onnxruntime as ort

    data = read_bounded(model, "ONNX model", MAX_ONNX_BYTES)
    _check_external_data(model, data)
    try:
        sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own unrelated exception types
        raise ModelError(f"cannot load the ONNX model ({_first_line(exc)})", path=model,
                         hint=f"static-source reads {SUPPORTED}") from exc
    inputs = {i.name: i.type for i in sess.get_inputs()}
    outs = [o.name for o in sess.get_outputs() if len(o.shape or []) == 3
            and o.type in _FLOAT_TYPES]
    other = sorted(set(inputs) - {"input_ids", "attention_mask", "token_type_ids"})
    if not {"input_ids", "attention_mask"} <= set(inputs) or other:
        raise ModelError(f"the model's inputs are {sorted(inputs)}; static-source gives input_ids, "
                         "attention_mask and token_type_ids only", path=model,
                         hint=f"static-source reads {SUPPORTED}")
    if not outs:
        raise ModelError("no (batch, tokens, hidden) float output among "
                         f"{[o.name for o in sess.get_outputs()]}", path=model,
                         hint=f"static-source reads {SUPPORTED}")
    bad = {n: t for n, t in inputs.items() if t not in _INT_TYPES}
    if bad:
        raise ModelError(f"input {next(iter(bad))} is a {next(iter(bad.values()))}, not integer "
                         "ids", path=model, hint=f"static-source reads {SUPPORTED}")
    rows, positions = _tables(model, data)
    width: list[int] = []

    def encode(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        feed = {k: v.astype(_INT_TYPES[inputs[k]]) for k, v in feed.items()}
        try:
            out = sess.run([outs[0]], feed)[0]
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
            raise ModelError(f"the ONNX model failed on a batch ({_first_line(exc)})",
                             path=model) from exc
        shape: tuple[int, ...] = tuple(getattr(out, "shape", ()))
        if len(shape) != 3 or tuple(shape[:2]) != ids.shape or shape[2] < 1 or \
                (width and shape[2] != width[0]):
            raise ModelError(f"output {outs[0]} has shape {list(shape)} for a batch of "
                             f"{list(ids.shape)} ids: not (batch, tokens, hidden)", path=model,
                             hint=f"static-source reads {SUPPORTED}")
        width[:] = [shape[2]]
        return np.asarray(out, dtype=np.float32)

    return encode, {"kind": "onnx", "output": outs[0]}, rows, positions
