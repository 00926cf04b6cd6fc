"""`metaprep export-onnx`: a trained run -> a model directory for onnxruntime."""

from __future__ import annotations

import click


@click.command("export-onnx")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="Model directory to create (built beside it, renamed when all checks pass).")
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
@click.option("--max-tokens", type=int, default=None,
              help="Runtime truncation length [default: the tokenizer's, else 512].")
@click.option("--dev", type=click.Path(dir_okay=False),
              help="Labelled data for the checks [default: the run's dev file].")
@click.option("--store", type=click.Path(dir_okay=False),
              help="The run's store, if it moved [default: the recorded path].")
@click.option("--no-verify-store", is_flag=True,
              help="Skip re-hashing the store (you trust it is the run's).")
@click.option("--tolerance", type=float, default=1e-5, show_default=True,
              help="Parity gate: max abs logit difference, onnxruntime vs torch (float32).")
@click.option("--triton", type=click.Path(file_okay=False),
              help="Also write a Triton model repository entry in this directory.")
@click.option("--triton-name", default="metaprep", show_default=True,
              help="Model name in the Triton repository.")
@click.option("--force", is_flag=True, help="Replace an existing model directory.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def command(run_dir: str, out: str, front_end: bool, fold: bool | None, table_dtype: str,
            quantize: str | None, max_accuracy_drop: float, max_tokens: int | None,
            dev: str | None, store: str | None, no_verify_store: bool, tolerance: float,
            triton: str | None, triton_name: str, force: bool, no_progress: bool) -> None:
    """Export RUN_DIR (from `metaprep train`) to an ONNX model directory.

    The export checks itself: onnxruntime must match the torch model within --tolerance on the
    run's dev data and on random batches (batch 1, length 1, heavy padding); otherwise nothing
    is written. float16 and int8 variants report their dev accuracy change.
    """
    from metaprep.serve.export import ExportOptions, export_run

    opts = ExportOptions(
        fold=fold, front_end=front_end, table_dtype=table_dtype, quantize=quantize,
        max_accuracy_drop=max_accuracy_drop, max_tokens=max_tokens, tolerance=tolerance,
        dev=dev, store=store, verify_store=not no_verify_store, triton=triton,
        triton_name=triton_name, force=force, progress=not no_progress,
    )
    manifest = export_run(run_dir, out, options=opts)
    size = sum(f.bytes for f in manifest.files.values())
    click.echo(f"wrote {out} ({len(manifest.files)} files, {size / 1e6:.1f} MB)", err=True)
