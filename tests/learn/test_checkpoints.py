"""When a run writes its files (learn/train.py): the best weights kept in memory and carried by
each checkpoint, best.safetensors written once at the end, and a checkpoint at an epoch's end
only once ``checkpoint_seconds`` have passed. A kill before the first checkpoint restarts the
run; a kill after it resumes to the uninterrupted run's result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from crashkit import SimulatedCrash, crash_after
from safetensors.torch import load_file, save_file
from test_data import make_task
from test_train import comparable

from metaprep.errors import ModelError
from metaprep.learn import train as learn_train
from metaprep.learn.config import RunConfig
from metaprep.learn.rundir import Run, run_state
from metaprep.learn.train import train

# 48 examples, batch 8: 6 steps an epoch
TINY = {"method": "dme", "proj_dim": 8, "hidden": 8, "mlp_hidden": 8, "batch_size": 8,
        "lr": 0.01, "epochs": 4, "learned_dim": 4, "learned_dropout": 0.2}


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_task(tmp_path_factory.mktemp("task"))


def run(task: dict[str, Path], out: Path, cfg: RunConfig | None, **kw: Any) -> dict[str, Any]:
    return train(cfg, store=task["store"], train_data=task["train"], dev=task["dev"],
                 test=task["test"], out=out, progress=False, **kw)


@pytest.fixture(scope="module")
def whole(task: dict[str, Path]) -> dict[str, Any]:
    return run(task, task["store"].parent / "whole", RunConfig(**TINY))


def writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Each best-weights and checkpoint write of the runs to come, with its epoch."""
    done: list[tuple[str, int]] = []
    best, ckpt = Run.save_best, Run.save_checkpoint

    def save_best(self: Run, state: Any) -> None:
        done.append(("best", -1))
        best(self, state)

    def save_checkpoint(self: Run, checkpoint: Any) -> None:
        done.append(("checkpoint", checkpoint.progress["epoch"]))
        ckpt(self, checkpoint)

    monkeypatch.setattr(Run, "save_best", save_best)
    monkeypatch.setattr(Run, "save_checkpoint", save_checkpoint)
    return done


def test_a_short_run_writes_its_best_weights_once_and_no_checkpoint(
        task: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = writes(monkeypatch)
    metrics = run(task, tmp_path / "r", RunConfig(**TINY), keep_checkpoint=False)
    assert done == [("best", -1)]
    assert run_state(tmp_path / "r") == "weights-only" and metrics["best_epoch"] >= 1
    done.clear()
    run(task, tmp_path / "k", RunConfig(**TINY), keep_checkpoint=True)  # the last state kept
    assert done == [("checkpoint", 4), ("best", -1)]


def test_checkpoints_come_when_their_time_is_due(task: dict[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A clock that moves 25 s at every reading: a checkpoint at an epoch's end only once 60 s
    have passed since the last (or the start), never at the last epoch (the end writes)."""
    done = writes(monkeypatch)
    ticks = iter(range(0, 10_000, 25))
    monkeypatch.setattr(learn_train.time, "monotonic", lambda: float(next(ticks)))
    run(task, tmp_path / "r", RunConfig(**{**TINY, "epochs": 8}), keep_checkpoint=False)
    epochs = [e for kind, e in done if kind == "checkpoint"]
    assert epochs and len(epochs) < 7 and 8 not in epochs
    assert all(b - a >= 2 for a, b in zip(epochs, epochs[1:], strict=False))


def test_a_kill_before_the_first_checkpoint_starts_the_run_over(
        task: dict[str, Path], whole: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "r"
    with crash_after(9), pytest.raises(SimulatedCrash):  # inside epoch 2
        run(task, out, RunConfig(**TINY))
    assert run_state(out) == "started" and not (out / "best.safetensors").exists()
    assert comparable(run(task, out, None, resume=True)) == comparable(whole)


def test_a_checkpoint_carries_the_best_weights(task: dict[str, Path], whole: dict[str, Any],
                                               tmp_path: Path) -> None:
    out = tmp_path / "r"
    cfg = RunConfig(**{**TINY, "checkpoint_seconds": 0})
    with crash_after(15), pytest.raises(SimulatedCrash):  # inside epoch 3
        run(task, out, cfg)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["progress"]["epoch"] == 2 and set(ckpt["best"]) == set(ckpt["model"])
    assert not (out / "best.safetensors").exists()  # written once, at the end
    assert comparable(run(task, out, None, resume=True)) == comparable(whole)
    final = load_file(str(out / "best.safetensors"))
    assert all(torch.equal(final[k], v)
               for k, v in load_file(str(Path(whole["run_dir"]) / "best.safetensors"))
               .items())


def test_an_older_checkpoint_finds_its_best_weights_beside_it(
        task: dict[str, Path], whole: dict[str, Any], tmp_path: Path) -> None:
    """Checkpoints written before they carried the best weights: best.safetensors is read; with
    neither, a one-line error naming the checkpoint."""
    out = tmp_path / "r"
    with crash_after(15), pytest.raises(SimulatedCrash):
        run(task, out, RunConfig(**{**TINY, "checkpoint_seconds": 0}))
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    best = ckpt.pop("best")
    torch.save(ckpt, out / "checkpoint.pt")
    with pytest.raises(ModelError, match="missing best.safetensors"):
        run(task, out, None, resume=True)
    save_file(best, str(out / "best.safetensors"))
    assert comparable(run(task, out, None, resume=True)) == comparable(whole)


def test_best_weights_of_another_shape_in_a_checkpoint_are_refused(
        task: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r"
    with crash_after(15), pytest.raises(SimulatedCrash):
        run(task, out, RunConfig(**{**TINY, "checkpoint_seconds": 0}))
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    name = next(iter(ckpt["best"]))
    ckpt["best"][name] = torch.zeros(3)
    torch.save(ckpt, out / "checkpoint.pt")
    with pytest.raises(ModelError, match="best weights do not fit the model") as err:
        run(task, out, None, resume=True)
    assert "checkpoint.pt" in str(err.value) and "\n" not in str(err.value)


def test_a_resume_needs_as_many_processes_as_the_checkpoint_had(
        task: dict[str, Path], whole: dict[str, Any], tmp_path: Path) -> None:
    """Each epoch's batches are split between the training processes: a checkpoint of two
    processes is not resumed by one (one line naming it); a checkpoint older than the count
    was one process's."""
    out = tmp_path / "r"
    with crash_after(15), pytest.raises(SimulatedCrash):
        run(task, out, RunConfig(**{**TINY, "checkpoint_seconds": 0}))
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["progress"]["world"] == 1
    torch.save({**ckpt, "progress": {**ckpt["progress"], "world": 2}}, out / "checkpoint.pt")
    with pytest.raises(ModelError, match="checkpointed by 2 training process") as err:
        run(task, out, None, resume=True)
    assert "checkpoint.pt" in str(err.value) and "\n" not in str(err.value)
    del ckpt["progress"]["world"]
    torch.save(ckpt, out / "checkpoint.pt")
    assert comparable(run(task, out, None, resume=True)) == comparable(whole)


def test_plots_are_drawn_when_asked(task: dict[str, Path], tmp_path: Path) -> None:
    run(task, tmp_path / "a", RunConfig(**{**TINY, "epochs": 1}))
    assert not list((tmp_path / "a").glob("*.png"))
    run(task, tmp_path / "b", RunConfig(**{**TINY, "epochs": 1}), plots=True)
    assert sorted(p.name for p in (tmp_path / "b").glob("*.png")) == [
        "attention_by_source.png", "learning_curves.png"]
