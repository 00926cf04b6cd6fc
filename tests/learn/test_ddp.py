"""Two-process DistributedDataParallel training on this machine (gloo on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from test_data import make_task


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, task: dict[str, Path], out: Path,
            log_dir: Path) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "GLOO_SOCKET_IFNAME": "lo"})
    torch.set_num_threads(1)
    import metaprep.learn.rundir as rd
    import metaprep.learn.train as tr
    import metaprep.learn.weights as wt
    from metaprep.learn.config import RunConfig

    writes: list[str] = []

    def recording(fn: Any, name: str) -> Any:
        def wrapper(*args: Any, **kw: Any) -> Any:
            writes.append(name)
            return fn(*args, **kw)
        return wrapper

    # every file the run directory gets goes through these
    rd.write_json = recording(rd.write_json, "write_json")
    wt.atomic_path = recording(wt.atomic_path, "atomic_path")  # weights and checkpoints
    tr._analyse = recording(tr._analyse, "analyse")
    cfg = RunConfig(method="dme", proj_dim=8, hidden=8, mlp_hidden=8, batch_size=8, lr=0.02,
                    epochs=4, patience=4)
    metrics = tr.train(cfg, store=task["store"], train_data=task["train"], dev=task["dev"], out=out,
                       progress=False)
    (log_dir / f"rank{rank}.json").write_text(json.dumps({"writes": writes, "metrics": metrics}))


def test_two_processes_train_and_only_rank0_writes(tmp_path: Path) -> None:
    task = make_task(tmp_path, n_train=64)
    out, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), task, out, logs), nprocs=2, join=True)
    r0 = json.loads((logs / "rank0.json").read_text())
    r1 = json.loads((logs / "rank1.json").read_text())
    assert r1["writes"] == [] and "analyse" in r0["writes"] and "write_json" in r0["writes"]
    m0, m1 = r0["metrics"], r1["metrics"]
    # 64 examples, batch 8: 8 batches an epoch, 4 per rank
    assert [e["steps"] for e in m0["epochs"]][:2] == [4, 8]
    # the ranks hold the same synchronised model, so they score dev identically
    assert m0["dev"] == m1["dev"]
    assert m0["epochs"][-1]["train_loss"] < m0["epochs"][0]["train_loss"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["analysis.json", "best.safetensors", "checkpoint.pt", "config.json", "data.json",
         "labels.json", "metrics.json", "store.json", "tokenizer.json"])


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_torchrun_cli(tmp_path: Path) -> None:
    task = make_task(tmp_path, n_train=32)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    cmd = ["torchrun", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
           str(_free_port()), "-m", "metaprep", "train", "--store", str(task["store"]),
           "--train", str(task["train"]), "--dev", str(task["dev"]), "--proj-dim", "8",
           "--set", "hidden=8", "--set", "mlp_hidden=8", "--epochs", "1", "--batch-size", "8",
           "--quiet",
           "-o", str(tmp_path / "run")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240,
                          cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("best epoch 1") == 1  # rank 0 reports
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs"][0]["steps"] == 2  # 32 examples, batch 8: 4 batches, 2 per rank
