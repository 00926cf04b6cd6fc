"""The training loop: Adam, lr decay on dev plateau, early stopping, atomic checkpoints, resume,
and DistributedDataParallel when started by torchrun. The run directory is described in
docs/model.md.

Reproducibility: weights come from ``torch.manual_seed(seed)``, the batches of epoch ``e`` from
(seed, e) alone, and dropout is reseeded from (seed, rank, step) before every step, so a rerun is
bit-identical and a resumed run repeats exactly what the uninterrupted run would have done.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from metaprep.errors import ConfigError, DataError, StoreError
from metaprep.learn.data import (
    LabelMap,
    TaskData,
    TextEncoder,
    bucket_batches,
    collate,
    load_task,
    shard_batches,
    token_counts,
)
from metaprep.learn.evaluate import classification_metrics, predict
from metaprep.learn.model import (
    MetaEmbeddingClassifier,
    RunConfig,
    atomic_path,
    build_model,
    read_json,
    weights_state_dict,
    write_json,
)
from metaprep.prep.store import Store, file_sha256

__all__ = ["FAIL_AFTER_STEPS_ENV", "SimulatedCrash", "default_run_dir", "train"]

# Testing hook: raise SimulatedCrash after this many optimizer steps (a kill mid-epoch).
FAIL_AFTER_STEPS_ENV = "METAPREP_FAIL_AFTER_STEPS"
CHECKPOINT = "checkpoint.pt"
BEST = "best.safetensors"


class SimulatedCrash(RuntimeError):
    """Raised by the FAIL_AFTER_STEPS_ENV hook, to test resuming."""


def default_run_dir(method: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("artifacts") / "runs" / f"{stamp}-{method.replace(':', '-')}"


# --- setup --------------------------------------------------------------------------------------
def _distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the process group when torchrun started us."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    return rank, world, device


def _resolve_config(cfg: RunConfig, store: Store) -> RunConfig:
    """Fill what comes from the store: sources (all of them when none were named), dims, size."""
    sources = list(cfg.sources) or list(store.sources)
    if not sources:
        raise StoreError("the store has no sources", path=store.path)
    for name in sources:
        if name not in store.sources:
            raise StoreError(
                f"no source named {name!r}; the store has: {', '.join(store.sources)}",
                path=store.path, hint="check --method single:NAME / --sources",
            )
    if cfg.method == "single" and len(sources) != 1:
        raise ConfigError("method single needs one source: --method single:NAME")
    return replace(
        cfg, sources=sources, source_dims=[store.dim(s) for s in sources],
        vocab_size=store.vocab_size,
    )


def _file_record(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise DataError("no such task data file", path=path)
    return {"path": str(path.resolve()), "sha256": file_sha256(path)}


def _prepare(
    cfg: RunConfig, st: Store, out: Path, paths: dict[str, Any], *, resume: bool,
    write: bool, encoding: str, progress: bool,
) -> tuple[RunConfig, LabelMap, tuple[TaskData, TaskData, TaskData | None]]:
    """Check the inputs, read the data, settle the config; write the run's description files
    (``write``: rank 0, new runs). Nothing is written before every input checks out."""
    files = {k: _file_record(Path(p)) for k, p in paths.items() if p is not None}
    cfg = _check_resume(out, st, files) if resume else _resolve_config(cfg, st)
    encoder = TextEncoder.from_store(st)
    labels = LabelMap(read_json(out / "labels.json")) if resume else None

    def read(split: str, labels: LabelMap | None) -> tuple[TaskData, LabelMap]:
        return load_task(files[split]["path"], encoder, labels=labels, encoding=encoding,
                         progress=progress)

    train_data, labels = read("train", labels)
    dev_data = read("dev", labels)[0]
    test_data = read("test", labels)[0] if "test" in files else None
    for d in (dev_data, test_data):
        if d is not None and d.pair != train_data.pair:
            raise DataError("pairs here, single sentences in the train file (or the reverse)",
                            path=d.path)
    if not resume:
        cfg = replace(cfg, num_labels=len(labels), pair=train_data.pair)
        if write:
            _start_run(out, cfg, labels, st, encoder.tokenizer.config.to_dict(), files)
    return cfg, labels, (train_data, dev_data, test_data)


def _start_run(
    out: Path, cfg: RunConfig, labels: LabelMap, store: Store, tok: dict[str, Any],
    data: dict[str, dict[str, str]],
) -> None:
    """Write the files that describe the run (rank 0)."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", cfg.to_dict())
    write_json(out / "labels.json", labels.labels)
    write_json(out / "tokenizer.json", tok)
    write_json(out / "data.json", data)
    write_json(out / "store.json", {
        "path": str(store.path.resolve()), "sha256": store.sha256(),
        "vocab_size": store.vocab_size, "case_policy": store.case_policy,
    })


