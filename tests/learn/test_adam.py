"""learn/adam.py: torch.optim's Adam and SparseAdam updates bit for bit, their checkpoints
interchangeable, and training without torch's compiler stack."""

from __future__ import annotations

import copy
import subprocess
import sys

import torch

from metaprep.learn.adam import Adam, RowAdam


def _dense_pair() -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    torch.manual_seed(0)
    shapes = [(5, 3), (3,), (2, 4, 2)]
    a = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    return a, [torch.nn.Parameter(p.detach().clone()) for p in a]


def _steps(params: list[torch.nn.Parameter], opt: object, steps: range) -> None:
    for step in steps:
        g = torch.Generator().manual_seed(step)
        opt.zero_grad()  # type: ignore[attr-defined]
        sum((p * torch.randn(p.shape, generator=g)).sum() ** 2 for p in params).backward()
        opt.step()  # type: ignore[attr-defined]


def test_adam_is_torch_adam_bit_for_bit() -> None:
    ours_p, theirs_p = _dense_pair()
    ours, theirs = Adam(ours_p, lr=0.01), torch.optim.Adam(theirs_p, lr=0.01, foreach=True)
    for step in range(8):
        for p, opt in ((ours_p, ours), (theirs_p, theirs)):
            _steps(p, opt, range(step, step + 1))
        assert all(torch.equal(x, y) for x, y in zip(ours_p, theirs_p, strict=True))
    ours.param_groups[0]["lr"] = theirs.param_groups[0]["lr"] = 0.003  # the loop sets the lr
    _steps(ours_p, ours, range(8, 10))
    _steps(theirs_p, theirs, range(8, 10))
    assert all(torch.equal(x, y) for x, y in zip(ours_p, theirs_p, strict=True))


def test_checkpoints_load_both_ways() -> None:
    """An optimizer state saved by torch.optim.Adam (older checkpoints) loads into Adam and
    continues identically; Adam's state loads into torch.optim.Adam."""
    ours_p, theirs_p = _dense_pair()
    theirs = torch.optim.Adam(theirs_p, lr=0.01, foreach=True)
    _steps(theirs_p, theirs, range(3))
    ours_p = [torch.nn.Parameter(p.detach().clone()) for p in theirs_p]
    ours = Adam(ours_p, lr=0.01)
    ours.load_state_dict(copy.deepcopy(theirs.state_dict()))  # as from a file: not shared
    assert ours.param_groups[0].keys() == theirs.param_groups[0].keys()
    _steps(ours_p, ours, range(3, 6))
    _steps(theirs_p, theirs, range(3, 6))
    assert all(torch.equal(x, y) for x, y in zip(ours_p, theirs_p, strict=True))
    again = torch.optim.Adam([torch.nn.Parameter(p.detach().clone()) for p in ours_p], lr=0.01,
                             foreach=True)
    again.load_state_dict(copy.deepcopy(ours.state_dict()))
    assert torch.equal(again.state_dict()["state"][0]["exp_avg"],
                       ours.state_dict()["state"][0]["exp_avg"])


def test_a_state_of_other_groups_is_refused() -> None:
    ours_p, _ = _dense_pair()
    ours = Adam(ours_p, lr=0.01)
    state = ours.state_dict()
    state["param_groups"][0]["params"] = [0]
    try:
        ours.load_state_dict(state)
    except ValueError as exc:
        assert "size" in str(exc)
    else:
        raise AssertionError("a group of another size loaded")


def test_row_adam_is_sparse_adam_bit_for_bit_and_loads_its_state() -> None:
    torch.manual_seed(0)
    table = torch.randn(40, 6)
    a, b = torch.nn.Parameter(table.clone()), torch.nn.Parameter(table.clone())
    ours, theirs = RowAdam([a], lr=0.05), torch.optim.SparseAdam([b], lr=0.05)
    for step in range(6):
        rows = torch.randint(0, 40, (25,), generator=torch.Generator().manual_seed(step))
        for p, opt in ((a, ours), (b, theirs)):
            opt.zero_grad()
            torch.nn.functional.embedding(rows, p, sparse=True).pow(2).sum().backward()
            opt.step()
        assert torch.equal(a.data, b.data)
    fresh = RowAdam([torch.nn.Parameter(b.detach().clone())], lr=0.05)
    fresh.load_state_dict(copy.deepcopy(theirs.state_dict()))
    assert fresh.state_dict()["param_groups"] == theirs.state_dict()["param_groups"]


def test_training_never_imports_the_compiler_stack(tmp_path: object) -> None:
    """The loop's optimizers, clipping and the rest: torch._dynamo stays unimported."""
    code = (
        "import sys, torch\n"
        "from metaprep.learn.optim import make_optimizer\n"
        "from metaprep.learn.config import RunConfig\n"
        "model = torch.nn.Sequential(torch.nn.Embedding(9, 4, sparse=False), "
        "torch.nn.Linear(4, 2))\n"
        "opt = make_optimizer(model, RunConfig())\n"
        "loss = model(torch.tensor([[1, 2]])).sum()\n"
        "opt.zero_grad(); loss.backward()\n"
        "torch.nn.utils.clip_grad_norm_(list(model.parameters()), 1.0)\n"
        "opt.step(); opt.state_dict()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"
