"""`metaprep train`: fit a (contextual) dynamic meta-embedding classifier on an aligned store."""

from __future__ import annotations

import os
from typing import Any

import click

from metaprep.cli._common import column_options, output_option, quiet_option
from metaprep.learn.config import ENCODERS, PRESETS

_EPILOG = """\b
Examples:
  metaprep train --store store.h5 --train train.tsv --dev dev.tsv --method cdme -o run/
  metaprep train --store store.h5 --train t.tsv --dev d.tsv --method single:glove -o run1/
  metaprep train --store store.h5 --train t.tsv --dev d.tsv --preset fast -o run2/
  metaprep train --store store.h5 --train t.tsv --dev d.tsv --preset fast --proj-dim 128 -o r3/
  metaprep train --store s.h5 --train t.tsv --dev d.tsv --preset fast --encoder cnn -o r4/
  metaprep train --store s.h5 --train t.tsv --dev d.tsv --preset fast --learned-subwords 200000 \
      -o r5/
  metaprep train --store s.h5 --train t.tsv --dev d.tsv --preset fast --members 3 -o ens/
  metaprep train --store s.h5 --train t.tsv --dev d.tsv --preset fast --teacher ens/ -o r6/
  metaprep train --resume -o run/        # continue a killed run: nothing else is needed
  metaprep train --store s.h5 --train tags.tsv --dev d.tsv --task multilabel -o run/
  torchrun --nproc_per_node 2 -m metaprep train --store store.h5 ...   # DDP (gloo on CPU)

Hyper-parameters not given take the defaults shown ([default: ...]); with --resume, the run's
saved values, and a value given that differs from the saved one is an error.
"""


def _recipe(name: str) -> str:
    return ", ".join(f"{k.replace('_', '-')} {v}" for k, v in PRESETS[name].items())


def _hyper(name: str, kind: Any, default: object, text: str) -> Any:
    return click.option(name, type=kind, default=None, help=f"{text} [default: {default}]")


def _widths(ctx: click.Context, param: click.Parameter, value: str | None
            ) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(w) for w in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not comma-separated whole numbers, e.g. 1,2,3",
                                 ctx=ctx, param=param) from None


@click.command("train", epilog=_EPILOG)
@click.option("--store", type=click.Path(dir_okay=False),
              help="Aligned HDF5 store (from `metaprep align`). Required unless --resume.")
@click.option("--train", "train_path", type=click.Path(dir_okay=False),
              help="Training data: TSV/CSV/JSONL with text,label (or text_a,text_b,label), "
                   "or fastText __label__ lines. Required unless --resume.")
@click.option("--dev", type=click.Path(dir_okay=False),
              help="Dev data (lr decay, early stopping, best epoch). Required unless --resume.")
@click.option("--test", type=click.Path(dir_okay=False), help="Test data, scored with the best "
              "weights at the end.")
@output_option("Run directory [default: artifacts/runs/<timestamp>-<method>].", file_okay=False)
@_hyper("--method", str, "dme", "dme, cdme, concat, sum, or single:NAME (one source). "
        "dme (with --source-norm layernorm) led our ablation (README).")
@click.option("--preset", type=click.Choice(list(PRESETS)), default=None,
              help="A measured recipe (README: what each gives). fast: " + _recipe("fast")
              + ". accurate: " + _recipe("accurate") + ". Options given explicitly override "
              "it; the run's config.json records the resolved values.")
@click.option("--sources", help="Comma-separated store sources to use [default: all].")
@_hyper("--proj-dim", int, 256, "Size d' of the projected embeddings.")
@_hyper("--gating", click.Choice(["softmax", "sigmoid"]), "softmax",
        "Softmax over sources, or a sigmoid gate per source.")
@_hyper("--context-hidden", int, 2, "CDME scorer BiLSTM units per direction.")
@click.option("--mask-missing/--no-mask-missing", default=None,
              help="Give sources without a word zero weight (off: the paper's zero vectors). "
                   "[default: on]")
@click.option("--use-derived/--no-use-derived", default=None,
              help="Count OOV rows that align derived from the word itself (--oov subword or "
                   "map) as present; zero/mean/random fillers never are. [default: on]")
@click.option("--mix-relu/--no-mix-relu", default=None, help="ReLU after the mix. [default: off]")
@_hyper("--mix-dropout", float, 0.0, "Dropout on the meta-embeddings.")
@_hyper("--source-norm", click.Choice(["none", "center", "scale", "layernorm"]), "layernorm",
        "Normalise each source before its projection: centre on its mean, also scale to unit "
        "mean norm, or a per-source LayerNorm.")
@click.option("--word-features/--no-word-features", default=None,
              help="Give the dme/cdme scorer word features: which sources have the word, a "
                   "frequency bin, length and shape. [default: off]")
@_hyper("--source-dropout", float, 0.0, "Drop whole sources per token in training.")
@_hyper("--mix-entropy", float, 0.0, "Loss weight of the mixing weights' mean entropy "
        "(positive: sharper choices, negative: spread).")
@_hyper("--encoder", click.Choice(list(ENCODERS)), "bilstm",
        "BiLSTM-max, max+mean pooling without recurrence, or convolutions of several widths "
        "with max over time (cnn).")
