"""`metaprep predict`: labels and probabilities from a model directory, with onnxruntime only."""

from __future__ import annotations

from pathlib import Path

import click

from metaprep.cli._serve import Warner, serve_options

__all__ = ["command"]

_EPILOG = """\b
Examples:
  metaprep predict model/ reviews.tsv --column review -o predictions.jsonl
  cat texts.txt | metaprep predict model/ - -q
  metaprep predict model/ texts.txt --top-k 3      # the 3 most probable labels only
"""


@click.command("predict", epilog=_EPILOG)
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("input_path", metavar="[FILE|-]", default="-")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write JSONL here [default: stdout].")
@click.option("--top-k", type=click.IntRange(min=1), default=None,
              help="Write the probabilities of the K most probable labels only, most "
                   "probable first (multi-label: at most K labels too) [default: every "
                   "label].")
@serve_options
def command(model_dir: str, input_path: str, output: str | None, top_k: int | None, fmt: str,
            columns: tuple[str, ...], batch_size: int, threads: int | None, verify: str,
            quiet: bool) -> None:
    """Classify texts with an exported model (no torch needed).

    Reads FILE (or stdin) and writes one JSON line per input record, in order:
    {"record": N, "line": L, "label": ..., "probabilities": {label: p, ...}}, or
    {"record": N, "line": L, "error": ...} for a record that could not be read. N counts records
    from 1 (a TSV header is not one), L is the input line. Empty lines get the model's
    prediction for an empty text; texts longer than the model's max_tokens are truncated
    (reported once on stderr); bytes that are not UTF-8 are replaced (reported with their line).
    """
    from metaprep import stages

    opts = stages.PredictOptions(model_dir=Path(model_dir), input=input_path,
                                 output=None if output in (None, "-") else Path(output),
                                 input_format=fmt, columns=columns, batch_size=batch_size,
                                 threads=threads, verify=verify, quiet=quiet, top_k=top_k)
    warn = Warner()
    result = stages.predict(opts, warn=warn)
    warn.finish()
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
