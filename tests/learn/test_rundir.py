"""The run directory (metaprep.learn.rundir): round trips, damaged files, and resuming or restarting
a run from nothing but its directory."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from crashkit import SimulatedCrash, crash_after
from exportkit import train_options
from test_data import make_store, make_task, write_tsv
from test_train import comparable

from metaprep.cli import cli, main
from metaprep.errors import ConfigError, DataError, ModelError, StoreError
from metaprep.learn import rundir
from metaprep.learn.config import RunConfig
from metaprep.learn.rundir import Checkpoint, DataRecord, FileRef, Run, StoreRef, run_state
from metaprep.learn.train import train
from metaprep.prep.store import Store
from metaprep.tokenize import TokenizerConfig

TINY = {"method": "dme", "proj_dim": 8, "hidden": 8, "mlp_hidden": 8, "batch_size": 8,
        "lr": 0.01, "epochs": 2, "learned_dim": 4,
        "learned_dropout": 0.2,  # 48 examples: 6 steps an epoch
        "checkpoint_seconds": 0}  # a checkpoint at every epoch's end: resumes to test


def tiny(**kw: Any) -> RunConfig:
    return RunConfig(**{**TINY, **kw})


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_task(tmp_path_factory.mktemp("rundir"))


@pytest.fixture(scope="module")
def whole(task: dict[str, Path]) -> dict[str, Any]:
    """An uninterrupted run (with a test file): what every resumed run must reproduce."""
    out = task["store"].parent / "whole"
    metrics = train(tiny(), store=task["store"], train_data=task["train"], dev=task["dev"],
                    test=task["test"], out=out, progress=False)
    return {"run": out, "metrics": metrics}


def crashed(task: dict[str, Path], out: Path, steps: int,
            cfg: RunConfig | None = None) -> Path:
    """A run killed after ``steps`` optimizer steps."""
    with crash_after(steps), pytest.raises(SimulatedCrash):
        train(cfg or tiny(), store=task["store"], train_data=task["train"], dev=task["dev"],
              test=task["test"], out=out, progress=False)
    return out


def same_as_whole(metrics: dict[str, Any], out: Path, whole: dict[str, Any]) -> None:
    assert comparable(metrics) == comparable(whole["metrics"])
    a = Run.open(whole["run"]).load_best()
    b = Run.open(out).load_best()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def one_line(exc: pytest.ExceptionInfo[Exception], *names: str) -> str:
    text = str(exc.value)
    assert "\n" not in text and all(n in text for n in names), text
    return text


# --- round trip ---------------------------------------------------------------------------------
def test_a_run_cutting_texts_elsewhere_than_its_config_is_refused(task: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    """One max_tokens: tokenizer.json and config.json must agree (a hand edit, or a run written
    before the limit was a run option, is refused rather than served differently)."""
    with Store(task["store"]) as st:
        cfg = RunConfig(method="dme", sources=["a", "b"], source_dims=[6, 4],
                        vocab_size=st.vocab_size, proj_dim=4, hidden=4, mlp_hidden=4,
                        num_labels=3, max_tokens=40)
        Run.create(tmp_path / "r", config=cfg, labels=["x", "y", "z"],
                   tokenizer=TokenizerConfig(), store_ref=StoreRef.of(st), data=DataRecord())
    saved = json.loads((tmp_path / "r" / "tokenizer.json").read_text())
    assert saved["max_tokens"] == 40  # written from the config
    for value in (None, 41):
        (tmp_path / "r" / "tokenizer.json").write_text(json.dumps({**saved, "max_tokens": value}))
        with pytest.raises(ModelError) as exc:
            Run.open(tmp_path / "r")
        assert "tokenizer.json" in str(exc.value) and "40" in str(exc.value)


def test_description_round_trip_and_lazy_store(task: dict[str, Path], tmp_path: Path) -> None:
    with Store(task["store"]) as st:
        ref = StoreRef.of(st)
        cfg = RunConfig(method="cdme", sources=["a", "b"], source_dims=[6, 4],
                        vocab_size=st.vocab_size, proj_dim=4, hidden=4, mlp_hidden=4,
                        num_labels=3)
    tok = TokenizerConfig(mode="whitespace", lowercase=True)
    data = DataRecord(train=FileRef.of(task["train"]), dev=FileRef.of(task["dev"]))
    written = Run(tmp_path / "r", config=cfg, labels=["x", "y", "z"], tokenizer=tok,
                  store_ref=ref, data=data)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / ".config.json.999.tmp").write_text("{")  # a killed write's leftover
    written.write_description()
    assert not list((tmp_path / "r").glob(".*.tmp"))
    assert run_state(tmp_path / "r") == "started"

    run = Run.open(tmp_path / "r")
    assert (run.config, run.labels, run.tokenizer, run.store_ref, run.data) == (
        cfg, ["x", "y", "z"], replace(tok, max_tokens=cfg.max_tokens), ref, data)
    assert run.data.test is None and run.metrics is None
    assert run._store is None  # opening reads the small files only
    assert run.store() is run.store()  # one handle
    enc = run.encoder()
    assert enc.tokens("Good FILM") == ["good", "film"]  # the run's tokenizer
    assert enc.vocab.case_policy == ref.case_policy
    run.write_metrics({"epochs": [{"dev_accuracy": 0.5}], "best_epoch": 1})
    assert run.metrics == {"epochs": [{"dev_accuracy": 0.5}], "best_epoch": 1}

    state = {"w": torch.arange(6.0).reshape(2, 3)}
    run.save_best(state)
    assert torch.equal(run.load_best()["w"], state["w"])
    run.save_checkpoint(Checkpoint(state, {"state": {}, "param_groups": []}, {"epoch": 1}, []))
    ckpt = run.load_checkpoint()
    assert ckpt.progress == {"epoch": 1} and torch.equal(ckpt.model["w"], state["w"])
    assert run_state(tmp_path / "r") == "checkpointed"
    run.close()


def test_the_store_is_checked_once_and_can_be_gone(task: dict[str, Path], whole: dict[str, Any],
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = Store.sha256

    def counting(self: Store) -> str:
        calls.append(self.path)
        return real(self)

    monkeypatch.setattr(Store, "sha256", counting)
    with Run.open(whole["run"]) as run:
        run.encoder()
        run.load_model()
        assert len(calls) == 1
    other = make_store(tmp_path / "other.h5", seed=3)
    with pytest.raises(StoreError, match="not the store the run was started with: sha256") as e:
        Run.open(whole["run"], store=other).encoder()
    one_line(e, "other.h5")
    with Run.open(whole["run"], store=other, verify_store=False) as run:
        assert not run.load_model().training
    moved = shutil.copytree(whole["run"], tmp_path / "copy")
    ref = json.loads((moved / "store.json").read_text())
    (moved / "store.json").write_text(json.dumps({**ref, "path": str(tmp_path / "gone.h5")}))
    run = Run.open(moved)  # fine until the store is needed
    with pytest.raises(StoreError, match="the run's store is gone") as e:
        run.encoder()
    one_line(e, "gone.h5", "--store")
    with Run.open(moved, store=task["store"]) as run:
        assert run.encoder().encode("good film")


# --- damaged run directories --------------------------------------------------------------------
def _edit(name: str, change: Callable[[Any], Any]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        path = run / name
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return apply


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda run: (run / name).write_text(text)


def _replace_by(name: str, make: Callable[[Path], Any]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:  # a pipe blocked the read forever; a link read elsewhere
        (run / name).unlink()
        make(run / name)
    return apply


DAMAGE = {
    "config garbled": ("config.json", _write("config.json", '{"method": "dme",')),
    "config not an object": ("config.json", _write("config.json", "[1, 2]")),
    "config unknown key": ("config.json", _edit("config.json", lambda d: {**d, "layers": 2})),
    "config wrong type": ("config.json", _edit("config.json", lambda d: {**d, "hidden": "8"})),
    "config bad value": ("config.json", _edit("config.json", lambda d: {**d, "method": "x"})),
    "config missing": ("config.json", lambda run: (run / "config.json").unlink()),
    "labels count": ("labels.json", _write("labels.json", '["neg"]')),
    "labels type": ("labels.json", _write("labels.json", '["neg", 1]')),
    "labels twice": ("labels.json", _write("labels.json", '["neg", "neg"]')),
    "tokenizer key": ("tokenizer.json", _write("tokenizer.json", '{"lower": true}')),
    "tokenizer list": ("tokenizer.json", _write("tokenizer.json", "[]")),
    "store key": ("store.json", _edit("store.json", lambda d: {**d, "extra": 1})),
    "store missing key": ("store.json", _edit("store.json",
                                              lambda d: {k: v for k, v in d.items()
                                                         if k != "sha256"})),
    "store bool size": ("store.json", _edit("store.json", lambda d: {**d, "vocab_size": True})),
    "store size": ("store.json", _edit("store.json", lambda d: {**d, "vocab_size": 7})),
    "store sha": ("store.json", _edit("store.json", lambda d: {**d, "sha256": "abc"})),
    "store policy": ("store.json", _edit("store.json", lambda d: {**d, "case_policy": "up"})),
    "store missing": ("store.json", lambda run: (run / "store.json").unlink()),
    "data split": ("data.json", _edit("data.json", lambda d: {**d, "extra": None})),
    "data entry": ("data.json", _edit("data.json", lambda d: {**d, "dev": {"path": 1}})),
    "data binary": ("data.json", lambda run: (run / "data.json").write_bytes(b"\xff\xfe{")),
    "config nested": ("config.json", _write("config.json", "[" * 100_000)),
    "config pipe": ("config.json", _replace_by("config.json", lambda p: os.mkfifo(p))),
    "labels loop": ("labels.json", _replace_by("labels.json",
                                               lambda p: os.symlink("labels.json", p))),
    "store outside": ("store.json", _replace_by("store.json", lambda p: (
        (p.parent.parent / "o.json").write_text("{}"), os.symlink(p.parent.parent / "o.json",
                                                                  p)))),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_description_is_a_one_line_model_error(whole: dict[str, Any], tmp_path: Path,
                                                       case: str) -> None:
    name, damage = DAMAGE[case]
    run = shutil.copytree(whole["run"], tmp_path / "run")
    damage(run)
    with pytest.raises(ModelError) as e:
        Run.open(run)
    one_line(e, name)


def test_damaged_weights_and_checkpoints(whole: dict[str, Any], task: dict[str, Path],
                                         tmp_path: Path) -> None:
    run = shutil.copytree(whole["run"], tmp_path / "run")
    (run / "best.safetensors").write_bytes(b"")
    with pytest.raises(ModelError, match="unreadable weights") as e:
        Run.open(run).load_model()
    one_line(e, "best.safetensors")
    # NaN weights made every prediction one class, with accuracy reported as if nothing was wrong
    from safetensors.torch import load_file, save_file

    state = load_file(str(whole["run"] / "best.safetensors"))
    state["classifier.out.bias"] = state["classifier.out.bias"].clone().fill_(float("nan"))
    save_file(state, str(run / "best.safetensors"))
    with pytest.raises(ModelError, match="weight classifier.out.bias holds a NaN") as e:
        Run.open(run).load_model()
    one_line(e, "best.safetensors")
    checkpoint = torch.load(whole["run"] / "checkpoint.pt", weights_only=True)
    checkpoint["model"]["classifier.out.bias"] = state["classifier.out.bias"]
    torch.save(checkpoint, run / "checkpoint.pt")
    with pytest.raises(ModelError, match="weight classifier.out.bias holds a NaN") as e:
        Run.open(run).load_checkpoint()
    one_line(e, "checkpoint.pt")
    # an empty checkpoint, a pickled object (the loader would advise turning the safety off), a
    # file of the wrong shape: one line, naming the file, never advising weights_only=False
    (run / "checkpoint.pt").write_bytes(b"")
    torch.save({"model": {}, "optimizer": {}, "progress": Path("x"), "history": []},
               tmp_path / "pickled.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "shape.pt")
    for bad, match in (("", "not a readable checkpoint"), ("pickled.pt", "not a readable"),
                       ("shape.pt", "not a metaprep checkpoint")):
        if bad:
            shutil.copy(tmp_path / bad, run / "checkpoint.pt")
        for attempt in (lambda: Run.open(run).load_checkpoint(),
                        lambda: train(out=run, resume=True, progress=False)):
            with pytest.raises(ModelError, match=match) as e:
                attempt()
            assert "weights_only" not in one_line(e, "checkpoint.pt")
            assert e.value.__cause__ is None  # not even in a traceback
    for name in ("checkpoint.pt", "best.safetensors"):  # a pipe used to block forever
        (run / name).unlink(missing_ok=True)
        os.mkfifo(run / name)
    with pytest.raises(ModelError, match="checkpoint.pt is not a regular file") as e:
        Run.open(run).load_checkpoint()
    with pytest.raises(ModelError, match="best.safetensors is not a regular file") as e:
        Run.open(run).load_model()
    for name in ("checkpoint.pt", "best.safetensors"):
        (run / name).unlink()
        shutil.copy(whole["run"] / name, run / name)
    # a checkpoint of another model does not fit: one line too
    other = torch.load(whole["run"] / "checkpoint.pt", weights_only=True)
    other["model"] = {"front.unk": torch.zeros(3)}
    torch.save(other, run / "checkpoint.pt")
    with pytest.raises(ModelError, match="the checkpoint does not fit the run") as e:
        train(out=run, resume=True, progress=False)
    one_line(e, "checkpoint.pt")


def test_a_config_too_large_to_build_is_one_line(whole: dict[str, Any], tmp_path: Path) -> None:
    run = shutil.copytree(whole["run"], tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["hidden"] = 10**10  # an LSTM of 10**10 units: refused before torch tries
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="'hidden': must be from 1 to 16,384") as e:
        Run.open(run).load_model()
    one_line(e, "config.json")
    with pytest.raises(ModelError, match="'hidden': must be from 1 to 16,384") as e:
        train(out=run, resume=True, progress=False)
    one_line(e, "config.json")
    # sizes within the bounds are compared with the weights first, on the meta device
    config["hidden"] = 4_000
    (run / "config.json").write_text(json.dumps(config))
    for attempt in (lambda: Run.open(run).load_model(),
                    lambda: train(out=run, resume=True, progress=False)):
        with pytest.raises(ModelError, match="weights do not fit the config: encoder") as e:
            attempt()
        one_line(e, "config.json")


# --- resuming -----------------------------------------------------------------------------------
def test_resume_needs_nothing_but_the_run_directory(task: dict[str, Path], whole: dict[str, Any],
                                                    tmp_path: Path) -> None:
    out = crashed(task, tmp_path / "r", 9)  # dies inside epoch 2
    assert run_state(out) == "checkpointed"
    same_as_whole(train(out=out, resume=True, progress=False), out, whole)


def test_resume_refuses_what_differs_from_the_run(task: dict[str, Path], tmp_path: Path) -> None:
    out = crashed(task, tmp_path / "r", 3, tiny(checkpoint_steps=2))

    def resume(cfg: RunConfig | None = None, **kw: Any) -> None:
        train(cfg, out=out, resume=True, progress=False, **kw)

    with pytest.raises(ConfigError, match=r"lr is 0\.5 here but 0\.01 in the run") as e:
        resume(tiny(lr=0.5))
    one_line(e, "config.json")
    with pytest.raises(ConfigError, match="hidden is 16 here but 8"):
        resume(overrides={"hidden": 16})
    with pytest.raises(ConfigError, match="method is 'cdme' here but 'dme'"):
        resume(overrides={"method": "cdme", "sources": []})
    other_dev = write_tsv(tmp_path / "dev2.tsv", [("good film", "pos"), ("bad plot", "neg")])
    with pytest.raises(DataError, match="not the dev file the run was started with") as e:
        resume(dev=other_dev)
    one_line(e, "dev2.tsv", str(task["dev"].resolve()))
    with pytest.raises(StoreError, match="not the store the run was started with") as e:
        resume(store=make_store(tmp_path / "other.h5", seed=4))
    one_line(e, "other.h5")
    # the same files given explicitly, by another path, are fine
    copy = shutil.copy(task["train"], tmp_path / "train-copy.tsv")
    metrics = train(out=out, resume=True, progress=False, overrides={"hidden": 8, "sources": []},
                    train_data=copy, store=task["store"])
    assert len(metrics["epochs"]) == 2


def test_resume_refuses_a_changed_recorded_file(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    out = crashed(task, tmp_path / "r", 7)
    task["test"].write_text(task["test"].read_text() + "great film\tpos\n")
    with pytest.raises(DataError, match="changed since the run started") as e:
        train(out=out, resume=True, progress=False)
    one_line(e, "test.tsv")
    task["test"].unlink()
    with pytest.raises(DataError, match="the run's test file is gone") as e:
        train(out=out, resume=True, progress=False)
    one_line(e, "--test")


@pytest.mark.parametrize("resume", [False, True])
def test_a_run_killed_before_its_first_checkpoint_starts_over(
    task: dict[str, Path], whole: dict[str, Any], tmp_path: Path, resume: bool,
) -> None:
    out = crashed(task, tmp_path / "r", 2)  # 2 of 6 steps: no checkpoint yet
    assert run_state(out) == "started" and not (out / rundir.CHECKPOINT).exists()
    if resume:  # from scratch, with the saved config
        metrics = train(out=out, resume=True, progress=False)
    else:  # a new run over it
        metrics = train(tiny(), store=task["store"], train_data=task["train"], dev=task["dev"],
                        test=task["test"], out=out, progress=False)
    same_as_whole(metrics, out, whole)
    with pytest.raises(ConfigError, match="already holds a run"):  # now it has weights
        train(tiny(), store=task["store"], train_data=task["train"], dev=task["dev"], out=out,
              progress=False)


@pytest.mark.parametrize("resume", [False, True])
def test_a_run_stopped_between_its_first_best_weights_and_checkpoint_starts_over(
    task: dict[str, Path], whole: dict[str, Any], tmp_path: Path, resume: bool,
) -> None:
    """A kill -9 (or a full disk) between the two writes that end epoch 1 left best weights and
    no checkpoint: neither a rerun nor --resume was allowed, so the folder had to be removed."""
    out = shutil.copytree(whole["run"], tmp_path / "r")
    for name in (rundir.CHECKPOINT, rundir.METRICS):
        (out / name).unlink()
    (out / rundir.BEST).write_bytes(b"weights of the interrupted attempt")
    assert run_state(out) == "started"
    if resume:
        metrics = train(out=out, resume=True, progress=False)
    else:
        metrics = train(tiny(), store=task["store"], train_data=task["train"], dev=task["dev"],
                        test=task["test"], out=out, progress=False)
    same_as_whole(metrics, out, whole)


def test_nothing_to_resume_and_missing_inputs(task: dict[str, Path], whole: dict[str, Any],
                                              tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(out=tmp_path / "none", resume=True, progress=False)
    weights_only = shutil.copytree(whole["run"], tmp_path / "w")
    (weights_only / "checkpoint.pt").unlink()  # finished (it has metrics.json), then deleted
    assert run_state(weights_only) == "weights-only"
    # a resume of a finished run trains nothing: its recorded metrics, the options checked
    done = train(out=weights_only, resume=True, progress=False)
    assert done == json.loads((weights_only / "metrics.json").read_text())
    assert run_state(weights_only) == "weights-only"
    with pytest.raises(ConfigError, match="proj_dim"):
        train(tiny(proj_dim=3), out=weights_only, resume=True, progress=False)
    (weights_only / "metrics.json").write_text('{"epochs": []}')  # killed mid-write, or edited
    with pytest.raises(ModelError, match="lack their final scores"):
        train(out=weights_only, resume=True, progress=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(tiny(), store=task["store"], train_data=task["train"], dev=task["dev"],
              out=weights_only, progress=False)
    with pytest.raises(ConfigError, match="a new run needs --train, --dev") as e:
        train(tiny(), store=task["store"], out=tmp_path / "new", progress=False)
    one_line(e)
    assert not (tmp_path / "new").exists()


def test_cli_resume_with_the_run_directory_only(task: dict[str, Path], whole: dict[str, Any],
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--store", str(task["store"]), "--train", str(task["train"]), "--dev",
            str(task["dev"]), "--test", str(task["test"]), "--method", "dme", "--proj-dim", "8",
            "--set", "hidden=8", "--set", "mlp_hidden=8", "--batch-size", "8", "--lr", "0.01",
            "--epochs", "2", "--set", "learned_dim=4", "--set", "learned_dropout=0.2", "--quiet",
            "-o", str(tmp_path / "r")]
    with crash_after(9):
        assert isinstance(CliRunner().invoke(cli, args).exception, SimulatedCrash)
    # a default written out (--epochs 2 is the saved value) is fine; a differing one is not
    resume = ["metaprep", "train", "-o", str(tmp_path / "r"), "--resume", "--quiet", "--epochs",
              "2"]
    for extra in (["--lr", "0.02"], ["--method", "cdme"]):
        monkeypatch.setattr(sys, "argv", [*resume, *extra])
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "in the run being resumed" in err and "\n" not in err
    monkeypatch.setattr(sys, "argv", resume)
    main()
    assert "best epoch" in capsys.readouterr().out
    same_as_whole(json.loads((tmp_path / "r" / "metrics.json").read_text()), tmp_path / "r", whole)


def test_pipeline_train_figures_read_through_the_run(whole: dict[str, Any],
                                                     tmp_path: Path) -> None:
    from metaprep.pipeline.figures import stage_figures

    run = shutil.copytree(whole["run"], tmp_path / "run")
    metrics = whole["metrics"]
    assert stage_figures("train", tmp_path) == {
        "best_dev_acc": round(metrics["best_dev_accuracy"], 4),
        "test_acc": round(metrics["test_accuracy"], 4)}
    rundir.write_json(run / "metrics.json", {"epochs": metrics["epochs"][:1], "best_epoch": 1})
    assert stage_figures("train", tmp_path) == {  # still training: the best epoch so far
        "best_dev_acc": round(metrics["epochs"][0]["dev_accuracy"], 4), "epochs": 1}
    (run / "config.json").write_text("{")  # damaged: no figures, and no failure
    assert stage_figures("train", tmp_path) == {}
    assert stage_figures("train", tmp_path / "nothing") == {}


def test_weights_that_are_not_finite_are_never_written(whole: dict[str, Any],
                                                       tmp_path: Path) -> None:
    """A diverged model's weights would replace the last good best weights or checkpoint (and
    then be refused on load, losing the run): they are refused before anything is written."""
    import shutil

    import torch

    from metaprep.learn.rundir import Checkpoint

    run = Run.open(shutil.copytree(whole["run"], tmp_path / "run"))
    best, ckpt = (run.path / "best.safetensors").read_bytes(), run.load_checkpoint()
    state = run.load_best()
    bad = {**state, next(iter(state)): torch.full_like(next(iter(state.values())), float("nan"))}
    with pytest.raises(ModelError, match="holds a NaN or infinite value.*training diverged"):
        run.save_best(bad)
    with pytest.raises(ModelError, match="holds a NaN or infinite value.*training diverged"):
        run.save_checkpoint(Checkpoint(bad, ckpt.optimizer, ckpt.progress, ckpt.history))
    assert (run.path / "best.safetensors").read_bytes() == best
    assert run.load_checkpoint().progress == ckpt.progress
    assert sorted(p.name for p in run.path.iterdir() if p.name.endswith(".tmp")) == []


def _first_epoch(ckpt: dict[str, Any]) -> None:
    ckpt["progress"].update(epoch=1, stopped=False)
    ckpt["history"] = ckpt["history"][:1]


def _opt_state(ckpt: dict[str, Any]) -> dict[str, Any]:
    opt = ckpt["optimizer"]
    state = opt.get("dense", opt)["state"]  # Adam's, or the dense half of a learned source's
    return state[next(iter(state))]  # type: ignore[no-any-return]


HOSTILE = {  # a checkpoint's counters, history and optimizer state as a stranger may write them
    "epoch a string": lambda c: c["progress"].update(epoch="x"),  # a TypeError traceback
    "epoch negative": lambda c: c["progress"].update(epoch=-5),  # numpy's ValueError
    "lr NaN": lambda c: c["progress"].update(lr=float("nan")),  # trained on
    "lr a string": lambda c: c["progress"].update(lr="fast"),  # a TypeError at the first decay
    "a key missing": lambda c: c["progress"].pop("seen"),
    "batch past the epoch": lambda c: c["progress"].update(batch=10**9),  # the epoch skipped
    "history junk": lambda c: c.update(history=["junk"]),  # a TypeError in the plots
    "history of strings": lambda c: c["history"][0].update(train_loss="x"),
    "optimizer shape": lambda c: _opt_state(c).update(exp_avg=torch.zeros(3)),  # RuntimeError
    "optimizer NaN": lambda c: _opt_state(c).update(
        exp_avg_sq=_opt_state(c)["exp_avg_sq"] * float("nan")),  # NaN weights after one step
    "optimizer settings": lambda c: c["optimizer"]["dense"]["param_groups"][0].update(eps=0.0),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_checkpoint_is_one_line_before_any_step(whole: dict[str, Any],
                                                          tmp_path: Path, case: str) -> None:
    run = shutil.copytree(whole["run"], tmp_path / "run")
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    _first_epoch(ckpt)
    HOSTILE[case](ckpt)
    torch.save(ckpt, run / "checkpoint.pt")
    before = (run / "checkpoint.pt").read_bytes()
    with pytest.raises(ModelError, match="checkpoint") as e:
        train(out=run, resume=True, progress=False)
    one_line(e, "checkpoint.pt")
    assert (run / "checkpoint.pt").read_bytes() == before


def test_a_run_stopped_while_describing_itself_starts_over(task: dict[str, Path],
                                                           tmp_path: Path) -> None:
    """Killed, or out of disk, before config.json: neither a rerun ("holds other files, not a
    run") nor --resume ("nothing to resume") took the folder; it needed cleaning by hand."""
    from metaprep import stages

    out = tmp_path / "run"
    out.mkdir()
    for name in ("labels.json", "tokenizer.json", "store.json"):
        (out / name).write_text("[]")
    (out / ".data.json.1234.tmp").write_text("{")
    options = {"store": task["store"], "train": task["train"], "dev": task["dev"],
               "output": out, "method": "sum", "encoder": "pool", "proj_dim": 4,
               "mlp_hidden": 4, "epochs": 1, "quiet": True}
    assert stages.train(train_options(**options)).run == out
    assert Run.open(out).labels == ["neg", "pos"] and not list(out.glob(".*.tmp"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "labels.json").write_text("[]")
    (other / "notes.txt").write_text("mine")  # not only ours: still refused
    with pytest.raises(ConfigError, match="holds other files"):
        stages.train(train_options(**{**options, "output": other}))
