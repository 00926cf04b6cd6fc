"""The export stage: a trained run -> a model directory that onnxruntime serves alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metaprep.errors import ConfigError
from metaprep.outputs import claim_outputs, is_model_dir
from metaprep.stages._common import PathLike, _in, _name, _out, _req

__all__ = ["ExportOptions", "ExportResult", "export"]


@dataclass(frozen=True)
class ExportOptions:
    run: PathLike | None = _in()  # the run directory to export
    output: PathLike | None = _out()  # the model directory to create
    front_end: bool = False  # also front_end.onnx: ids -> token and sentence embeddings
    fold: bool | None = None  # fold the front end into one table [whenever the method allows]
    table_dtype: str = "float32"  # float16 halves the tables (cast after the gather)
    quantize: str | None = None  # int8: dynamic quantization of MatMul/LSTM weights
    max_accuracy_drop: float = 0.005  # int8 tables are kept only within this dev-accuracy drop
    dev: PathLike | None = _in()  # labelled data for the checks [the run's dev file]
    store: PathLike | None = _in()  # the run's store, if it moved [the recorded path]
    verify_store: bool = True  # re-hash the store against the run's record
    tolerance: float = 1e-5  # parity gate: |onnx - torch| <= tolerance + rtol * |torch|
    rtol: float = 1e-5  # the gate's relative part: float32 rounding grows with the logits
    triton: PathLike | None = _out()  # also write a Triton model repository entry here
    triton_name: str = _name("metaprep")  # the model's name (its folder) in the Triton repository
    force: bool = False  # replace an existing model directory written by metaprep
    quiet: bool = False  # no progress bars


@dataclass(frozen=True)
class ExportResult:
    model: Path
    files: int
    bytes: int
    manifest: Any  # metaprep.runtime.modeldir.Manifest


def export(options: ExportOptions) -> ExportResult:
    """A trained run -> a model directory that onnxruntime serves alone (docs/model-dir.md)."""
    from metaprep.exporter.run import ExportOptions as GraphOptions
    from metaprep.exporter.run import export_run
    from metaprep.exporter.triton import check_triton_name

    o = options
    settings = GraphOptions(
        fold=o.fold, front_end=o.front_end, table_dtype=o.table_dtype, quantize=o.quantize,
        max_accuracy_drop=o.max_accuracy_drop, tolerance=o.tolerance,
        rtol=o.rtol,
        dev=o.dev, store=o.store, verify_store=o.verify_store, triton=o.triton,
        triton_name=o.triton_name, force=o.force, progress=not o.quiet)
    out = Path(_req(o.output, "output", "export"))
    # the Triton entry, REPO/NAME, is what is written (and locked): its name is checked first
    entry = None if o.triton is None else Path(o.triton) / check_triton_name(o.triton_name)
    with claim_outputs("export", o, {"output": out, "triton": entry}):
        if o.force and out.exists() and not is_model_dir(out):
            raise ConfigError("is not a metaprep model directory: --force replaces only a model "
                              "directory that export-onnx wrote", path=out,
                              hint="remove it yourself, or write elsewhere")
        manifest = export_run(_req(o.run, "run", "export"), out, options=settings)
    size = sum(f.bytes for f in manifest.files.values())
    return ExportResult(out, len(manifest.files), size, manifest)
