"""The external data of a model directory's graphs: big tensors in one file beside them, each on
a 64 KiB boundary so onnxruntime can memory-map it, shared by every graph that uses it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["ExternalData", "realign_external_data", "save_graph"]

_ALIGN = 1 << 16  # external tensors start on 64 KiB boundaries, so onnxruntime can mmap them


class ExternalData:
    """One external data file shared by the graphs of a model directory: a tensor written once
    (by name) is referenced by every graph that uses it."""

    def __init__(self, path: Path, *, append: bool = False) -> None:
        self.path = Path(path)
        # append: after the tensors another graph already references (they stay where they are)
        self._f = open(self.path, "r+b" if append else "wb")  # noqa: SIM115 - closed by close()
        self._f.seek(0, os.SEEK_END)
        self._written: dict[str, tuple[int, int, int, tuple[int, ...]]] = {}

    def tensor(self, name: str, array: np.ndarray) -> TensorProto:
        if name not in self._written:
            pos = self._f.tell()
            offset = pos + (-pos) % _ALIGN
            try:
                self._f.write(b"\0" * (offset - pos))
                self._f.write(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data)
            except OSError as exc:  # a full disk: say which file
                raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
            self._written[name] = (offset, array.nbytes,
                                   helper.np_dtype_to_tensor_dtype(array.dtype), array.shape)
        offset, length, dtype, shape = self._written[name]
        t = TensorProto()
        t.name, t.data_type = name, dtype
        t.dims.extend(shape)
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", self.path.name), ("offset", str(offset)),
                           ("length", str(length))):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
        return t

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def save_graph(model: onnx.ModelProto, path: Path) -> None:
    """Write the graph (its external data is already on disk) and check it by path, which is
    how the checker handles models over 2 GB."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString())
    os.replace(tmp, path)
    onnx.checker.check_model(str(path))


def realign_external_data(src: Path, dst: Path, data_name: str, *, append: bool = False,
                          share: Path | None = None) -> None:
    """Save the graph at ``src`` as ``dst`` with every initializer of 1 KiB or more in
    ``data_name`` beside ``dst``, each on a 64 KiB boundary as in model.data (``append``: after
    what that file already holds, for a data file another graph shares). A tensor that the graph
    ``share`` already keeps in that file, byte for byte, is referenced instead of written again
    (the float32 tables an int8 graph did not quantize). onnx's own writer (used by onnxruntime's
    quantizer) packs tensors unaligned; 64 KiB is the mapping granularity on Windows
    (onnxruntime 1.32 on Linux mapped an unaligned 256 MB table too: 80 MB RSS)."""
    model = onnx.load(str(src))  # external data read into memory, so the files can be rewritten
    target = dst.with_name(data_name)
    if not append:  # a new file, not the quantizer's (which it creates readable by its owner only)
        target.unlink(missing_ok=True)
        target.touch()
    kept = _external_tensors(share, data_name) if append and share is not None else {}
    data = ExternalData(target, append=True)
    try:
        for t in model.graph.initializer:
            array = numpy_helper.to_array(t)
            if array.nbytes < 1024:
                continue
            old = kept.get(t.name)
            if old is not None and _holds(target, old, array):
                t.CopyFrom(old)
            else:
                t.CopyFrom(data.tensor(t.name, array))
    finally:
        data.close()
    save_graph(model, dst)


def _external_tensors(graph: Path, data_name: str) -> dict[str, TensorProto]:
    m = onnx.load(str(graph), load_external_data=False)
    return {t.name: t for t in m.graph.initializer if t.data_location == TensorProto.EXTERNAL
            and {e.key: e.value for e in t.external_data}.get("location") == data_name}


def _holds(path: Path, tensor: TensorProto, array: np.ndarray) -> bool:
    """Whether ``tensor``'s external bytes in ``path`` are exactly ``array`` (same type, shape)."""
    if tensor.data_type != helper.np_dtype_to_tensor_dtype(array.dtype) or \
            tuple(tensor.dims) != array.shape:
        return False
    where = {e.key: int(e.value) for e in tensor.external_data if e.key in ("offset", "length")}
    want = np.ascontiguousarray(array).reshape(-1).view(np.uint8).data
    if where.get("length", len(want)) != len(want):
        return False
    with open(path, "rb") as f:
        f.seek(where.get("offset", 0))
        for start in range(0, len(want), 1 << 24):  # 16 MiB at a time: tables can be GBs
            block = want[start : start + (1 << 24)]
            if f.read(len(block)) != block:
                return False
    return True
