from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from crashkit import SimulatedCrash, crash_after
from safetensors.torch import load_file
from test_data import VOCAB, make_store, make_task, write_tsv

from metaprep.cli import cli, main
from metaprep.errors import ConfigError, DataError, StoreError
from metaprep.learn.config import RunConfig
from metaprep.learn.rundir import Run
from metaprep.learn.train import train

TINY = {"proj_dim": 8, "hidden": 8, "mlp_hidden": 8, "batch_size": 8, "lr": 0.01}


def tiny(method: str = "dme", **kw: Any) -> RunConfig:
    return RunConfig(method=method, **{**TINY, "epochs": 2, **kw})


def run(task: dict[str, Path], out: Path, cfg: RunConfig, **kw: Any) -> dict[str, Any]:
    return train(cfg, store=task["store"], train_data=task["train"], dev=task["dev"],
                 test=task["test"], out=out, progress=False, **kw)


def comparable(metrics: dict[str, Any]) -> dict[str, Any]:
    """Everything but wall-clock figures and paths."""
    drop = {"seconds", "sentences_per_second"}
    out = {k: v for k, v in metrics.items() if k != "run_dir"}
    out["epochs"] = [{k: v for k, v in e.items() if k not in drop} for e in metrics["epochs"]]
    return out


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_task(tmp_path_factory.mktemp("task"))


def test_run_directory_is_complete_and_reloads(task: dict[str, Path], tmp_path: Path) -> None:
    metrics = run(task, tmp_path / "r", tiny("cdme", epochs=3), plots=True)
    r = tmp_path / "r"
    for name in ("config.json", "labels.json", "tokenizer.json", "store.json", "data.json",
                 "best.safetensors", "checkpoint.pt", "metrics.json", "analysis.json",
                 "learning_curves.png", "attention_by_source.png"):
        assert (r / name).is_file(), name
    assert json.loads((r / "labels.json").read_text()) == ["neg", "pos"]
    saved = json.loads((r / "metrics.json").read_text())
    assert len(saved["epochs"]) == 3 and saved["best_dev_accuracy"] == metrics["dev"]["accuracy"]
    assert set(saved["epochs"][0]) >= {"train_loss", "dev_accuracy", "dev_macro_f1", "lr"}
    # the checkpoint is plain tensors and numbers: loadable with weights_only
    ckpt = torch.load(r / "checkpoint.pt", weights_only=True)
    assert ckpt["progress"]["epoch"] == 3
    assert not any(k.startswith("front.table") for k in load_file(str(r / "best.safetensors")))
    with Run.open(r) as saved:
        model, cfg, labels = saved.load_model(), saved.config, saved.labels
    assert cfg.method == "cdme" and cfg.sources == ["a", "b"] and cfg.source_dims == [6, 4]
    assert labels == ["neg", "pos"] and not model.training
    analysis = json.loads((r / "analysis.json").read_text())
    assert analysis["has_weights"] and set(analysis["overall"]["mean_weight"]) == {"a", "b"}
    assert abs(sum(analysis["overall"]["mean_weight"].values()) - 1) < 1e-6
    # words only source 'a' covers put all their weight on 'a'
    assert analysis["by_coverage"]["a"]["mean_weight"] == {"a": 1.0, "b": 0.0}


def test_training_learns_the_task(task: dict[str, Path], tmp_path: Path) -> None:
    metrics = run(task, tmp_path / "r", tiny("dme", epochs=15, patience=15, lr=0.02))
    assert metrics["epochs"][-1]["train_loss"] < metrics["epochs"][0]["train_loss"]
    assert metrics["dev"]["accuracy"] >= 0.8