@_hyper("--hidden", int, 512, "Encoder BiLSTM units per direction.")
@_hyper("--cnn-filters", int, 64, "cnn encoder: filters per width.")
@click.option("--cnn-widths", callback=_widths, help="cnn encoder: comma-separated filter "
              "widths in tokens [default: 1,2,3]")
@_hyper("--mlp-hidden", int, 512, "Classifier hidden units.")
@_hyper("--max-tokens", int, 512, "Tokens kept of each text, from its start: training, "
        "evaluation and the exported model all cut there.")
@_hyper("--learned-dim", int, 0, "Size of the learned source: a table trained with the task "
        "over the train split's words, one more source in the mix (0: none).")
@_hyper("--learned-buckets", int, 0, "Hashed word-bigram rows of the learned source (0: none); "
        "the model grows by buckets x learned-dim floats.")
@_hyper("--learned-subwords", int, 0, "Hashed character n-gram rows of the learned source "
        "(fastText's subwords: 3-6 characters; 0: none), so words unseen in training get a "
        "vector too; folded away at export (no serving cost), buckets x learned-dim floats "
        "trained.")
@_hyper("--learned-init", str, "random", "Store source whose vectors start the learned rows "
        "where it has the word (same dimension), or random.")
@_hyper("--learned-dropout", float, 0.0, "Dropout on the learned vectors.")
@_hyper("--learned-weight-decay", float, 0.0, "Decoupled (AdamW) weight decay of the learned "
        "tables.")
@_hyper("--learned-lr-scale", float, 1.0, "The learned tables' learning rate is --lr times "
        "this (a rare word's row gets few updates).")
@_hyper("--lr", float, 4e-4, "Adam learning rate.")
@_hyper("--lr-decay", float, 0.2, "Multiply the lr by this when dev accuracy does not improve.")
@_hyper("--min-lr", float, 1e-5, "Stop once the lr falls below this.")
@_hyper("--patience", int, 3, "Stop after this many epochs without dev improvement.")
@_hyper("--epochs", int, 10, "Passes over the training data at most.")
@_hyper("--batch-size", int, 64, "Examples per optimizer step (batches are length-bucketed).")
@_hyper("--grad-clip", float, 5.0, "Max gradient norm.")
@_hyper("--seed", int, 0, "Seeds weights, batch order and dropout: a rerun is bit-identical.")
@_hyper("--checkpoint-steps", int, 0,
        "Also checkpoint every N steps inside an epoch (0: at epoch ends only).")
@_hyper("--members", int, 1, "Train an ensemble: this many models, member K with seed --seed + "
        "1000 K, one after another in -o/members/K; export-onnx serves their averaged "
        "probabilities as one model (single-label tasks).")
@click.option("--teacher", type=click.Path(file_okay=False),
              help="Learn from a trained run or ensemble directory too (distillation): its "
                   "probabilities on the training texts join the labels in the loss. It must "
                   "have been trained on the same store, labels and tokenizer [default: none]")
@_hyper("--teacher-members", int, 0, "Without --teacher: first train an ensemble of this many "
        "models of this run's options into -o/teacher (as --members N would), then this run "
        "taught by it (0: no teacher).")
@_hyper("--teacher-weight", float, 0.5, "With --teacher: the teacher's share of the loss "
        "(0: labels only, 1: teacher only).")
@_hyper("--teacher-temperature", float, 1.0, "With --teacher: soften the teacher's and the "
        "model's probabilities by this temperature in the teacher's term.")
@click.option("--task", type=click.Choice(["single", "multilabel"]),
              help="single: one label per text (softmax); multilabel: any number of labels "
                   "(a sigmoid per label) [default: detected from the train file, and said so]")
@click.option("--label-sep", help="Multi-label TSV/CSV: the separator inside the label column "
              "[default: ,]")
@_hyper("--pos-weight", float, 0.0, "Multi-label: weight a label's positives by "
        "min(THIS, negatives/positives) in the loss (0: off).")
@_hyper("--select-metric", click.Choice(["micro_f1", "macro_f1", "mean_auc"]), "micro_f1",
        "Multi-label: the dev figure that picks the best epoch.")
@click.option("--resume", is_flag=True,
              help="Continue the run in -o from its last checkpoint (its saved config and data "
                   "are used).")
@click.option("--data-encoding", default="utf-8", show_default=True,
              help="Text encoding of the data files.")
@click.option("--threads", type=int, help="torch CPU threads [default: torch's choice]. Runs are "
              "bit-identical only at the same thread count.")
@quiet_option()
@column_options()
def command(train_path: str | None, sources: str | None, **kw: Any) -> None:
    """Train DME / CDME (or a baseline) plus a sentence encoder and classifier."""
    from metaprep import stages
    from metaprep.learn.ensemble import ensemble_metrics
    from metaprep.stages.train import TEACHER

    chosen = tuple(s for s in (sources or "").split(",") if s.strip())
    result = stages.train(stages.TrainOptions(train=train_path, sources=chosen, **kw))
    if os.environ.get("RANK", "0") != "0":
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