def _check_resume(out: Path, store: Store, data: dict[str, dict[str, str]]) -> RunConfig:
    """The saved config, after checking the store and train file are the ones the run used."""
    cfg = RunConfig.from_dict(read_json(out / "config.json"), path=out / "config.json")
    ref = read_json(out / "store.json")
    if store.vocab_size != ref["vocab_size"]:
        raise StoreError(
            f"vocabulary of {store.vocab_size} words does not match the run being resumed "
            f"({ref['vocab_size']} words, {ref['path']})", path=store.path,
            hint="resume with the store the run was started with",
        )
    if store.sha256() != ref["sha256"]:
        raise StoreError(
            f"not the store the run was started with ({ref['path']}, sha256 differs)",
            path=store.path, hint="resume with the original store, or start a new run",
        )
    saved = read_json(out / "data.json")
    if saved["train"]["sha256"] != data["train"]["sha256"]:
        raise DataError(
            "not the training file the run was started with", path=data["train"]["path"],
            hint=f"the run used {saved['train']['path']}",
        )
    return cfg


def _save_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
                     progress: dict[str, Any], history: list[dict[str, Any]]) -> None:
    state = {"model": weights_state_dict(model), "optimizer": opt.state_dict(),
             "progress": progress, "history": history}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _save_weights(path: Path, model: torch.nn.Module) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(weights_state_dict(model), str(tmp))


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def _evaluate(model: torch.nn.Module, data: TaskData, labels: list[str],
              device: torch.device) -> dict[str, Any]:
    pred = predict(model, data, device=str(device))
    gold = np.array([e.label for e in data.examples], dtype=np.int64)
    return classification_metrics(gold, pred, labels)


