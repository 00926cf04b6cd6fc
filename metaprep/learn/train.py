"""The training loop: Adam, lr decay on dev plateau, early stopping, atomic checkpoints, resume,
and DistributedDataParallel when started by torchrun. The run directory (learn/rundir.py) is
described in docs/model.md.

    train() = _setup (learn/prepare.py: a new run, or the saved one) -> per epoch _train_epoch
              and _end_epoch (dev, lr, best weights, checkpoint) -> _finish (test, analysis)

The best weights are kept in a buffer mapped from a file beside the run (learn/scratch.py: page
cache, not the process's memory; a 3.5M-word model's are 0.95 GB) and written into each
checkpoint, and as best.safetensors once, at the end: on a small task writing files took longer
than the epochs. A checkpoint is written at an epoch's end once ``checkpoint_seconds`` have
passed since the last (a kill loses at most about that much training).

Reproducibility: weights come from ``torch.manual_seed(seed)``, the batches of epoch ``e`` from
(seed, e) alone, and dropout is reseeded from (seed, rank, step) before every step, so a rerun is
bit-identical and a resumed run repeats exactly what the uninterrupted run would have done.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from metaprep.errors import ModelError
from metaprep.learn.config import RunConfig
from metaprep.learn.data import TaskData, bucket_batches, collate, shard_batches, token_counts
from metaprep.learn.evaluate import classification_metrics, predict, predict_sigmoid
from metaprep.learn.loop import Loop, fresh_state, join_world, set_lr, wrap_ddp
from metaprep.learn.model import MetaEmbeddingClassifier, weights_state_dict
from metaprep.learn.multilabel import (
    Thresholds,
    multilabel_metrics,
    select_score,
    tune_thresholds,
)
from metaprep.learn.optim import clipped_parameters, make_optimizer
from metaprep.learn.pace import RunPace
from metaprep.learn.prepare import finished, prepare, restore
from metaprep.learn.rundir import (
    ATTENTION_PLOT,
    CHECKPOINT,
    LEARNING_CURVES,
    Run,
)
from metaprep.learn.teacher import distill_loss, teacher_rows, the_teacher
from metaprep.taskdata import Columns

__all__ = ["after_step", "default_run_dir", "train"]


def default_run_dir(method: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("artifacts") / "runs" / f"{stamp}-{method.replace(':', '-')}"


# --- the run ------------------------------------------------------------------------------------
def train(
    cfg: RunConfig | None = None,
    *,
    store: str | Path | None = None,
    train_data: str | Path | None = None,
    dev: str | Path | None = None,
    test: str | Path | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    encoding: str = "utf-8",
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
    keep_checkpoint: bool = True,
    pace: RunPace | None = None,
    columns: Columns | None = None,
    plots: bool = False,
) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) a run in ``out``; returns the metrics.json content.

    A new run needs ``store``, ``train_data`` and ``dev``; ``cfg`` gives the method and options, and
    sources (default: all), dims, vocabulary size, number of labels and pair-ness are filled from
    the store and the data. A resume needs only ``out``: the saved config, store and data files
    are used, and any of them given must be the same (files by sha256). The options given to a
    resume are ``overrides`` (the CLI passes those on its command line), else the fields of
    ``cfg`` that differ from the defaults; one that differs from the saved config is an error.

    A run killed before its first checkpoint holds nothing to lose: a new run starts over it, and
    a resume starts it from scratch with its saved config. Without ``keep_checkpoint``
    a finished run's checkpoint (optimizer state, last and best weights: about 4x the model) is
    removed (what `metaprep train` does unless told otherwise). ``plots`` draws the learning
    curves and the attention by source as PNGs (matplotlib: about a second)."""
    rank, world, device = join_world()
    cfg = cfg or RunConfig()
    out = Path(out) if out is not None else default_run_dir(cfg.method)
    inputs = {"store": store, "train": train_data, "dev": dev, "test": test}
    pace = pace or RunPace()
    if resume and (done := finished(out, cfg, inputs, overrides)) is not None:
        pace.end_model(trained=False)
        return done  # a finished run: nothing left to train
    loop = _setup(cfg, out, inputs, resume=resume, overrides=overrides, encoding=encoding,
                  show=progress and rank == 0, rank=rank, world=world, device=device,
                  columns=columns, pace=pace)
    pace.start_model(loop.state["epoch"])
    while loop.state["epoch"] < loop.cfg.epochs and not loop.state["stopped"]:
        elapsed = _train_epoch(loop)
        _end_epoch(loop, elapsed)
    metrics = _finish(loop, keep_checkpoint, plots)
    pace.end_model()
    return metrics