def test_same_seed_gives_bit_identical_runs(task: dict[str, Path], tmp_path: Path) -> None:
    cfg = tiny("cdme", learned_dim=4, learned_dropout=0.3, seed=3)
    a = run(task, tmp_path / "a", cfg)
    b = run(task, tmp_path / "b", cfg)
    assert comparable(a) == comparable(b)
    wa, wb = load_file(str(tmp_path / "a" / "best.safetensors")), \
        load_file(str(tmp_path / "b" / "best.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = run(task, tmp_path / "c", tiny("cdme", learned_dim=4, learned_dropout=0.3, seed=4))
    assert comparable(c)["epochs"] != comparable(a)["epochs"]


@pytest.mark.parametrize("checkpoint_steps", [0, 2])
def test_resume_after_a_crash_mid_epoch_matches_the_uninterrupted_run(
    task: dict[str, Path], tmp_path: Path,
    checkpoint_steps: int,
) -> None:
    cfg = tiny("dme", epochs=3, learned_dim=4, learned_dropout=0.2,
               checkpoint_steps=checkpoint_steps, checkpoint_seconds=0)
    whole = run(task, tmp_path / "whole", cfg)
    with crash_after(9), pytest.raises(SimulatedCrash):  # 6 steps an epoch: inside epoch 2
        run(task, tmp_path / "broken", cfg)
    ckpt = torch.load(tmp_path / "broken" / "checkpoint.pt", weights_only=True)
    assert ckpt["progress"]["epoch"] == 1
    assert ckpt["progress"]["batch"] == (2 if checkpoint_steps else 0)
    resumed = run(task, tmp_path / "broken", RunConfig(), resume=True)
    assert comparable(resumed) == comparable(whole)
    wa = load_file(str(tmp_path / "whole" / "best.safetensors"))
    wb = load_file(str(tmp_path / "broken" / "best.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_refuses_another_store(task: dict[str, Path], tmp_path: Path) -> None:
    run(task, tmp_path / "r", tiny(epochs=1))
    other = make_store(tmp_path / "other.h5", seed=9)
    with pytest.raises(StoreError, match="not the store the run was started with"):
        train(RunConfig(), store=other, train_data=task["train"], dev=task["dev"],
              out=tmp_path / "r", resume=True, progress=False)
    from metaprep.prep.store import StoreWriter

    with StoreWriter(tmp_path / "small.h5", VOCAB[:5]) as w:
        w.add_source("a", 6)
    with pytest.raises(StoreError, match="vocabulary of 5 words does not match"):
        train(RunConfig(), store=tmp_path / "small.h5", train_data=task["train"], dev=task["dev"],
              out=tmp_path / "r", resume=True, progress=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        run(task, tmp_path / "r", tiny())
    with pytest.raises(ConfigError, match="nothing to resume"):
        run(task, tmp_path / "fresh", tiny(), resume=True)


def test_bad_inputs_are_typed_errors(task: dict[str, Path], tmp_path: Path) -> None:
    bad_dev = write_tsv(tmp_path / "dev.tsv", [("good film", "pos"), ("bad", "so-so")])
    with pytest.raises(DataError, match=r"dev\.tsv:3: label 'so-so'"):
        train(tiny(), store=task["store"], train_data=task["train"], dev=bad_dev,
              out=tmp_path / "r", progress=False)
    with pytest.raises(StoreError, match="no source named 'glove'"):
        run(task, tmp_path / "r2", tiny("single", sources=["glove"], source_dims=[0]))
    assert not (tmp_path / "r2").exists()  # nothing written before the inputs check out
    with pytest.raises(DataError, match=r"missing\.tsv: no such task data file"):
        train(tiny(), store=task["store"], train_data=tmp_path / "missing.tsv", dev=task["dev"],
              out=tmp_path / "r3", progress=False)
    with pytest.raises(StoreError, match="no such store"):
        train(tiny(), store=tmp_path / "nope.h5", train_data=task["train"], dev=task["dev"],
              out=tmp_path / "r4", progress=False)
    assert not (tmp_path / "r").exists() and not (tmp_path / "r3").exists()


def test_baseline_without_weights_and_pairs(task: dict[str, Path], tmp_path: Path) -> None:
    run(task, tmp_path / "c", tiny("concat", encoder="pool", epochs=1))
    analysis = json.loads((tmp_path / "c" / "analysis.json").read_text())
    assert not analysis["has_weights"] and analysis["overall"]["tokens"] > 0
    assert not (tmp_path / "c" / "attention_by_source.png").exists()
    rows = [{"text_a": "good film", "text_b": "a nice plot", "label": "same"},
            {"text_a": "bad film", "text_b": "a nice plot", "label": "diff"},
            {"text_a": "awful story", "text_b": "grim end", "label": "same"},
            {"text_a": "great", "text_b": "poor music", "label": "diff"}] * 4
    pairs = tmp_path / "p.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    metrics = train(tiny("dme"), store=task["store"], train_data=pairs, dev=pairs,
                    out=tmp_path / "p", progress=False)
    assert metrics["dev"]["n"] == 16
    assert Run.open(tmp_path / "p").load_model().cfg.pair


def test_cli_train_and_errors(task: dict[str, Path], tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--store", str(task["store"]), "--train", str(task["train"]), "--dev",
            str(task["dev"]), "--proj-dim", "8", "--set", "hidden=8", "--set", "mlp_hidden=8",
            "--epochs", "1", "--quiet"]
    result = CliRunner().invoke(cli, [*args, "--method", "single:b", "-o", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "best epoch 1: dev accuracy" in result.output
    assert Run.open(tmp_path / "r").load_model().cfg.sources == ["b"]
    assert "mask_missing" in CliRunner().invoke(cli, ["train", "--help"]).output
    for extra, message in ((["--method", "single:nope"], "no source named 'nope'"),
                           (["--method", "dme:a"], "only single takes"),
                           (["--method", "dme", "--proj-dim", "0"], "'proj_dim'")):
        monkeypatch.setattr(sys, "argv", ["metaprep", *args, *extra, "-o", str(tmp_path / "x")])
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err


def test_frequency_bands_and_plots(tmp_path: Path) -> None:
    import numpy as np

    from metaprep.learn.analysis import (
        FREQUENCY_BANDS,
        _band_of,
        plot_attention,
        plot_learning_curves,
    )

    bands = _band_of(np.array([0, 1, 2, 9, 10, 99, 100, 5000]))
    assert [FREQUENCY_BANDS[b][0] for b in bands] == [
        "unseen", "1", "2-9", "2-9", "10-99", "10-99", "100+", "100+"]
    assert not plot_attention({"has_weights": False}, tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()
    history = [{"epoch": 1, "train_loss": 0.7, "train_accuracy": 0.5, "dev_accuracy": 0.6},
               {"epoch": 2, "train_loss": 0.5, "train_accuracy": 0.7, "dev_accuracy": 0.65}]
    plot_learning_curves(history, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("extra", [
    ["--seed", "-5"], ["--lr", "inf"], ["--set", "min_lr=nan"], ["--set", "grad_clip=inf"],
    ["--set", "pos_weight=inf"], ["--set", "learned_lr_scale=inf"], ["--threads", "0"],
    ["--members", "2", "--seed", "-5"], ["--teacher-members", "2", "--seed", "-5"],
    ["--members", "2", "--set", "sources=nope"], ["--members", "2", "--set", "data_encoding=nope"],
    ["--teacher-members", "2", "--set", "sources=nope"]])
def test_every_option_is_checked_before_anything_is_written(
        task: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], extra: list[str]) -> None:
    """--seed -5 was a traceback after the run folder existed; an ensemble wrote ensemble.json
    before its inputs were read (then "already holds an ensemble" on the corrected rerun)."""
    out = tmp_path / "r"
    monkeypatch.setattr(sys, "argv", [
        "metaprep", "train", "--store", str(task["store"]), "--train", str(task["train"]),
        "--dev", str(task["dev"]), "--method", "sum", "--encoder", "pool", "--proj-dim", "4",
        "--set", "mlp_hidden=4", "--epochs", "1", "-q", *extra, "-o", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith("error: ") and "\n" not in err, err
    assert not out.exists()


def test_a_nan_loss_stops_the_run_and_keeps_its_last_checkpoint(
        task: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A NaN loss was trained on (NaN weights, and a checkpoint of them over the good one)."""
    import torch.nn.functional as F

    from metaprep.errors import ModelError

    out, real, kept = tmp_path / "r", F.cross_entropy, []

    def poisoned(*args: Any, **kw: Any) -> torch.Tensor:
        loss = real(*args, **kw)
        if (out / "checkpoint.pt").exists():  # epoch 2: the loss goes NaN
            kept.append((out / "checkpoint.pt").read_bytes())
            return loss * float("nan")
        return loss

    monkeypatch.setattr(F, "cross_entropy", poisoned)
    with pytest.raises(ModelError, match=r"training diverged at epoch 2, step \d+: the loss or "
                       "its gradient is nan .*the last checkpoint is kept") as err:
        run(task, out, tiny(epochs=3, checkpoint_seconds=0))
    assert str(err.value).startswith(f"{out}: ") and "\n" not in str(err.value)
    assert (out / "checkpoint.pt").read_bytes() == kept[0]
    assert json.loads((out / "metrics.json").read_text())["best_epoch"] == 1
    monkeypatch.setattr(F, "cross_entropy", real)
    done = run(task, out, RunConfig(), resume=True)  # resumable: it goes on from epoch 1
    assert len(done["epochs"]) == 3 and done["epochs"][0]["epoch"] == 1
