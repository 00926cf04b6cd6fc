"""`metaprep triton`: a model directory -> a text-in model for Triton's python backend."""

from __future__ import annotations

from typing import Any

import click

from metaprep.cli._common import output_option

_EPILOG = """\b
Examples:
  metaprep triton model/ -o triton-repo/
  metaprep triton model/ -o triton-repo/ --name sentiment --instances 2 --copy
  tritonserver --model-repository triton-repo/      # README: Serving with Triton
"""


@click.command("triton", epilog=_EPILOG)
@click.argument("model", metavar="MODEL_DIR", type=click.Path(file_okay=False, exists=True))
@output_option("Triton model repository to add the model to (created if missing).",
               required=True, file_okay=False)
@click.option("--name", default="metaprep", show_default=True,
              help="Model name in the repository (and in request URLs).")
@click.option("--max-batch-size", type=int, default=64, show_default=True,
              help="Rows Triton may gather into one call of the runtime.")
@click.option("--instances", type=int, default=1, show_default=True,
              help="Model instances (stub processes, each with its own copy of the model).")
@click.option("--threads", type=int, default=0, show_default=True,
              help="onnxruntime threads per instance; 0: the server's cores / instances.")
@click.option("--queue-delay-us", type=int, default=1000, show_default=True,
              help="How long Triton holds a request to fill a batch (microseconds).")
@click.option("--no-dynamic-batching", "dynamic_batching", flag_value=False, default=True,
              help="Run every request on its own.")
@click.option("--copy", is_flag=True,
              help="Copy the model directory into the repository [default: its absolute path].")
@click.option("--verify", type=click.Choice(["fast", "full", "none"]), default="fast",
              show_default=True, help="Manifest check when Triton loads the model.")
@click.option("--numpy2", is_flag=True,
              help="The serving Triton is 24.11 or newer: allow NumPy 2 in its python backend.")
def command(model: str, output: str, **kw: Any) -> None:
    """Write MODEL_DIR (from `metaprep export-onnx`) as a Triton python-backend model: clients
    send raw text (TEXT, or TEXT_A and TEXT_B for pairs) and get LABEL and PROBABILITIES back,
    computed by metaprep.runtime inside Triton."""
    from metaprep import stages

    result = stages.triton(stages.TritonOptions(model=model, output=output, **kw))
    click.echo(f"wrote {result.path}: inputs {', '.join(result.inputs)}; outputs "
               f"{', '.join(result.outputs)}; labels {', '.join(result.labels)}", err=True)
