"""`metaprep run`: every stage of a pipeline file, skipping the ones whose inputs did not change."""

from __future__ import annotations

import click


@click.command("run")
@click.argument("pipeline_file", metavar="PIPELINE.toml", type=click.Path(dir_okay=False))
@click.option("--artifacts", default="artifacts", show_default=True,
              type=click.Path(file_okay=False),
              help="Where outputs go: <artifacts>/<pipeline name>/<stage>/.")
@click.option("--force", metavar="STAGE", default=None,
              help="Rerun this stage and everything after it even if its inputs did not change.")
@click.option("--dry-run", is_flag=True, help="Print the plan (what runs, what is skipped) only.")
def command(pipeline_file: str, artifacts: str, force: str | None, dry_run: bool) -> None:
    """Run the stages of PIPELINE.toml in order: split, align, train, export, evaluate, predict.

    Each section of the file holds the options of the command of the same name (`proj_dim = 64`
    for `--proj-dim 64`). A stage whose inputs (files, options, upstream stage) are unchanged since
    its last successful run is skipped. A summary table ends the run.
    """
    from metaprep.pipeline import run_pipeline
    from metaprep.pipeline.summary import summary_table

    pipe = run_pipeline(pipeline_file, artifacts=artifacts, force=force, dry_run=dry_run,
                        echo=click.echo)
    if not dry_run:
        click.echo("\n" + summary_table(pipe))
