"""`metaprep train`: fit a (contextual) dynamic meta-embedding classifier on an aligned store."""

from __future__ import annotations

import os

import click
from click.core import ParameterSource

_D = {  # defaults shown in --help; the same as metaprep.learn.config.RunConfig's
    "proj_dim": 256, "context_hidden": 2, "hidden": 512, "mlp_hidden": 512, "lr": 4e-4,
    "lr_decay": 0.2, "min_lr": 1e-5, "patience": 3, "epochs": 10, "batch_size": 64,
    "grad_clip": 5.0, "seed": 0,
}


@click.command("train")
@click.option("--store", type=click.Path(dir_okay=False),
              help="Aligned HDF5 store (from `metaprep align`). Required for a new run.")
@click.option("--train", "train_path", type=click.Path(dir_okay=False),
              help="Training data: TSV/CSV/JSONL with text,label (or text_a,text_b,label), "
                   "or fastText __label__ lines. Required for a new run.")
@click.option("--dev", type=click.Path(dir_okay=False),
              help="Dev data (lr decay, early stopping, best epoch). Required for a new run.")
@click.option("--test", type=click.Path(dir_okay=False), help="Test data, scored with the best "
              "weights at the end.")
@click.option("-o", "--out", type=click.Path(file_okay=False),
              help="Run directory [default: artifacts/runs/<timestamp>-<method>].")
@click.option("--method", default="concat", show_default=True,
              help="dme, cdme, concat, sum, or single:NAME (one source; or single --sources NAME). "
                   "concat is the default: it won our multi-seed comparison (README).")
@click.option("--sources", help="Comma-separated store sources to use [default: all].")
@click.option("--proj-dim", type=int, default=_D["proj_dim"], show_default=True,
              help="Size d' of the projected embeddings.")
@click.option("--gating", type=click.Choice(["softmax", "sigmoid"]), default="softmax",
              show_default=True, help="Softmax over sources, or a sigmoid gate per source.")
@click.option("--context-hidden", type=int, default=_D["context_hidden"], show_default=True,
              help="CDME scorer BiLSTM units per direction.")
@click.option("--mask-missing/--no-mask-missing", default=True, show_default=True,
              help="Give sources without a word zero weight (off: the paper's zero vectors).")
@click.option("--use-derived/--no-use-derived", default=True, show_default=True,
              help="Count OOV rows that align derived from the word itself (--oov subword or "
                   "map) as present; zero/mean/random fillers never are.")
@click.option("--mix-relu", is_flag=True, help="ReLU after the mix.")
@click.option("--mix-dropout", type=float, default=0.0, show_default=True,
              help="Dropout on the meta-embeddings.")
@click.option("--encoder", type=click.Choice(["bilstm", "pool"]), default="bilstm",
              show_default=True, help="BiLSTM-max, or max+mean pooling without recurrence.")
@click.option("--hidden", type=int, default=_D["hidden"], show_default=True,
              help="Encoder BiLSTM units per direction.")
@click.option("--mlp-hidden", type=int, default=_D["mlp_hidden"], show_default=True,
              help="Classifier hidden units.")
@click.option("--lr", type=float, default=_D["lr"], show_default=True, help="Adam learning rate.")
@click.option("--lr-decay", type=float, default=_D["lr_decay"], show_default=True,
              help="Multiply the lr by this when dev accuracy does not improve.")
@click.option("--min-lr", type=float, default=_D["min_lr"], show_default=True,
              help="Stop once the lr falls below this.")
@click.option("--patience", type=int, default=_D["patience"], show_default=True,
              help="Stop after this many epochs without dev improvement.")
@click.option("--epochs", type=int, default=_D["epochs"], show_default=True)
@click.option("--batch-size", type=int, default=_D["batch_size"], show_default=True)
@click.option("--grad-clip", type=float, default=_D["grad_clip"], show_default=True,
              help="Max gradient norm.")
@click.option("--seed", type=int, default=_D["seed"], show_default=True,
              help="Seeds weights, batch order and dropout: a rerun is bit-identical.")
@click.option("--checkpoint-steps", type=int, default=0, show_default=True,
              help="Also checkpoint every N steps inside an epoch (0: at epoch ends only).")
@click.option("--resume", is_flag=True,
              help="Continue the run in -o from its last checkpoint with its saved config, "
                   "store and data (options and files given must match them).")
@click.option("--data-encoding", default="utf-8", show_default=True,
              help="Text encoding of the data files.")
@click.option("--threads", type=int, help="torch CPU threads [default: torch's choice]. Runs are "
              "bit-identical only at the same thread count.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(store: str | None, train_path: str | None, dev: str | None, test: str | None,
            out: str | None, method: str, sources: str | None, quiet: bool, resume: bool,
            data_encoding: str, threads: int | None, **options: object) -> None:
    """Train DME / CDME (or a baseline) plus a sentence encoder and classifier.

    \b
    Examples:
      metaprep train --store store.h5 --train train.tsv --dev dev.tsv --method cdme -o run/
      metaprep train --store store.h5 --train t.tsv --dev d.tsv --method single:glove
      metaprep train -o run/ --resume                                      # after a kill
      torchrun --nproc_per_node 2 -m metaprep train --store store.h5 ...   # DDP (gloo on CPU)
    """
    import torch

    from metaprep.errors import ConfigError
    from metaprep.learn.config import RunConfig
    from metaprep.learn.train import train

    if threads is not None:
        if threads < 1:
            raise ConfigError("--threads must be at least 1")
        torch.set_num_threads(threads)

    name, _, single = method.partition(":")
    chosen = [s.strip() for s in sources.split(",") if s.strip()] if sources else []
    if name == "single":
        if single and chosen and chosen != [single]:
            raise ConfigError(f"--method {method} and --sources {sources} disagree")
        chosen = [single] if single else chosen
        if len(chosen) != 1:
            raise ConfigError("method single needs one source: --method single:NAME")
    elif single:
        raise ConfigError(f"--method {method}: only single takes a :NAME")
    dims = [0] * len(chosen)  # filled from the store
    cfg = RunConfig(method=name, sources=chosen, source_dims=dims, **options)  # type: ignore[arg-type]
    # what the command line gave (not click's defaults): a resume checks these against the run
    ctx = click.get_current_context()
    given = {k: v for k, v in options.items()
             if ctx.get_parameter_source(k) is not ParameterSource.DEFAULT}
    if ctx.get_parameter_source("method") is not ParameterSource.DEFAULT:
        given["method"] = name
    if chosen:
        given["sources"] = chosen
    metrics = train(cfg, store=store, train=train_path, dev=dev, test=test, out=out,
                    resume=resume, progress=not quiet, encoding=data_encoding, overrides=given)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, rank 0 reports
    if metrics.get("run_dir"):
        click.echo(f"run: {metrics['run_dir']}")
    click.echo(f"best epoch {metrics['best_epoch']}: dev accuracy {metrics['dev']['accuracy']:.4f}"
               f" macro-F1 {metrics['dev']['macro_f1']:.4f}")
    if metrics.get("test"):
        click.echo(f"test accuracy {metrics['test']['accuracy']:.4f} "
                   f"macro-F1 {metrics['test']['macro_f1']:.4f}")
