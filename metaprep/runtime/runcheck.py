"""What a graph gives at run time, checked before the runtime uses it.

The load-time checks (graphcheck) work the output shapes out from the graph; these check what
onnxruntime really returned for each batch: the rows and columns the manifest gives (a forged
``model.onnx`` whose output has more columns than it declares gave a traceback), float32,
and finite (huge finite weights give NaN or infinite logits, which must never be served or
reported as numbers); the text graph's ids inside the vocabulary. An onnxruntime failure is a
one-line ``ModelError`` naming the graph, never a traceback; sessions are made here too.
numpy (and onnxruntime, to make a session) only: the runtime imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metaprep.errors import ModelError
from metaprep.ids import MISSED_ID

__all__ = ["checked", "checked_ids", "new_session", "one_line", "ran"]

_HINT = "the graph cannot be served; re-export the model directory"


def new_session(path: Path, *, spin: bool) -> Any:
    """An onnxruntime session of the graph at ``path``, on one thread; a ModelError naming it
    if onnxruntime refuses it."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # one thread per batch; batches run on a Model's ``workers`` threads at once (BatchPool): the
    # text path between two runs then overlaps another batch's run instead of idling cores
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.log_severity_level = 4  # its errors are ours to report, on one line
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors are not typed
        raise ModelError(f"onnxruntime cannot load the graph: {one_line(exc)}",
                         path=path) from exc


def one_line(exc: BaseException, limit: int = 400) -> str:
    """An onnxruntime message on one line, cut at ``limit`` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def ran(sess: Any, outputs: Sequence[str] | None, feed: Mapping[str, Any], path: Path
        ) -> list[Any]:
    """``sess.run``; an onnxruntime failure is a ModelError naming the graph (a string that
    cannot be UTF-8, a lone surrogate, is left to the caller as UnicodeEncodeError)."""
    try:
        return list(sess.run(outputs, feed))
    except UnicodeEncodeError:
        raise
    except Exception as exc:  # onnxruntime's errors are not typed
        raise ModelError(f"onnxruntime failed on a batch: {one_line(exc)}", path=path,
                         hint=_HINT) from exc


def checked(out: Any, name: str, rows: int, width: int, path: Path) -> np.ndarray:
    """``out``: a (rows, width) float32 array of finite numbers, else a ModelError."""
    if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != (rows, width):
        got = f"{getattr(out, 'dtype', type(out).__name__)} {list(getattr(out, 'shape', ()))}"
        raise ModelError(f"the graph gave {name} as {got} for {rows} text(s), not float32 "
                         f"[{rows}, {width}]", path=path, hint=_HINT)
    # the sum first: one pass and no temporary array when all is finite (most batches)
    with np.errstate(all="ignore"):  # inf + -inf: no warning line beside the error
        total = out.sum(dtype=np.float64)
    if not np.isfinite(total) and not np.isfinite(out).all():
        raise ModelError(f"the graph gave a NaN or infinite {name} (its weights overflow "
                         "float32)", path=path, hint="the model cannot be served; retrain it")
    return out


def checked_ids(ids: Any, rows: int, vocab_ids: int, path: Path, *, missed: Any = None,
                counts: Any = None) -> np.ndarray:
    """A text graph's ids: int64 (rows, T >= 1), each an id of the vocabulary (``vocab_ids``
    ids: padding, UNK and the words) or, with ``missed`` (the strings of the tokens its map
    lacks), MISSED_ID once per missed string; ``counts`` (rows,) int64 >= 0."""
    ok = isinstance(ids, np.ndarray) and ids.dtype == np.int64 and ids.ndim == 2 and \
        ids.shape[0] == rows and ids.shape[1] >= (0 if missed is not None else 1)
    lo = int(ids.min()) if ok and ids.size else 0
    if ok and ids.size:
        ok = (MISSED_ID if missed is not None else 0) <= lo and int(ids.max()) < vocab_ids
    if ok and missed is not None:
        ok = isinstance(missed, np.ndarray) and missed.ndim == 1 and len(missed) == (
            int(np.count_nonzero(ids == MISSED_ID)) if lo == MISSED_ID else 0)
    if ok and counts is not None:
        ok = isinstance(counts, np.ndarray) and counts.dtype == np.int64 and \
            counts.shape == (rows,) and (counts >= 0).all()
    if not ok:
        raise ModelError(f"the graph gave ids outside the vocabulary or of the wrong shape for "
                         f"{rows} text(s)", path=path, hint=_HINT)
    return ids
