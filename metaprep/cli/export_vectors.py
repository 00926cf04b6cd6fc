"""`metaprep export-vectors`: one aligned source (or all, concatenated) as a word2vec file."""

from __future__ import annotations

import click

from metaprep.cli._common import output_option, quiet_option

__all__ = ["command"]


_EPILOG = """\b
Examples:
  metaprep export-vectors store.h5 glove -o glove.aligned.txt
  metaprep export-vectors store.h5 --concat --binary -o all.bin
"""


@click.command("export-vectors", epilog=_EPILOG)
@click.argument("store", metavar="STORE.h5", type=click.Path(dir_okay=False))
@click.argument("source", required=False, metavar="[NAME]")
@click.option("--concat", is_flag=True, help="All sources side by side, in store order.")
@output_option("The file to write (temp file first, then renamed).", required=True,
               dir_okay=False)
@click.option("--binary", is_flag=True, help="word2vec binary instead of text.")
@click.option("--only-present", is_flag=True,
              help="Only words the source's file had (with --concat: every source's).")
@quiet_option("No progress bar.")
def command(store: str, source: str | None, concat: bool, output: str, binary: bool,
            only_present: bool, quiet: bool) -> None:
    """Write source NAME of STORE.h5 (or --concat) as word2vec text or --binary, loadable with
    gensim's KeyedVectors.load_word2vec_format (binary=True for --binary)."""
    from metaprep import stages

    r = stages.export_vectors(stages.ExportVectorsOptions(
        store=store, output=output, source=source, concat=concat, binary=binary,
        only_present=only_present, quiet=quiet))
    click.echo(f"wrote {r.rows:,} vectors of dim {r.dim} ({'+'.join(r.sources)}) to {r.path}")
    if r.skipped_whitespace:
        click.echo(f"left out {r.skipped_whitespace:,} word(s) containing whitespace, e.g. "
                   + ", ".join(repr(w) for w in r.skipped_examples), err=True)
