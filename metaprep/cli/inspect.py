"""`metaprep inspect`: coverage, OOV filling and overlap of an aligned store."""

from __future__ import annotations

import click

__all__ = ["command"]


_EPILOG = """\b
Examples:
  metaprep inspect store.h5
  metaprep inspect store.h5 --json > summary.json
"""


@click.command("inspect", epilog=_EPILOG)
@click.argument("store", metavar="STORE.h5", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def command(store: str, as_json: bool) -> None:
    """Summarise STORE.h5: per source the rows read, dim, dtype, format, coverage (present / V),
    OOV rows by filling strategy, duplicates, case-step counts and map fit; then the number of
    words present in both of each pair of sources."""
    import json

    from metaprep import stages
    from metaprep.prep.inspect import format_summary

    summary = stages.inspect(stages.InspectOptions(store=store)).summary
    click.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))
