"""`metaprep run`: every stage of a pipeline file, skipping the ones whose inputs did not change."""

from __future__ import annotations

import click

_EPILOG = """\b
Stages, in the order they run (one [section] each):
  split     one labelled file -> train/dev/test TSVs
  align     embedding files -> the aligned HDF5 store
  train     store + data -> a trained run
  export    run -> an ONNX model directory (export-onnx)
  evaluate  run + labelled data -> metrics
  predict   model directory + texts -> JSONL predictions

\b
Examples:
  metaprep run quickstart                       # the packaged default, from any directory
  metaprep run pipelines/glove-minilm.toml --dry-run
  metaprep run my.toml --force train            # rerun train and everything after it
"""


@click.command("run", epilog=_EPILOG)
@click.argument("pipeline_file", metavar="PIPELINE")
@click.option("--artifacts", default="artifacts", show_default=True,
              type=click.Path(file_okay=False),
              help="Where outputs go: <artifacts>/<pipeline name>/<stage>/.")
@click.option("--force", metavar="STAGE", default=None,
              help="Rerun this stage and everything after it even if its inputs did not change.")
@click.option("--dry-run", is_flag=True, help="Print the plan (what runs, what is skipped) only.")
def command(pipeline_file: str, artifacts: str, force: str | None, dry_run: bool) -> None:
    """Run the stages of PIPELINE (a .toml file, or the name of a packaged pipeline).

    Each section of the file holds the options of its stage (`proj_dim = 64`, as the command's
    `--proj-dim 64`), checked with their types before anything runs. A stage whose inputs
    (files, options, upstream stage) are unchanged since its last successful run is skipped.
    A summary table ends the run.
    """
    from metaprep.pipeline import run_pipeline
    from metaprep.pipeline.summary import summary_table

    pipe = run_pipeline(pipeline_file, artifacts=artifacts, force=force, dry_run=dry_run,
                        echo=click.echo)
    if not dry_run:
        click.echo("\n" + summary_table(pipe))
