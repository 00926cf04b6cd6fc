"""The optimizer of a training run: Adam, as in the paper; with a learned source (learn/learned.py)
its tables are updated sparsely (SparseAdam's update: only the rows a batch used). Both are
learn/adam.py's, not torch.optim's (whose first use imports torch's compiler stack).

``Split`` looks like one optimizer to the training loop: ``param_groups`` (the lr is set through
them), ``zero_grad``, ``step``, and one ``state_dict`` of plain tensors and numbers for the
checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from metaprep.learn.adam import Adam, RowAdam
from metaprep.learn.config import RunConfig

__all__ = [
    "Split",
    "clipped_parameters",
    "make_optimizer",
    "optimizer_settings",
    "state_problem",
]


class Split:
    """A dense and a sparse optimizer stepped together."""

    def __init__(self, dense: Adam, sparse: RowAdam) -> None:
        self.dense, self.sparse = dense, sparse

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [*self.dense.param_groups, *self.sparse.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.dense.zero_grad(set_to_none=set_to_none)
        self.sparse.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.dense.step()
        self.sparse.step()

    def state_dict(self) -> dict[str, Any]:
        return {"dense": self.dense.state_dict(), "sparse": self.sparse.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"dense", "sparse"}:
            raise ValueError("the optimizer state is not a dense + sparse pair")
        self.dense.load_state_dict(state["dense"])
        self.sparse.load_state_dict(state["sparse"])


def _learned(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    learned = getattr(getattr(model, "front", None), "learned", None)
    return list(learned.parameters()) if learned is not None else []


def make_optimizer(model: torch.nn.Module, cfg: RunConfig) -> Any:
    """Adam over the trainable weights; the learned tables as the module docstring says."""
    mine = _learned(model)
    ids = {id(p) for p in mine}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    if not mine:
        return Adam(rest, lr=cfg.lr)
    scale = cfg.learned_lr_scale  # kept in the group: the loop sets lr x lr_scale
    return Split(Adam(rest, lr=cfg.lr), RowAdam(
        [{"params": mine, "lr": cfg.lr * scale, "lr_scale": scale}], lr=cfg.lr))


def clipped_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The weights whose gradient norm is clipped: all but sparse learned tables (an embedding
    row's gradient is bounded by its batch; torch cannot clip sparse gradients in place)."""
    sparse = {id(p) for p in _learned(model)} if _is_sparse(model) else set()
    return [p for p in model.parameters() if p.requires_grad and id(p) not in sparse]


def _is_sparse(model: torch.nn.Module) -> bool:
    learned = getattr(getattr(model, "front", None), "learned", None)
    return bool(learned is not None and learned.sparse)


def optimizer_settings(opt: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in g.items() if k not in ("params", "lr")} for g in opt.param_groups]


def state_problem(opt: Any, fresh: list[dict[str, Any]]) -> str | None:
    """What is wrong with a loaded optimizer state (a checkpoint may come from anyone), or None:
    its settings must be ``fresh``'s (``optimizer_settings`` of the optimizer the config makes:
    the lr is the loop's), and every per-weight tensor of the weight's shape and finite (a wrong
    shape fails at the first step, a NaN moment trains on NaN)."""
    if optimizer_settings(opt) != fresh:
        return "its optimizer settings are not the ones the config makes"
    for one in (opt.dense, opt.sparse) if isinstance(opt, Split) else (opt,):
        for param, state in one.state.items():
            for key, value in state.items():
                if not isinstance(value, torch.Tensor):  # SparseAdam counts steps in an int
                    if isinstance(value, bool) or not isinstance(value, (int, float)) \
                            or not math.isfinite(value):
                        return f"optimizer state {key!r} is {value!r}"
                    continue
                if value.dim() and value.shape != param.shape:
                    return (f"optimizer state {key!r} has shape {list(value.shape)}, its weight "
                            f"{list(param.shape)}")
                if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    return f"optimizer state {key!r} holds a NaN or infinite value"
    return None