# --- the run ------------------------------------------------------------------------------------
def train(
    cfg: RunConfig,
    *,
    store: str | Path,
    train: str | Path,
    dev: str | Path,
    test: str | Path | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    encoding: str = "utf-8",
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) a run in ``out``; returns the metrics.json content.

    ``cfg`` gives the method and options; sources (default: all), dims, vocabulary size, number
    of labels and pair-ness are filled from the store and the data. On resume the run's saved
    config is used and ``cfg`` is ignored."""
    import torch.distributed as dist
    from tqdm import tqdm

    rank, world, device = _distributed()
    main = rank == 0
    show = progress and main
    out = Path(out) if out is not None else default_run_dir(cfg.method)
    if resume and not (out / CHECKPOINT).exists():
        raise ConfigError("nothing to resume: no checkpoint", path=out,
                          hint="start the run without --resume")
    if not resume and (out / "config.json").exists():
        raise ConfigError("already holds a run", path=out,
                          hint="pass --resume to continue it, or choose another -o")

    # --- data, config, model
    with Store(store) as st:
        cfg, labels, (train_data, dev_data, test_data) = _prepare(
            cfg, st, out, {"train": train, "dev": dev, "test": test}, resume=resume,
            write=main, encoding=encoding, progress=show,
        )
        torch.manual_seed(cfg.seed)
        model = build_model(st, cfg, progress=show).to(device)

    # --- optimizer, resume state, DDP
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    state: dict[str, Any] = {"epoch": 0, "batch": 0, "step": 0, "lr": cfg.lr, "best": -1.0,
                             "best_epoch": -1, "bad_epochs": 0, "stopped": False,
                             "loss_sum": 0.0, "correct": 0, "seen": 0}
    history: list[dict[str, Any]] = []
    if resume:
        ckpt = torch.load(out / CHECKPOINT, map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        state, history = dict(ckpt["progress"]), list(ckpt["history"])
    net: torch.nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # the frozen tables are identical on every rank: never broadcast them
        DDP._set_params_and_buffers_to_ignore_for_model(
            model, [name for name, _ in model.named_buffers()]
        )
        net = DDP(model, broadcast_buffers=False)
    fail_after = int(os.environ.get(FAIL_AFTER_STEPS_ENV, "0"))
    lengths = train_data.lengths()

    # --- loop
    while state["epoch"] < cfg.epochs and not state["stopped"]:
        epoch = state["epoch"]
        batches = bucket_batches(lengths, cfg.batch_size, seed=cfg.seed, epoch=epoch)
        batches = shard_batches(batches, rank, world)
        net.train()
        t0 = time.perf_counter()
        bar = tqdm(total=len(batches), initial=state["batch"], desc=f"epoch {epoch + 1}",
                   unit="batch", disable=not show, leave=False)
        for i in range(state["batch"], len(batches)):
            batch = collate(train_data, batches[i]).to(device)
            torch.manual_seed(cfg.seed * 1_000_003 + rank * 7919 + state["step"])  # dropout
            logits = net(batch.ids, batch.lengths, batch.ids_b, batch.lengths_b)
            loss = F.cross_entropy(logits, batch.labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            state["step"] += 1
            state["batch"] = i + 1
            state["loss_sum"] += loss.item() * batch.size
            state["correct"] += int((logits.argmax(-1) == batch.labels).sum())
            state["seen"] += batch.size
            rate = state["seen"] / max(1e-9, time.perf_counter() - t0)
            bar.set_postfix(loss=f"{state['loss_sum'] / state['seen']:.4f}", sent_s=f"{rate:.0f}")
            bar.update()
            mid = cfg.checkpoint_steps and state["step"] % cfg.checkpoint_steps == 0
            if main and mid and i + 1 < len(batches):
                _save_checkpoint(out / CHECKPOINT, model, opt, state, history)
            if fail_after and state["step"] >= fail_after:
                raise SimulatedCrash(f"{FAIL_AFTER_STEPS_ENV}={fail_after} reached")
        bar.close()
        elapsed = time.perf_counter() - t0

        # --- end of epoch: dev, lr decay, early stopping (same decision on every rank)
        dev_m = _evaluate(model, dev_data, labels.labels, device)
        record = {
            "epoch": epoch + 1, "lr": state["lr"], "steps": state["step"],
            "train_loss": state["loss_sum"] / max(1, state["seen"]),
            "train_accuracy": state["correct"] / max(1, state["seen"]),
            "dev_accuracy": dev_m["accuracy"], "dev_macro_f1": dev_m["macro_f1"],
            "seconds": elapsed, "sentences_per_second": state["seen"] * world / max(1e-9, elapsed),
        }
        history.append(record)
        if dev_m["accuracy"] > state["best"]:
            state.update(best=dev_m["accuracy"], best_epoch=epoch + 1, bad_epochs=0)
            if main:
                _save_weights(out / BEST, model)
        else:
            state["bad_epochs"] += 1
            state["lr"] *= cfg.lr_decay
            _set_lr(opt, state["lr"])
        state["stopped"] = state["bad_epochs"] >= cfg.patience or state["lr"] < cfg.min_lr
        state.update(epoch=epoch + 1, batch=0, loss_sum=0.0, correct=0, seen=0)
        if main:
            _save_checkpoint(out / CHECKPOINT, model, opt, state, history)
            write_json(out / "metrics.json", {"epochs": history, "best_epoch": state["best_epoch"]})
        if show:
            tqdm.write(
                f"epoch {epoch + 1}: loss {record['train_loss']:.4f} dev acc "
                f"{record['dev_accuracy']:.4f} lr {record['lr']:.2g} "
                f"({record['sentences_per_second']:.0f} sent/s)"
            )

    # --- final: best weights, dev/test metrics, attention analysis
    from safetensors.torch import load_file

    if world > 1:
        dist.barrier()  # rank 0 has written the best weights
    model.load_state_dict(load_file(str(out / BEST)))
    metrics = {
        "run_dir": str(out), "epochs": history, "best_epoch": state["best_epoch"],
        "stopped_early": state["stopped"] and state["epoch"] < cfg.epochs,
        "dev": _evaluate(model, dev_data, labels.labels, device),
        "test": None if test_data is None else _evaluate(model, test_data, labels.labels, device),
    }
    metrics["best_dev_accuracy"] = metrics["dev"]["accuracy"]
    if metrics["test"] is not None:
        metrics["test_accuracy"] = metrics["test"]["accuracy"]
    if main:
        write_json(out / "metrics.json", metrics)
        _analyse(out, model, dev_data, train_data, history)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return metrics


def _analyse(out: Path, model: MetaEmbeddingClassifier, dev: TaskData, train: TaskData,
             history: list[dict[str, Any]]) -> None:
    from metaprep.learn.analysis import attention_analysis, plot_attention, plot_learning_curves

    report = attention_analysis(model, dev, token_counts(train))
    write_json(out / "analysis.json", report)
    plot_learning_curves(history, out / "learning_curves.png")
    plot_attention(report, out / "attention_by_source.png")
