"""int8 variants of an exported model: onnxruntime's dynamic quantization of the MatMul and LSTM
weights, and of the tables when the dev set says accuracy allows it."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaprep.errors import ExportError
from metaprep.exporter.onnx_data import realign_external_data
from metaprep.runtime.modeldir import DATA_FILE, GRAPH_FILES

if TYPE_CHECKING:
    from metaprep.exporter.build import DevData
    from metaprep.stages import ExportOptions

__all__ = ["choose_int8", "quantize_model"]


# --- variants ----------------------------------------------------------------------------------
def quantize_model(src: Path, dst: Path, *, tables: bool) -> Path:
    """dst/model.onnx (+ the quantizer's model.onnx.data): src's model with int8 MatMul / LSTM
    weights (and tables, with ``tables``), dynamically quantized. choose_int8 moves the chosen one
    into the model directory, its tensors into model.data."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst.mkdir()
    ops = ["MatMul", "LSTM"] + (["Gather"] if tables else [])
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs advice about image models on the root logger
    try:
        quantize_dynamic(src / GRAPH_FILES["model"], dst / GRAPH_FILES["model"],
                         op_types_to_quantize=ops, weight_type=QuantType.QInt8,
                         use_external_data_format=True)
    except Exception as exc:  # the quantizer raises assorted untyped errors
        raise ExportError(f"int8 quantization failed: {exc}", path=src) from exc
    finally:
        root.setLevel(level)
    return dst / GRAPH_FILES["model"]


def choose_int8(tmp: Path, reference: Any, dev: DevData | None, pair: bool, opts: ExportOptions,
                 log: Callable[[str], None]) -> list[str]:
    """Quantize MatMul/LSTM weights; also the tables when dev accuracy stays within
    ``max_accuracy_drop`` of the weights-only model (never without dev data to check on)."""
    from metaprep.exporter.parity import accuracy_change, accuracy_feeds, ort_runner

    chosen = ["MatMul", "LSTM"]
    pick = quantize_model(tmp, tmp / "int8", tables=False).parent
    if dev is not None:
        feeds, gold = accuracy_feeds(dev.examples, dev.gold, pair)
        t = dev.thresholds  # multi-label: the drop is in dev micro-F1
        weights_only = accuracy_change(reference, ort_runner(pick / GRAPH_FILES["model"]),
                                       feeds, gold, thresholds=t)
        tabled = quantize_model(tmp, tmp / "int8-tables", tables=True).parent
        with_tables = accuracy_change(reference, ort_runner(tabled / GRAPH_FILES["model"]),
                                      feeds, gold, thresholds=t)
        log(f"int8 tables: dev {dev.metric} {with_tables['onnx_accuracy']:.4f} vs "
            f"{weights_only['onnx_accuracy']:.4f} with float32 tables")
        drop = weights_only["onnx_accuracy"] - with_tables["onnx_accuracy"]
        if drop <= opts.max_accuracy_drop:
            pick = tabled
            chosen.append("Gather")
    # model.data as documented: rewritten for the int8 graph alone, or, when the float32
    # front-end graph reads its tables from it, with the int8 tensors appended after them (a
    # table left in float32 is shared, not stored twice)
    front_end = tmp / GRAPH_FILES["front_end"]
    shared = front_end if front_end.exists() else None
    realign_external_data(pick / GRAPH_FILES["model"], tmp / GRAPH_FILES["model"], DATA_FILE,
                          append=shared is not None, share=shared)
    for d in ("int8", "int8-tables"):
        shutil.rmtree(tmp / d, ignore_errors=True)
    return chosen
