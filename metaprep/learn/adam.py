"""Adam for the training loop without ``torch.optim``: the first use of any torch.optim optimizer
imports torch's compiler stack (torch._dynamo, 1.7 s of a 15 s run on a 1.2k-text task), which
training never uses.

``Adam`` is torch.optim.Adam's foreach update (no weight decay, no amsgrad) and ``RowAdam``
SparseAdam's, bit for bit (tests/learn/test_adam.py). Their ``state_dict`` has torch.optim's
layout, so checkpoints written with either load into the other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

__all__ = ["Adam", "RowAdam"]

# torch.optim.Adam's group settings: a checkpoint's groups are compared with these on resume
_ADAM = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "amsgrad": False,
         "maximize": False, "foreach": True, "capturable": False, "differentiable": False,
         "fused": None, "decoupled_weight_decay": False}
_SPARSE_ADAM = {"betas": (0.9, 0.999), "eps": 1e-8, "maximize": False}


class _Optimizer:
    """What the loop and the checkpoint use of an optimizer: param_groups, state, zero_grad,
    state_dict and load_state_dict, as torch.optim has them."""

    def __init__(self, groups: Iterable[Any], lr: float, defaults: dict[str, Any]) -> None:
        groups = list(groups)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.param_groups: list[dict[str, Any]] = []
        for group in groups:
            settings = {"lr": lr, **defaults, **{k: v for k, v in group.items() if k != "params"}}
            self.param_groups.append({"params": list(group["params"]), **settings})
        self.state: dict[torch.nn.Parameter, dict[str, Any]] = {}

    def _params(self) -> list[torch.nn.Parameter]:
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self._params():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def state_dict(self) -> dict[str, Any]:
        index = {id(p): i for i, p in enumerate(self._params())}
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": list(range(start, start + n))})
            start += n
        return {"state": {index[id(p)]: s for p, s in self.state.items()},
                "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As torch.optim loads one: the saved settings replace the groups' (the caller checks
        them), moments are cast to their weight's dtype and device; ValueError if the groups do
        not match."""
        groups, saved = self.param_groups, state_dict.get("param_groups")
        if not isinstance(saved, list) or len(saved) != len(groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(not isinstance(s, dict) or len(s.get("params", ())) != len(g["params"])
               for g, s in zip(groups, saved, strict=True)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match "
                             "the size of optimizer's group")
        params = {i: p for i, p in enumerate(self._params())}
        state: dict[torch.nn.Parameter, dict[str, Any]] = {}
        for key, values in dict(state_dict.get("state", {})).items():
            if key not in params or not isinstance(values, dict):
                raise ValueError(f"optimizer state for an unknown weight {key!r}")
            p = params[key]
            state[p] = {k: v.to(p.device, p.dtype) if isinstance(v, torch.Tensor)
                        and k != "step" and v.is_floating_point() else v
                        for k, v in values.items()}
        for group, s in zip(groups, saved, strict=True):
            group.update({k: v for k, v in s.items() if k != "params"})
        self.state = state


class Adam(_Optimizer):
    """torch.optim.Adam(params, lr, foreach=True), as the loop uses it."""

    def __init__(self, params: Iterable[Any], lr: float) -> None:
        super().__init__(params, lr, _ADAM)

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            beta1, beta2 = group["betas"]
            for p in params:
                if not self.state.get(p):
                    self.state[p] = {"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(p),
                                     "exp_avg_sq": torch.zeros_like(p)}
            states = [self.state[p] for p in params]
            grads = [p.grad for p in params]
            m, v = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
            steps = [s["step"] for s in states]
            # torch.optim.adam._multi_tensor_adam's sequence, op for op
            torch._foreach_add_(steps, torch.tensor(1.0), alpha=1.0)
            torch._foreach_lerp_(m, grads, 1 - beta1)
            torch._foreach_mul_(v, beta2)
            torch._foreach_addcmul_(v, grads, grads, 1 - beta2)
            counts = [float(t.item()) for t in steps]
            step_size = [(group["lr"] / (1 - beta1**t)) * -1 for t in counts]
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, [(1 - beta2**t) ** 0.5 for t in counts])
            torch._foreach_add_(denom, group["eps"])
            torch._foreach_addcdiv_(params, m, denom, step_size)


class RowAdam(_Optimizer):
    """SparseAdam's update through row gathers and scatters instead of sparse tensor arithmetic
    (its sparse_mask and sparse adds took about a quarter of a training step of the fast
    preset). Same state, same checkpoint."""

    def __init__(self, params: Iterable[Any], lr: float) -> None:
        super().__init__(params, lr, _SPARSE_ADAM)

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps = float(group["lr"]), group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.setdefault(p, {})
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p),
                                 exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                grad = p.grad.coalesce()  # the update is not linear: each row once
                rows, values = grad._indices()[0], grad._values()
                if values.numel() == 0:
                    continue
                m, v = state["exp_avg"], state["exp_avg_sq"]
                old_m, old_v = m.index_select(0, rows), v.index_select(0, rows)
                new_m = values.sub(old_m).mul_(1 - beta1).add_(old_m)  # as SparseAdam adds
                new_v = values.pow(2).sub_(old_v).mul_(1 - beta2).add_(old_v)
                m.index_copy_(0, rows, new_m)
                v.index_copy_(0, rows, new_v)
                t = state["step"]
                size = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
                p.index_add_(0, rows, -size * new_m.div_(new_v.sqrt_().add_(eps)))