def _setup(cfg: RunConfig, out: Path, inputs: dict[str, Any], *, resume: bool,
           overrides: dict[str, Any] | None, encoding: str, show: bool, rank: int, world: int,
           device: torch.device, pace: RunPace, columns: Columns | None = None) -> Loop:
    ready = prepare(cfg, out, inputs, resume=resume, overrides=overrides, write=rank == 0,
                    encoding=encoding, show=show, columns=columns)
    run = ready.run
    cfg = run.config.for_examples(len(ready.data[0].examples))  # batch_size 0: picked here
    with run:  # the store is needed for the tables only
        torch.manual_seed(cfg.seed)
        model = run.build_model(progress=show)
    model.front.start_learned(_train_ids(ready.data[0]))  # a checkpoint then restores its own
    model = model.to(device)
    opt = make_optimizer(model, cfg)
    state = fresh_state(cfg, world)
    history: list[dict[str, Any]] = []
    best = None
    if ready.from_checkpoint:
        state, history, best = restore(run, model, opt, map_location=device, progress=state)
        set_lr(opt, state["lr"])  # the loop's lr is the truth (the optimizer's is checked)
    teacher = None
    if cfg.teacher:  # checked to be the teacher the run started with (learn/teacher.py)
        teacher = the_teacher(run, ready.data[0], resumed=ready.from_checkpoint,
                              write=rank == 0, progress=show).to(device)
    loop = Loop(cfg, run, ready.data, model, wrap_ddp(model, world), opt, device, rank, world,
                 show, state, history, clipped_parameters(model),
                 _pos_weight(cfg, ready.data[0], device), teacher, pace)
    if best is not None and loop.main:
        loop.keep_best(best)
    return loop


def _train_ids(data: TaskData) -> torch.Tensor:
    """Every distinct word id of the training texts (both sentences of pairs)."""
    distinct = [np.unique(flat) for flat, _ in data.examples.sides]
    return torch.from_numpy(np.unique(np.concatenate(distinct)).astype(np.int64))


def _pos_weight(cfg: RunConfig, data: TaskData, device: torch.device) -> torch.Tensor | None:
    """min(cfg.pos_weight, negatives / positives) per label, from the training targets."""
    if data.targets is None or cfg.pos_weight <= 0:
        return None
    pos = data.targets.sum(0)
    ratio = (len(data) - pos) / np.maximum(pos, 1.0)
    return torch.from_numpy(np.minimum(cfg.pos_weight, ratio).astype(np.float32)).to(device)


def _evaluate(model: torch.nn.Module, data: TaskData, labels: list[str],
              device: torch.device, thresholds: Thresholds | None = None, *,
              run: Path | None = None) -> dict[str, Any]:
    """The metrics of ``data``; multi-label: with ``thresholds``, else thresholds tuned on
    ``data`` itself (dev, to pick the epoch). A NaN score is a ModelError naming ``run``."""
    if data.targets is not None:
        probs = predict_sigmoid(model, data, device=str(device), run=run)
        t = thresholds or tune_thresholds(data.targets, probs)
        return multilabel_metrics(data.targets, probs, labels, t)
    pred = predict(model, data, device=str(device), run=run)
    gold = data.examples.labels
    return classification_metrics(gold, pred, labels)


