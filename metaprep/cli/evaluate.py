"""`metaprep evaluate`: accuracy, macro-F1 and confusions of a trained run on labelled data."""

from __future__ import annotations

import json
from typing import Any

import click

from metaprep.cli._common import column_options, output_option, quiet_option

_EPILOG = """\b
Examples:
  metaprep evaluate run/ test.tsv
  metaprep evaluate run/ test.tsv --json -o scores.json
"""


@click.command("evaluate", epilog=_EPILOG)
@click.argument("run", metavar="RUN_DIR", type=click.Path(file_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--store", type=click.Path(dir_okay=False),
              help="The run's store, if it moved [default: the path recorded in the run].")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@output_option("Also write the metrics as JSON here (a directory gets evaluation.json).")
@click.option("--batch-size", type=int, default=256, show_default=True,
              help="Examples per forward pass.")
@click.option("--no-verify-store", is_flag=True,
              help="Skip re-hashing the store (for a multi-GB store you trust).")
@click.option("--data-encoding", default="utf-8", show_default=True,
              help="Text encoding of DATA.")
@quiet_option()
@column_options(default_from_run=True)
def command(as_json: bool, no_verify_store: bool, **kw: Any) -> None:
    """Score the run in RUN_DIR on DATA (same formats as `metaprep train`; its labels must be
    among the run's)."""
    from metaprep import stages
    from metaprep.learn.evaluate import format_report

    result = stages.evaluate(stages.EvaluateOptions(verify_store=not no_verify_store, **kw))
    click.echo(json.dumps(result.metrics, indent=2) if as_json
               else format_report(result.metrics))
