"""`metaprep split`: one labelled file -> stratified train/dev/test TSV files."""

from __future__ import annotations

import click


@click.command("split")
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for train.tsv, dev.tsv and test.tsv.")
@click.option("--dev", default=0.15, show_default=True, help="Fraction of each label for dev.")
@click.option("--test", default=0.15, show_default=True,
              help="Fraction of each label for test (0: no test.tsv).")
@click.option("--seed", default=0, show_default=True, help="Shuffle seed.")
@click.option("--encoding", default="utf-8", show_default=True,
              help="Encoding of DATA (e.g. latin-1).")
def command(data: str, out_dir: str, dev: float, test: float, seed: int, encoding: str) -> None:
    """Split a labelled file (TSV/CSV/JSONL/fastText __label__ lines) into train/dev/test TSVs,
    stratified by label and reproducible with --seed."""
    from metaprep.prep.split import split_file

    counts = split_file(data, out_dir, dev=dev, test=test, seed=seed, encoding=encoding)
    click.echo("  ".join(f"{k}: {v}" for k, v in counts.items()) + f"  -> {out_dir}")
