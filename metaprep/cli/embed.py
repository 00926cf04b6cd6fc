"""`metaprep embed`: sentence vectors from a model directory, with onnxruntime only."""

from __future__ import annotations

from pathlib import Path

import click

from metaprep.cli._serve import Warner, serve_options

__all__ = ["command"]

_EPILOG = """\b
Examples:
  metaprep embed model/ texts.txt -o vectors.npy
  metaprep embed model/ docs.jsonl --column body -o vectors.jsonl -q
"""


@click.command("embed", epilog=_EPILOG)
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("input_path", metavar="[FILE|-]", default="-")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="OUT.npy (float32 matrix, one row per input record) or OUT.jsonl "
                   "({\"record\", \"line\", \"embedding\"} per record, or \"error\").")
@serve_options
def command(model_dir: str, input_path: str, output: str, fmt: str, columns: tuple[str, ...],
            batch_size: int, threads: int | None, verify: str, quiet: bool) -> None:
    """Write the sentence vector of every text (the encoder output the classifier reads).

    In a .npy file, row i belongs to the i-th input record; a record that could not be read
    (bad JSON, a missing column) gets a row of NaN (in .jsonl an "error") and a warning with its
    line number. The rows are streamed to disk, so memory does not grow with the input.
    """
    from metaprep import stages

    opts = stages.EmbedOptions(model_dir=Path(model_dir), input=input_path, output=Path(output),
                               input_format=fmt, columns=columns, batch_size=batch_size,
                               threads=threads, verify=verify, quiet=quiet)
    warn = Warner()
    result = stages.embed(opts, warn=warn)
    warn.finish()
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if not quiet:
        click.echo(f"wrote {output} ({result.records} x {result.dim})", err=True)
