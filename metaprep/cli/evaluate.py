"""`metaprep evaluate`: accuracy, macro-F1 and confusions of a trained run on labelled data."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("evaluate")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--store", type=click.Path(dir_okay=False),
              help="The run's store, if it moved [default: the path recorded in the run].")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("-o", "--out", type=click.Path(),
              help="Also write the metrics as JSON here (a directory gets evaluation.json).")
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--no-verify-store", is_flag=True,
              help="Skip re-hashing the store (for a multi-GB store you trust).")
@click.option("--data-encoding", default="utf-8", show_default=True,
              help="Text encoding of DATA.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(run_dir: str, data: str, store: str | None, as_json: bool, out: str | None,
            batch_size: int, no_verify_store: bool, data_encoding: str, quiet: bool) -> None:
    """Score the run in RUN_DIR on DATA (same formats as `metaprep train`; its labels must be
    among the run's)."""
    from metaprep.learn.evaluate import evaluate_run, format_report
    from metaprep.learn.rundir import write_json

    metrics = evaluate_run(run_dir, data, store_path=store, batch_size=batch_size,
                           verify_store=not no_verify_store, encoding=data_encoding,
                           progress=not quiet)
    if out:
        target = Path(out)
        if target.is_dir() or target.suffix != ".json":
            target.mkdir(parents=True, exist_ok=True)
            target = target / "evaluation.json"
        write_json(target, metrics)
    click.echo(json.dumps(metrics, indent=2) if as_json else format_report(metrics))
