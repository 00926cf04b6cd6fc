"""What the epochs of a training run share (learn/train.py's loop): the model and optimizer, the
counters a checkpoint saves, the best weights so far and when the last checkpoint was written;
and joining the process group when torchrun started the run."""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from metaprep import distributed
from metaprep.learn.config import RunConfig
from metaprep.learn.model import MetaEmbeddingClassifier, weights_state_dict
from metaprep.learn.pace import RunPace
from metaprep.learn.prepare import Data
from metaprep.learn.rundir import Checkpoint, Run, scratch_folder
from metaprep.learn.scratch import Scratch

__all__ = ["Loop", "fresh_state", "join_world", "set_lr", "wrap_ddp"]


@dataclass
class Loop:
    """What the epochs share, set up once."""

    cfg: RunConfig
    run: Run
    data: Data  # train, dev, test
    model: MetaEmbeddingClassifier
    net: torch.nn.Module  # the model, or its DDP wrapper
    opt: Any  # learn.adam.Adam, or learn.optim.Split (dense + sparse)
    device: torch.device
    rank: int
    world: int
    show: bool  # progress bars and a line per epoch (rank 0 only)
    state: dict[str, Any]  # the counters a checkpoint saves (fresh_state)
    history: list[dict[str, Any]]  # one record per finished epoch
    clip: list[torch.nn.Parameter]  # the weights whose gradient norm is clipped
    pos_weight: torch.Tensor | None = None  # multi-label: (C,) weights of the positives
    teacher: torch.Tensor | None = None  # (N, C) the teacher's probabilities of the train texts
    pace: RunPace = field(default_factory=RunPace)  # where the whole run is (learn/pace.py)
    best: dict[str, torch.Tensor] | None = None  # rank 0: the best epoch's weights (keep_best)
    saved_at: float = field(default_factory=lambda: time.monotonic())  # the last checkpoint

    @property
    def main(self) -> bool:
        return self.rank == 0  # the only rank that writes

    def checkpoint(self) -> None:
        self.run.save_checkpoint(Checkpoint(weights_state_dict(self.model), self.opt.state_dict(),
                                            self.state, self.history, self.best))
        self.saved_at = time.monotonic()

    def keep_best(self, state: dict[str, torch.Tensor]) -> None:
        """A copy of ``state`` as the best weights, in buffers mapped from files beside the run
        (made at the first call; in memory where none can be written there)."""
        if self.best is None:
            with Scratch.beside(*scratch_folder(self.run.path, os.getpid())) as scratch:
                self.best = {k: torch.from_numpy(scratch.shared(tuple(v.shape), _numpy(v.dtype)))
                             for k, v in state.items()}  # on the CPU, whatever the device
        for k, v in state.items():
            self.best[k].copy_(v)

    def checkpoint_due(self) -> bool:
        return time.monotonic() - self.saved_at >= self.cfg.checkpoint_seconds


def fresh_state(cfg: RunConfig, world: int = 1) -> dict[str, Any]:
    """The loop's counters before the first step; ``world``: the processes training (each
    epoch's batches are split between them, so a resume needs as many)."""
    return {"world": world, "epoch": 0, "batch": 0, "step": 0, "lr": cfg.lr, "best": -1.0,
            "best_epoch": -1, "bad_epochs": 0, "stopped": False, "loss_sum": 0.0, "correct": 0,
            "seen": 0}


# --- setup --------------------------------------------------------------------------------------
def join_world() -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the process group when torchrun started us."""
    import torch.distributed as dist

    launch = distributed.world()
    world, local = launch.size, launch.local_rank
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    return rank, world, device


def wrap_ddp(model: MetaEmbeddingClassifier, world: int) -> torch.nn.Module:
    if world <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    # the frozen tables are identical on every rank: never broadcast them
    DDP._set_params_and_buffers_to_ignore_for_model(
        model, [name for name, _ in model.named_buffers()]
    )
    with warnings.catch_warnings():  # torch 2.13 deprecates it, but its replacement still
        # syncs the buffers once at start: the frozen tables, the very thing to keep local
        warnings.filterwarnings("ignore", "`broadcast_buffers` is deprecated", FutureWarning)
        return DDP(model, broadcast_buffers=False)


def set_lr(opt: Any, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def _numpy(dtype: torch.dtype) -> Any:
    return torch.empty(0, dtype=dtype).numpy().dtype
