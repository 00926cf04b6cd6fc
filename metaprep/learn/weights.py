"""The tensors of a run directory on disk: the best weights (safetensors) and the resume
checkpoint (``torch.save``, read back with ``weights_only=True``: nothing is unpickled).

rundir.py names the files and hands their paths here. Every write is a temporary file renamed
into place; weights holding a NaN or an infinity are never written (training diverged: the file
on disk stays the last good one) and never read (a damaged or edited file). Each problem is a
one-line ModelError naming the file. torch and safetensors are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaprep.atomic import atomic_path, write_failure
from metaprep.errors import ModelError
from metaprep.learn.runfiles import Checkpoint, check_run_file, one_line

if TYPE_CHECKING:
    import torch

__all__ = ["load_checkpoint", "load_weights", "save_checkpoint", "save_weights"]


def save_weights(path: Path, state: dict[str, torch.Tensor]) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    _check_finite(state, path, _DIVERGED)  # never replace good weights by NaN
    with atomic_path(path) as tmp:
        try:
            save_file(state, str(tmp))
        except (OSError, RuntimeError, SafetensorError) as exc:  # a full disk, a size limit
            raise write_failure(path, exc) from exc


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """The weights, mapped from the file copy-on-write where its layout checks out (no copy
    in memory: the caller copies them into a model; safetensors' own reader held twice the
    largest tensor, 1.9 GB for a 3.5M-word learned source), else read by safetensors."""
    from safetensors.torch import load_file

    check_run_file(path)
    if not path.exists():
        raise ModelError(f"missing {path.name}", path=path.parent,
                         hint="did training finish an epoch?")
    state = _mapped_weights(path)
    if state is None:
        try:
            state = load_file(str(path))
        except Exception as exc:  # safetensors raises its own error type for bad bytes
            raise ModelError(f"unreadable weights: {one_line(exc)}", path=path,
                             hint="the file is damaged; train the run again") from exc
    _check_finite(state, path, "the file is damaged or edited; train the run again")
    return state


# safetensors' dtype names that numpy has (others are read by safetensors itself)
_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
           "I8": "i1", "U8": "u1", "BOOL": "?"}


def _mapped_weights(path: Path) -> dict[str, torch.Tensor] | None:
    """A safetensors file (8-byte header length, JSON header, data) as tensors over a
    copy-on-write map of it; None when anything about it is unusual (a dtype numpy lacks, an
    offset out of place, an unaligned tensor, two tensors sharing bytes), for safetensors to
    read or refuse."""
    import itertools
    import json

    import numpy as np
    import torch

    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 2 <= n <= min(size - 8, 100 << 20):
                return None
            header = json.loads(f.read(n))
        whole = np.memmap(path, dtype=np.uint8, mode="c") if size > 8 + n else None
    except (OSError, ValueError):
        return None
    if not isinstance(header, dict):
        return None
    state: dict[str, torch.Tensor] = {}
    spans: list[tuple[int, int]] = []
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = np.dtype(_DTYPES[spec["dtype"]])
            shape = tuple(int(k) for k in spec["shape"])
            begin, end = (int(k) for k in spec["data_offsets"])
        except (KeyError, TypeError, ValueError):
            return None
        count = int(np.prod(shape, dtype=np.int64))
        if min(shape, default=0) < 0 or not 0 <= begin <= end <= size - 8 - n \
                or end - begin != count * dtype.itemsize:
            return None
        spans.append((begin, end))
        if count == 0 or whole is None:
            state[name] = torch.from_numpy(np.zeros(shape, dtype))
            continue
        raw = whole[8 + n + begin : 8 + n + end]
        if raw.ctypes.data % dtype.itemsize:
            return None
        if dtype == np.bool_ and raw.max() > 1:  # a bool is one byte, 0 or 1
            return None
        state[name] = torch.from_numpy(raw.view(dtype).reshape(shape))
    spans.sort()
    if any(b < a_end for (_, a_end), (b, _) in itertools.pairwise(spans)):
        return None  # an edited header aliasing two tensors: safetensors' reader refuses it
    return state


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    import torch

    state = {"model": checkpoint.model, "optimizer": checkpoint.optimizer,
             "progress": checkpoint.progress, "history": checkpoint.history}
    if checkpoint.best is not None:
        state["best"] = checkpoint.best
    _check_finite(checkpoint.model, path, _DIVERGED)
    with atomic_path(path) as tmp:
        try:
            torch.save(state, tmp)
        except (OSError, RuntimeError) as exc:
            raise write_failure(path, exc) from exc


def load_checkpoint(path: Path, *, map_location: Any = "cpu") -> Checkpoint:
    """The resume state; only plain tensors and containers are accepted (nothing unpickled)."""
    import torch

    check_run_file(path)
    if not path.exists():
        raise ModelError(f"missing {path.name}", path=path.parent)
    damaged = "the checkpoint is damaged; start the run again in a new directory"
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # empty, truncated, or holding more than tensors and numbers
        # the loader's own message suggests turning the safety off: neither shown nor chained
        raise ModelError(f"not a readable checkpoint ({type(exc).__name__})", path=path,
                         hint=damaged) from None
    ok = (isinstance(state, dict) and isinstance(state.get("model"), dict)
          and isinstance(state.get("optimizer"), dict)
          and isinstance(state.get("progress"), dict)
          and isinstance(state.get("history"), list)
          and isinstance(state.get("best", {}), dict))
    if not ok:
        raise ModelError("not a metaprep checkpoint (model, optimizer, progress, history)",
                         path=path, hint=damaged)
    _check_finite(state["model"], path, damaged)
    _check_finite(state.get("best", {}), path, damaged)
    return Checkpoint(state["model"], state["optimizer"], state["progress"], state["history"],
                      state.get("best"))


_DIVERGED = ("training diverged: nothing was written, the file on disk is the last good one; "
             "train anew with a lower --lr")


def _check_finite(state: dict[str, Any], path: Path, hint: str) -> None:
    """Weights with a NaN or infinity make every prediction the same class with no error: a
    damaged or edited file, refused by name."""
    import torch

    for name, value in state.items():
        if not (isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel()):
            continue
        # a NaN or an infinity shows in the minimum or the maximum: one pass, no mask (an
        # isfinite mask over a 200k-row table cost 25x as much, at every epoch's end)
        low, high = torch.aminmax(value.detach())
        if not bool(torch.isfinite(low) & torch.isfinite(high)):
            raise ModelError(f"weight {name} holds a NaN or infinite value", path=path,
                             hint=hint)