# --- epochs -------------------------------------------------------------------------------------
def _train_epoch(loop: Loop) -> float:
    """The rest of the current epoch (from ``state["batch"]`` on); returns its seconds."""
    from tqdm import tqdm

    cfg, state, train_data = loop.cfg, loop.state, loop.data[0]
    batches = bucket_batches(train_data.lengths(), cfg.batch_size, seed=cfg.seed,
                             epoch=state["epoch"])
    batches = shard_batches(batches, loop.rank, loop.world)
    if state["batch"] > len(batches):  # a checkpoint from elsewhere: the epoch would be skipped
        raise ModelError(f"the checkpoint says batch {state['batch']} of an epoch of "
                         f"{len(batches)}", path=loop.run.path / CHECKPOINT,
                         hint="the checkpoint is damaged; start the run again in a new directory")
    loop.net.train()
    t0 = time.perf_counter()
    bar = tqdm(total=len(batches), initial=state["batch"], desc=f"epoch {state['epoch'] + 1}",
               unit="batch", disable=not loop.show, leave=False)
    for i in range(state["batch"], len(batches)):
        batch = collate(train_data, batches[i]).to(loop.device)
        if cfg.lr_schedule == "linear":  # down to 0 over the whole run, as fastText's
            state["lr"] = cfg.lr * max(0.0, 1.0 - state["step"] / (cfg.epochs * len(batches)))
            set_lr(loop.opt, state["lr"])
        _seed_dropout(loop, cfg.seed * 1_000_003 + loop.rank * 7919 + state["step"])
        logits = loop.net(batch.ids, batch.lengths, batch.ids_b, batch.lengths_b)  # (B,C)
        if loop.cfg.task == "multilabel":  # labels (B,C) 0/1: a sigmoid per label
            loss = F.binary_cross_entropy_with_logits(logits, batch.labels,
                                                      pos_weight=loop.pos_weight)
            right = ((logits > 0) == (batch.labels > 0.5)).all(-1)  # the whole set right
        elif loop.teacher is not None:
            loss = distill_loss(logits, batch.labels, teacher_rows(loop.teacher, batches[i]),
                                weight=cfg.teacher_weight, temperature=cfg.teacher_temperature)
            right = logits.argmax(-1) == batch.labels
        else:
            loss = F.cross_entropy(logits, batch.labels, label_smoothing=cfg.label_smoothing)
            right = logits.argmax(-1) == batch.labels
        loop.opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(loop.clip, cfg.grad_clip)
        if not (torch.isfinite(loss) and torch.isfinite(norm)):  # never a step on NaN
            _diverged(loop, loss.item())
        loop.opt.step()
        state["step"] += 1
        state["batch"] = i + 1
        state["loss_sum"] += loss.item() * batch.size
        state["correct"] += int(right.sum())
        state["seen"] += batch.size
        rate = state["seen"] / max(1e-9, time.perf_counter() - t0)
        bar.set_postfix(loss=f"{state['loss_sum'] / state['seen']:.4f}", sent_s=f"{rate:.0f}")
        bar.update()
        after_step(loop, last=i + 1 == len(batches))
    bar.close()
    return time.perf_counter() - t0


def _seed_dropout(loop: Loop, seed: int) -> None:
    """The generator dropout draws from, reseeded: the device's alone (torch.manual_seed also
    queues a seed for every CUDA device, taking a stack trace each time: 0.2 ms a step)."""
    if loop.device.type == "cuda":
        torch.cuda.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


def after_step(loop: Loop, *, last: bool) -> None:
    """Called after every optimizer step: the mid-epoch checkpoint when one is due (not after an
    epoch's last step: _end_epoch decides that one). The resume tests wrap it to stop a run
    there, as a kill would."""
    every = loop.cfg.checkpoint_steps
    if loop.main and every and loop.state["step"] % every == 0 and not last:
        loop.checkpoint()


def _diverged(loop: Loop, loss: float) -> None:
    """Stop before a step on a NaN or infinite loss or gradient: the last checkpoint stays as
    it was (every rank sees the same averaged gradient, so all stop at the same step)."""
    state = loop.state
    kept = ("the last checkpoint is kept" if (loop.run.path / CHECKPOINT).exists()
            else "no checkpoint was written")
    raise ModelError(f"training diverged at epoch {state['epoch'] + 1}, step "
                     f"{state['step'] + 1}: the loss or its gradient is {loss} (not finite); "
                     f"nothing of it was saved, {kept}", path=loop.run.path,
                     hint="train anew with a lower --lr or --grad-clip, or check the teacher")


