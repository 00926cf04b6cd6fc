"""`metaprep split`: one labelled file -> stratified train/dev/test TSV files."""

from __future__ import annotations

from typing import Any

import click

from metaprep.cli._common import column_options, output_option

_EPILOG = """\b
Examples:
  metaprep split reviews.tsv -o data/
  metaprep split corpus.txt --encoding latin-1 --dev 0.2 --test 0.2 --seed 1 -o data/
  metaprep split tags.jsonl -o data/          # multi-label: detected from the label lists
"""


@click.command("split", epilog=_EPILOG)
@click.argument("data", type=click.Path(dir_okay=False))
@output_option("Directory for train.tsv, dev.tsv and test.tsv.", required=True, file_okay=False)
@click.option("--dev", default=0.15, show_default=True, help="Fraction of each label for dev.")
@click.option("--test", default=0.15, show_default=True,
              help="Fraction of each label for test (0: no test.tsv).")
@click.option("--seed", default=0, show_default=True, help="Shuffle seed.")
@click.option("--encoding", default="utf-8", show_default=True,
              help="Encoding of DATA (e.g. latin-1).")
@click.option("--task", type=click.Choice(["single", "multilabel"]),
              help="single or multilabel [default: detected from DATA, and said so]")
@click.option("--label-sep", default=",", show_default=True,
              help="Multi-label TSV/CSV: the separator inside the label column (also written).")
@column_options()
def command(**kw: Any) -> None:
    """Split a labelled file (TSV/CSV/JSONL/fastText __label__ lines) into train/dev/test TSVs,
    stratified by label and reproducible with --seed."""
    from metaprep import stages

    result = stages.split(stages.SplitOptions(**kw))
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo("  ".join(f"{k}: {v}" for k, v in result.counts.items()) + f"  -> {result.output}")
