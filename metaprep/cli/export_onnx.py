"""`metaprep export-onnx`: a trained run -> a model directory for onnxruntime."""

from __future__ import annotations

from typing import Any

import click

from metaprep.cli._common import output_option, quiet_option

_EPILOG = """\b
Examples:
  metaprep export-onnx run/ -o model/
  metaprep export-onnx run/ -o model-int8/ --quantize int8
  metaprep export-onnx run/ -o model/ --front-end --triton triton-repo/
"""


@click.command("export-onnx", epilog=_EPILOG)
@click.argument("run", metavar="RUN_DIR", type=click.Path(file_okay=False))
@output_option("Model directory to create (built beside it, renamed when all checks pass).",
               required=True, file_okay=False)
@click.option("--front-end", is_flag=True,
              help="Also export the front end alone: ids + lengths -> per-token meta-embeddings "
                   "and the sentence vector (front_end.onnx).")
@click.option("--fold/--no-fold", default=None,
              help="Fold the whole front end into one table (one Gather per token) "
                   "[default: on for dme, sum, single, concat; cdme cannot fold].")
@click.option("--table-dtype", type=click.Choice(["float32", "float16"]), default="float32",
              show_default=True, help="Store tables in half precision (cast after the gather).")
@click.option("--quantize", type=click.Choice(["int8"]), default=None,
              help="Dynamic int8 quantization of MatMul/LSTM weights; tables too if the dev "
                   "accuracy allows (--max-accuracy-drop).")
@click.option("--max-accuracy-drop", type=float, default=0.005, show_default=True,
              help="int8 tables are kept only if dev accuracy drops at most this much.")
@click.option("--dev", type=click.Path(dir_okay=False),
              help="Labelled data for the checks [default: the run's dev file].")
@click.option("--store", type=click.Path(dir_okay=False),
              help="The run's store, if it moved [default: the recorded path].")
@click.option("--no-verify-store", is_flag=True,
              help="Skip re-hashing the store (you trust it is the run's).")
@click.option("--tolerance", type=float, default=1e-5, show_default=True,
              help="Parity gate: |onnxruntime - torch| <= tolerance + rtol x |torch| for every "
                   "logit and probability (float32).")
@click.option("--rtol", type=float, default=1e-5, show_default=True,
              help="The parity gate's relative part: float32 rounding grows with the logits.")
@click.option("--triton", type=click.Path(file_okay=False),
              help="Also write a Triton onnxruntime-backend entry (ids in) in this directory; "
                   "for text in, see `metaprep triton`.")
@click.option("--triton-name", default="metaprep", show_default=True,
              help="Model name in the Triton repository.")
@click.option("--force", is_flag=True, help="Replace an existing model directory.")
@quiet_option()
def command(no_verify_store: bool, **kw: Any) -> None:
    """Export RUN_DIR (from `metaprep train`) to an ONNX model directory.

    The export checks itself: onnxruntime must match the torch model within --tolerance on the
    run's dev data and on random batches (batch 1, length 1, heavy padding); otherwise nothing
    is written. float16 and int8 variants report their dev accuracy change.
    """
    from metaprep import stages

    result = stages.export(stages.ExportOptions(verify_store=not no_verify_store, **kw))
    click.echo(f"wrote {result.model} ({result.files} files, {result.bytes / 1e6:.1f} MB)",
               err=True)