def _end_epoch(loop: Loop, elapsed: float) -> None:
    """Dev accuracy, best weights, lr decay, early stopping (the same decision on every rank),
    then the checkpoint and the metrics so far."""
    from tqdm import tqdm

    cfg, state, epoch = loop.cfg, loop.state, loop.state["epoch"]
    dev_m = _evaluate(loop.model, loop.data[1], loop.run.labels, loop.device,
                      run=loop.run.path)
    record = {
        "epoch": epoch + 1, "lr": state["lr"], "steps": state["step"],
        "train_loss": state["loss_sum"] / max(1, state["seen"]),
        "train_accuracy": state["correct"] / max(1, state["seen"]),
        "dev_accuracy": dev_m["accuracy"], "dev_macro_f1": dev_m["macro_f1"],
        "seconds": elapsed,
        "sentences_per_second": state["seen"] * loop.world / max(1e-9, elapsed),
    }
    score = dev_m["accuracy"]
    if cfg.task == "multilabel":
        score = select_score(dev_m, cfg.select_metric)
        record.update(dev_micro_f1=dev_m["micro_f1"], dev_mean_auc=dev_m["mean_auc"])
    loop.history.append(record)
    if score > state["best"]:
        state.update(best=score, best_epoch=epoch + 1, bad_epochs=0)
        if loop.main:  # written with the next checkpoint, and at the end
            loop.keep_best(weights_state_dict(loop.model))
    else:
        state["bad_epochs"] += 1
        if cfg.lr_schedule == "plateau":
            state["lr"] *= cfg.lr_decay
            set_lr(loop.opt, state["lr"])
    state["stopped"] = state["bad_epochs"] >= cfg.patience or state["lr"] < cfg.min_lr
    state.update(epoch=epoch + 1, batch=0, loss_sum=0.0, correct=0, seen=0)
    last = state["stopped"] or state["epoch"] >= cfg.epochs  # _finish has the last word
    if loop.main:
        if not last and loop.checkpoint_due():
            loop.checkpoint()
        loop.run.write_metrics({"epochs": loop.history, "best_epoch": state["best_epoch"]})
    if loop.show:
        shown = (f"dev acc {record['dev_accuracy']:.4f}" if cfg.task == "single"
                 else f"dev {cfg.select_metric} {score:.4f}")
        where, left = loop.pace.epoch_line(epoch + 1, cfg.epochs)
        tqdm.write(
            f"{where}: loss {record['train_loss']:.4f} {shown} lr {record['lr']:.2g} "
            f"({record['sentences_per_second']:.0f} sent/s){'; ' + left if left else ''}"
        )


# --- final: best weights, dev/test metrics, attention analysis ----------------------------------
def _finish(loop: Loop, keep_checkpoint: bool, plots: bool) -> dict[str, Any]:
    import torch.distributed as dist

    run, state, (train_data, dev_data, test_data) = loop.run, loop.state, loop.data
    if loop.main and keep_checkpoint:  # the last epoch's state, asked to be kept
        loop.checkpoint()
    loop.model.load_state_dict(_best_weights(loop))
    labels = run.labels
    thresholds = None
    if dev_data.targets is not None:  # tuned on dev once, with the best weights; kept with the run
        probs = predict_sigmoid(loop.model, dev_data, device=str(loop.device), run=run.path)
        thresholds = tune_thresholds(dev_data.targets, probs)
        if loop.main:
            run.write_thresholds(thresholds)
    metrics = {
        "run_dir": str(run.path), "epochs": loop.history, "best_epoch": state["best_epoch"],
        "stopped_early": state["stopped"] and state["epoch"] < loop.cfg.epochs,
        "batch_size": loop.cfg.batch_size, "lr": loop.cfg.lr,  # batch_size 0: as picked
        "dev": _evaluate(loop.model, dev_data, labels, loop.device, thresholds, run=run.path),
        "test": None if test_data is None
        else _evaluate(loop.model, test_data, labels, loop.device, thresholds, run=run.path),
    }
    metrics["best_dev_accuracy"] = metrics["dev"]["accuracy"]
    if metrics["test"] is not None:
        metrics["test_accuracy"] = metrics["test"]["accuracy"]
    if loop.main:
        run.write_metrics(metrics)
        _analyse(run, loop.model, dev_data, train_data, loop.history, plots)
        # the best weights after the final metrics: with no checkpoint, best weights on disk
        # mean a finished run (learn/rundir.py run_state)
        run.save_best(weights_state_dict(loop.model))
        if not keep_checkpoint:
            run.drop_checkpoint()
    if loop.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return metrics


def _best_weights(loop: Loop) -> dict[str, torch.Tensor]:
    """The best weights, rank 0's, sent to the others: no other rank reads a new run's
    directory, so other machines need not share it (docs/multi-node.md)."""
    box: list[Any] = [None]
    if loop.main:
        if loop.best is None:  # resumed from a checkpoint before its best epoch had weights
            raise ModelError("the run has no best weights to finish with", path=loop.run.path,
                             hint="the checkpoint is damaged; train the run again")
        box = [loop.best]
    if loop.world > 1:
        torch.distributed.broadcast_object_list(box, src=0, device=loop.device)
    return dict(box[0])


def _analyse(run: Run, model: MetaEmbeddingClassifier, dev: TaskData, train: TaskData,
             history: list[dict[str, Any]], plots: bool) -> None:
    from metaprep.learn.analysis import attention_analysis

    report = attention_analysis(model, dev, token_counts(train))
    run.write_analysis(report)
    if plots:  # matplotlib costs about a second: as long as training a small task
        from metaprep.learn.analysis import plot_attention, plot_learning_curves

        plot_learning_curves(history, run.path / LEARNING_CURVES)
        plot_attention(report, run.path / ATTENTION_PLOT)
