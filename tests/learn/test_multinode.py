"""Training on two machines, simulated here (docs/multi-node.md): two torchrun launches as two
nodes (--nnodes 2, --node-rank 0 and 1, rendezvous on 127.0.0.1), each with its own run
directory as if on its own disk, on a task of several batches per rank and epoch.

What they must give: what one process gets when each of its steps takes the batches the two ranks
take at that step, together (DDP averages the ranks' gradients: with batches of one size, the
gradient over their union). Not bit for bit: the all-reduce adds the two halves in another order
than one process sums its batch, and Adam carries the difference on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_data import make_task
from test_ddp import _free_port

import metaprep.learn.train as tr
from metaprep.learn.config import RunConfig
from metaprep.learn.data import LabelMap, load_task, shard_batches
from metaprep.learn.evaluate import model_logits
from metaprep.learn.rundir import Run

ROOT = Path(__file__).resolve().parents[2]
N_TRAIN, N_DEV, BATCH, EPOCHS, LR = 384, 96, 16, 3, 0.005  # 24 batches an epoch, 12 per rank
MODEL = {"proj_dim": 8, "hidden": 8, "mlp_hidden": 8}
WEIGHTS_ATOL = 1e-5  # float32 sums in another order, over 36 Adam steps (measured 7e-7)
PROBS_ATOL = 1e-5  # the best weights' dev probabilities (measured 1.2e-7)
SHIFT = "front.scorer.bias"


def cannot_start() -> str | None:
    """Why torchrun cannot start here, if it cannot."""
    if not torch.distributed.is_available():
        return "this torch build has no torch.distributed"
    try:
        _free_port()
    except OSError as exc:
        return f"no loopback socket for the rendezvous: {exc}"
    return None


def _node(rank: int, port: int, task: dict[str, Path], out: Path) -> subprocess.Popen[str]:
    """One node's launch: torchrun (as `python -m torch.distributed.run`) with one process."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node",
           "1", "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
           "-m", "metaprep", "train", "--store", str(task["store"]), "--train",
           str(task["train"]), "--dev", str(task["dev"]), "--proj-dim", "8", "--set", "hidden=8",
           "--set", "mlp_hidden=8", "--epochs", str(EPOCHS), "--batch-size", str(BATCH),
           "--lr", str(LR), "--threads", "1", "--quiet", "-o", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
    return subprocess.Popen(cmd, env=env, cwd=out.parents[1], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _both_ranks_at_once(batches: list[np.ndarray], rank: int, world: int) -> list[np.ndarray]:
    """One process's batches: at each step, what ranks 0 and 1 of two take, together."""
    shares = [shard_batches(batches, r, 2) for r in range(2)]
    return [np.concatenate(b) for b in zip(*shares, strict=True)]


def _dev_probabilities(run_dir: Path, dev: Path) -> np.ndarray:
    """(N, C) the best weights' class probabilities on ``dev``."""
    with Run.open(run_dir) as run:
        model = run.build_model()
        model.load_state_dict(run.load_best())
        data, _ = load_task(dev, run.encoder(), labels=LabelMap(run.labels), progress=False)
    return torch.softmax(torch.from_numpy(model_logits(model, data, 64, "cpu")), -1).numpy()


def finish_nodes(nodes: list[subprocess.Popen[str]]) -> list[tuple[str, str]]:
    """Each node's (stdout, stderr) once all have ended, each having exited 0; none left
    running whatever happens."""
    try:
        ends = [n.communicate(timeout=300) for n in nodes]
    finally:
        for n in nodes:
            n.kill()
    for n, (_, err) in zip(nodes, ends, strict=True):
        assert n.returncode == 0, err[-3000:]
    return ends


@pytest.mark.slow
@pytest.mark.skipif(cannot_start() is not None, reason=str(cannot_start()))
def test_two_nodes_equal_one_process_and_only_node0_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task = make_task(tmp_path, n_train=N_TRAIN, n_dev=N_DEV)
    port = _free_port()
    # each node its own disk: node 1's run directory must stay unwritten
    outs = [tmp_path / f"node{k}" / "run" for k in range(2)]
    nodes = [_node(k, port, task, outs[k]) for k in (1, 0)]
    ends = finish_nodes(nodes)
    (out1, _), (out0, _) = ends
    assert out1 == "" and "best epoch" in out0  # rank 0 (node 0) reports
    assert not outs[1].parent.exists()
    got = json.loads((outs[0] / "metrics.json").read_text())
    assert [e["steps"] for e in got["epochs"]] == [12, 24, 36]

    # the same run in this process, each step over both ranks' batches
    monkeypatch.setattr(tr, "shard_batches", _both_ranks_at_once)
    cfg = RunConfig(method="dme", epochs=EPOCHS, batch_size=BATCH, lr=LR, **MODEL)
    ref_out = tmp_path / "one" / "run"
    want = tr.train(cfg, store=task["store"], train_data=task["train"], dev=task["dev"],
                    out=ref_out, progress=False)
    assert [e["steps"] for e in want["epochs"]] == [12, 24, 36]
    a, b = load_file(outs[0] / "best.safetensors"), load_file(ref_out / "best.safetensors")
    assert a.keys() == b.keys()
    diff = {k: float((a[k] - b[k]).abs().max()) for k in a}
    # the attention scorer's bias shifts every source's score alike, which the softmax over the
    # sources ignores: its gradient is 0 but for rounding, which Adam (dividing by the gradient's
    # size) turns into steps of up to lr. It changes no output.
    assert diff.pop(SHIFT) <= EPOCHS * N_TRAIN / (2 * BATCH) * LR
    worst = max(diff.values())
    assert worst <= WEIGHTS_ATOL, f"best weights differ by up to {worst}"
    probs = np.abs(_dev_probabilities(outs[0], task["dev"])
                   - _dev_probabilities(ref_out, task["dev"])).max()
    assert probs <= PROBS_ATOL
    # dev accuracy: the same to one example (a text on the decision boundary may flip)
    assert got["best_epoch"] == want["best_epoch"]
    for mine, ref in zip(got["epochs"], want["epochs"], strict=True):
        assert abs(mine["dev_accuracy"] - ref["dev_accuracy"]) <= 1 / N_DEV
    assert abs(got["dev"]["accuracy"] - want["dev"]["accuracy"]) <= 1 / N_DEV
    assert got["dev"]["accuracy"] > 0.8  # it learned something: equal is not trivially so
