"""The export stage: a trained run -> a model directory that onnxruntime serves alone."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from metaprep.errors import ConfigError, ExportError
from metaprep.outputs import claim_outputs
from metaprep.stages._common import PathLike, input_field, name_field, output_field, required

if TYPE_CHECKING:
    from metaprep.runtime.modeldir import Manifest

__all__ = ["ExportOptions", "ExportResult", "export"]


@dataclass(frozen=True)
class ExportOptions:
    """What ``export`` (and ``metaprep export-onnx``, and a pipeline's ``[export]``) takes; the
    exporter reads these options as they are."""

    run: PathLike | None = input_field()  # the run directory to export
    output: PathLike | None = output_field()  # the model directory to create
    front_end: bool = False  # also front_end.onnx: ids -> token and sentence embeddings
    fold: bool | None = None  # fold the front end into one table [whenever the method allows]
    table_dtype: str = "float32"  # float16 halves the tables (cast after the gather)
    quantize: str | None = None  # int8: dynamic quantization of MatMul/LSTM weights
    max_accuracy_drop: float = 0.005  # int8 tables are kept only within this dev-accuracy drop
    dev: PathLike | None = input_field()  # labelled data for the checks [the run's dev file]
    store: PathLike | None = input_field()  # the run's store, if it moved [the recorded path]
    verify_store: bool = True  # re-hash the store against the run's record
    tolerance: float = 1e-5  # parity gate: |onnx - torch| <= tolerance + rtol * |torch|
    # the gate's relative part: float32 rounding grows with the logits' size (41 classes with
    # logits up to 34 differed by 1.1e-5 on a valid model); a real mismatch is far above 1e-5
    rtol: float = 1e-5
    triton: PathLike | None = output_field()  # also write a Triton model repository entry here
    triton_name: str = name_field("metaprep")  # the model's name (folder) in the Triton repository
    force: bool = False  # replace an existing model directory written by metaprep
    quiet: bool = False  # no progress bars

    def validate(self, method: str | None = None) -> None:
        """Option errors; the method-dependent ones only once the run's method is known."""
        from metaprep.exporter.graphspec import FOLDABLE
        from metaprep.exporter.triton import check_triton_name

        if self.table_dtype not in ("float32", "float16"):
            raise ExportError(f"--table-dtype must be float32 or float16, not {self.table_dtype}")
        if self.quantize not in (None, "int8"):
            raise ExportError(f"--quantize must be int8, not {self.quantize}")
        if self.quantize and self.table_dtype != "float32":
            raise ExportError("--quantize int8 and --table-dtype float16 cannot be combined",
                              hint="pick one of them")
        if self.fold and method is not None and method not in FOLDABLE:
            raise ExportError(f"a {method} front end depends on context and cannot be folded",
                              hint="drop --fold (the projections are still baked)")
        for name, value, most in (("--tolerance", self.tolerance, math.inf),
                                  ("--rtol", self.rtol, math.inf),
                                  ("--max-accuracy-drop", self.max_accuracy_drop, 1.0)):
            # NaN failed every check with a puzzling message; inf passed every graph
            if not (isinstance(value, (int, float)) and math.isfinite(value)
                    and 0 <= value <= most):
                raise ExportError(f"{name} must be a finite number from 0"
                                  f"{'' if most == math.inf else f' to {most:g}'}, not {value}")
        if self.triton is not None:
            check_triton_name(self.triton_name)


@dataclass(frozen=True)
class ExportResult:
    model: Path
    files: int
    bytes: int
    manifest: Manifest


def export(options: ExportOptions) -> ExportResult:
    """A trained run -> a model directory that onnxruntime serves alone (docs/model-dir.md)."""
    from metaprep.exporter.run import export_run
    from metaprep.exporter.triton import check_triton_name
    from metaprep.runtime.modeldir import is_model_dir

    o = options
    out = Path(required(o.output, "output", "export"))
    # the Triton entry, REPO/NAME, is what is written (and locked): its name is checked first
    entry = None if o.triton is None else Path(o.triton) / check_triton_name(o.triton_name)
    with claim_outputs("export", o, {"output": out, "triton": entry}):
        if o.force and out.exists() and not is_model_dir(out):
            raise ConfigError("is not a metaprep model directory: --force replaces only a model "
                              "directory that export-onnx wrote", path=out,
                              hint="remove it yourself, or write elsewhere")
        manifest = export_run(required(o.run, "run", "export"), out, options=o)
    size = sum(f.bytes for f in manifest.files.values())
    return ExportResult(out, len(manifest.files), size, manifest)
