"""`metaprep train`: fit a (contextual) dynamic meta-embedding classifier on an aligned store.

The training options' flags are made from their one declaration (learn/config.py RunConfig):
those marked ``flag`` get their own, the rest are reached with ``--set KEY=VALUE``.
"""

from __future__ import annotations

from typing import Any

import click

from metaprep.cli._common import output_option, quiet_option
from metaprep.cli._grouped import GroupedCommand, in_group, set_option, training_options
from metaprep.learn.config import PRESETS

_EPILOG = """\b
Examples:
  metaprep train --store store.h5 --train train.tsv --dev dev.tsv --method cdme -o run/
  metaprep train --store s.h5 --train t.tsv --dev d.tsv --method single:glove -o run1/
  metaprep train --store s.h5 --train t.tsv --dev d.tsv --preset fast -o run2/
  metaprep train --store s.h5 --train t.tsv --dev d.tsv --preset fast --set encoder=cnn -o r3/
  metaprep train --store s.h5 --train t.tsv --dev d.tsv --preset fast --members 3 -o ens/
  metaprep train --store s.h5 --train t.tsv --dev d.tsv --preset fast --teacher ens/ -o r4/
  metaprep train --resume -o run/        # continue a killed run: nothing else is needed
  metaprep train --store s.h5 --train tags.tsv --dev d.tsv --task multilabel -o run/
  torchrun --nproc_per_node 2 -m metaprep train --store store.h5 ...   # DDP (gloo on CPU)

Options not given take the preset's values, else the defaults shown; with --resume, the run's
saved values, and a value given that differs from the saved one is an error.
"""


def _recipe(name: str) -> str:
    return ", ".join(f"{k}={v}" for k, v in PRESETS[name].items())


@click.command("train", cls=GroupedCommand, epilog=_EPILOG)
@in_group("data", click.option("--store", type=click.Path(dir_okay=False), help="Aligned HDF5 "
          "store (from `metaprep align`). Required unless --resume."))
@in_group("data", click.option("--train", "train_path", type=click.Path(dir_okay=False),
          help="Training data: TSV/CSV/JSONL with text,label (or text_a,text_b,label), or "
               "fastText __label__ lines. Required unless --resume."))
@in_group("data", click.option("--dev", type=click.Path(dir_okay=False), help="Dev data (lr "
          "decay, early stopping, best epoch). Required unless --resume."))
@in_group("data", click.option("--test", type=click.Path(dir_okay=False),
          help="Test data, scored with the best weights at the end."))
@in_group("model", click.option("--preset", type=click.Choice(list(PRESETS)), help="A measured "
          "recipe (README: what each gives). fast: " + _recipe("fast") + ". accurate: "
          + _recipe("accurate") + ". Options given win over it; config.json records the "
          "resolved values."))
@in_group("teacher", click.option("--teacher", type=click.Path(file_okay=False),
          help="Learn from a trained run or ensemble directory too (distillation): its "
               "probabilities on the training texts join the labels in the loss. Same store, "
               "labels and tokenizer."))
@in_group("training", click.option("--threads", type=int, help="torch CPU threads [default: "
          "torch's choice]. Runs are bit-identical only at the same thread count."))
@in_group("output", output_option("Run directory [default: artifacts/runs/<time>-<method>].",
                                  file_okay=False))
@in_group("output", click.option("--resume", is_flag=True, help="Continue the run in -o from "
          "its last checkpoint (its saved config and data are used)."))
@in_group("output", click.option("--keep-checkpoints", is_flag=True, help="Keep a finished "
          "run's checkpoints (optimizer state, last and best weights, about 4x the model; removed "
          "by default: evaluate and export need only the best weights)."))
@in_group("output", click.option("--plots", is_flag=True, help="Also draw the learning curves "
          "and the attention by source as PNGs in the run directory (about a second more)."))
@in_group("output", quiet_option())
@training_options
@set_option
def command(train_path: str | None, config: dict[str, Any], settings: dict[str, Any],
            **kw: Any) -> None:
    """Train DME / CDME (or a baseline) plus a sentence encoder and classifier."""
    from metaprep import stages
    from metaprep.distributed import world
    from metaprep.learn.ensemble import ensemble_metrics
    from metaprep.learn.rundir import TEACHER

    result = stages.train(stages.TrainOptions(train=train_path, config=config, **settings, **kw))
    if not world().main:
        return  # under torchrun, rank 0 reports
    m = result.metrics
    click.echo(f"run: {result.run}")
    if m["dev"].get("task") == "multilabel":
        for split in ("dev", "test"):
            if m.get(split):
                s = m[split]
                auc = "n/a" if s["mean_auc"] is None else f"{s['mean_auc']:.4f}"
                click.echo(f"{split}: micro-F1 {s['micro_f1']:.4f} macro-F1 "
                           f"{s['macro_f1']:.4f} mean AUC {auc} (best epoch {m['best_epoch']})")
        return
    if "member_metrics" in m:  # an ensemble: each member, then their average
        for k, one in enumerate(m["member_metrics"]):
            test = "" if one["test"] is None else f", test accuracy {one['test']:.4f}"
            click.echo(f"member {k}: best epoch {one['best_epoch']}, dev accuracy "
                       f"{one['dev']:.4f}{test}")
        click.echo(f"ensemble of {len(m['member_metrics'])}: dev accuracy "
                   f"{m['dev']['accuracy']:.4f} macro-F1 {m['dev']['macro_f1']:.4f}")
    else:
        t = ensemble_metrics(result.run / TEACHER)
        if t is not None:  # a run that trained its own teacher: the teacher's figures too
            shown = "" if not t.get("test") else f", test accuracy {t['test']['accuracy']:.4f}"
            click.echo(f"teacher ({result.run / TEACHER}): dev accuracy "
                       f"{t['dev']['accuracy']:.4f}{shown}")
        click.echo(f"best epoch {m['best_epoch']}: dev accuracy {m['dev']['accuracy']:.4f}"
                   f" macro-F1 {m['dev']['macro_f1']:.4f}")
    if m.get("test"):
        click.echo(f"test accuracy {m['test']['accuracy']:.4f} "
                   f"macro-F1 {m['test']['macro_f1']:.4f}")
