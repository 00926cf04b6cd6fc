"""Distillation (learn/teacher.py): a trained run or ensemble as the teacher of a new run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from crashkit import SimulatedCrash, crash_after
from exportkit import SMALL, make_store, train_options

from metaprep import stages
from metaprep.errors import ConfigError, ModelError
from metaprep.learn.config import RunConfig
from metaprep.learn.data import LabelMap, load_task
from metaprep.learn.evaluate import model_logits
from metaprep.learn.rundir import Run
from metaprep.learn.teacher import distill_loss, teacher_identity, teacher_probabilities


@pytest.fixture(scope="module")
def ensemble(trained: Path) -> Path:
    return trained  # conftest's ensemble of two SMALL models, seed 7


def test_loss_mixes_the_labels_and_the_teacher() -> None:
    torch.manual_seed(0)
    logits, labels = torch.randn(4, 3), torch.tensor([0, 2, 1, 1])
    teacher = torch.randn(4, 3).softmax(-1)
    hard = F.cross_entropy(logits, labels)
    # KL(teacher || student), by hand, at temperature 2 (times T^2)
    q = (teacher.log() / 2).softmax(-1)
    soft = (q * (q.log() - (logits / 2).log_softmax(-1))).sum(-1).mean() * 4
    got = distill_loss(logits, labels, teacher, weight=0.3, temperature=2.0)
    assert float(got) == pytest.approx(float(0.7 * hard + 0.3 * soft), rel=1e-5)
    assert float(distill_loss(logits, labels, teacher, weight=0.0, temperature=2.0)) == \
        pytest.approx(float(hard))
    # a student that already says what the teacher says has no soft loss left
    assert float(distill_loss(teacher.log(), labels, teacher, weight=1.0, temperature=1.0)) == \
        pytest.approx(0.0, abs=1e-6)


def test_teacher_probabilities_are_the_ensembles(ensemble: Path, data: dict[str, Path]) -> None:
    members = sorted((ensemble / "members").iterdir())
    with Run.open(members[0]) as run:
        task, _ = load_task(data["train"], run.encoder(), labels=LabelMap(run.labels),
                            progress=False)
        sha, labels, tokenizer = run.store_ref.sha256, run.labels, run.tokenizer
    want = []
    for d in members:
        with Run.open(d) as run:
            want.append(torch.from_numpy(model_logits(run.load_model(), task, 256, "cpu"))
                        .softmax(-1).numpy())
    got = teacher_probabilities(ensemble, task, store=data["store"], store_sha256=sha,
                                labels=labels, tokenizer=tokenizer)
    assert got.shape == (80, len(labels))
    np.testing.assert_allclose(got.numpy(), np.mean(want, 0), atol=1e-6)
    one = teacher_probabilities(members[1], task, store=data["store"], store_sha256=sha,
                                labels=labels, tokenizer=tokenizer)
    np.testing.assert_allclose(one.numpy(), want[1], atol=1e-6)
    with pytest.raises(ModelError, match="another store"):
        teacher_probabilities(ensemble, task, store=data["store"], store_sha256="0" * 64,
                              labels=labels, tokenizer=tokenizer)
    with pytest.raises(ModelError, match="labels differ"):
        teacher_probabilities(ensemble, task, store=data["store"], store_sha256=sha,
                              labels=labels[::-1], tokenizer=tokenizer)


def test_a_run_learns_from_its_teacher(ensemble: Path, data: dict[str, Path],
                                       tmp_path: Path) -> None:
    """The teacher changes the training (not the same weights as without it), the run records
    it, and a resume finds it again; a weight of 0 trains exactly as without a teacher."""
    plain = stages.train(train_options(**data, output=tmp_path / "plain", seed=1, **SMALL))
    taught = stages.train(train_options(**data, output=tmp_path / "taught", seed=1,
                                              teacher=ensemble, teacher_weight=0.7, **SMALL))
    zero = stages.train(train_options(**data, output=tmp_path / "zero", seed=1,
                                            teacher=ensemble, teacher_weight=0.0, **SMALL))
    saved = json.loads((taught.run / "config.json").read_text())
    assert saved["teacher"] == str(ensemble.resolve()) and saved["teacher_weight"] == 0.7

    def loss(run: Path) -> list[float]:
        return [e["train_loss"] for e in json.loads((run / "metrics.json").read_text())["epochs"]]

    assert loss(zero.run) == loss(plain.run)
    assert loss(taught.run) != loss(plain.run)
    # resumed with the same options it is the run it was; another teacher is refused
    again = stages.train(train_options(output=taught.run, resume=True, quiet=True))
    assert again.metrics["dev"] == taught.metrics["dev"]
    with pytest.raises(ConfigError, match="teacher"):
        stages.train(train_options(output=taught.run, resume=True, quiet=True,
                                         teacher=tmp_path / "plain"))


def test_bad_teachers_are_refused(data: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such teacher"):
        stages.train(train_options(**data, output=tmp_path / "a", teacher=tmp_path / "x",
                                         **SMALL))
    with pytest.raises(ConfigError, match="teacher_weight"):
        RunConfig(teacher="t", teacher_weight=1.5)
    with pytest.raises(ConfigError, match="teacher_temperature"):
        RunConfig(teacher="t", teacher_temperature=0.0)
    with pytest.raises(ConfigError, match="single-label"):
        RunConfig(teacher="t", task="multilabel", num_labels=3)
    # a teacher on another store: its ids mean other words
    other = {**data, "store": make_store(tmp_path / "other.h5", seed=11)}
    teacher = stages.train(train_options(**other, output=tmp_path / "t", **SMALL)).run
    with pytest.raises(ModelError, match="another store"):
        stages.train(train_options(**data, output=tmp_path / "b", teacher=teacher,
                                         **SMALL))


def test_a_run_trains_its_own_teacher_first(ensemble: Path, data: dict[str, Path],
                                            tmp_path: Path) -> None:
    """teacher_members: the ensemble in RUN/teacher is the one train --members gives for the
    same options and seed, and the run in RUN is the one --teacher of that ensemble gives."""
    out = tmp_path / "run"
    got = stages.train(train_options(**data, output=out, seed=7, teacher_members=2,
                                           **SMALL))
    assert got.run == out
    teacher = out / "teacher"
    for k in range(2):  # the members are bit-identical to the separately trained ensemble's
        assert (teacher / "members" / str(k) / "best.safetensors").read_bytes() == \
            (ensemble / "members" / str(k) / "best.safetensors").read_bytes()
    saved = json.loads((out / "config.json").read_text())
    assert saved["teacher"] == str(teacher.resolve()) and saved["teacher_members"] == 2
    assert saved["members"] == 1
    by_hand = stages.train(train_options(**data, output=tmp_path / "by-hand", seed=7,
                                               teacher=teacher, **SMALL))
    assert (by_hand.run / "best.safetensors").read_bytes() == \
        (out / "best.safetensors").read_bytes()
    # the run is an ordinary run: it exports and serves alone (the teacher is not needed)
    stages.export(stages.ExportOptions(run=out, output=tmp_path / "model", quiet=True))
    assert (tmp_path / "model" / "manifest.json").is_file()


def test_a_killed_taught_run_resumes(data: dict[str, Path], tmp_path: Path) -> None:
    """The run is described before its teacher trains: killed at any point, --resume alone
    finishes it, and the result is the run that was never killed."""
    done = stages.train(train_options(**data, output=tmp_path / "done", seed=2,
                                            teacher_members=2, **SMALL)).run
    want = (done / "best.safetensors").read_bytes()

    def killed(name: str, *drop: str) -> Path:
        run = tmp_path / name
        shutil.copytree(done, run)
        config = json.loads((run / "config.json").read_text())
        config["teacher"] = str((run / "teacher").resolve())  # as it was written there
        (run / "config.json").write_text(json.dumps(config))
        for d in ("best.safetensors", "checkpoint.pt", "metrics.json", *drop):
            target = run / d
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        return run

    cases = [killed("after-teacher"),
             killed("inside-teacher", "teacher/members/1", "teacher/metrics.json"),
             killed("before-teacher", "teacher")]
    for run in cases:
        again = stages.train(train_options(output=run, resume=True, quiet=True))
        assert again.run == run
        assert (run / "best.safetensors").read_bytes() == want, run.name
        assert json.loads((run / "teacher" / "ensemble.json").read_text())["members"] == 2


def test_teacher_options_that_cannot_go_together(data: dict[str, Path], ensemble: Path,
                                                 tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="both name a teacher"):
        stages.train(train_options(**data, output=tmp_path / "a", teacher=ensemble,
                                         teacher_members=2, **SMALL))
    with pytest.raises(ConfigError, match="teacher_members"):
        RunConfig(teacher_members=1)
    with pytest.raises(ConfigError, match="teacher_members"):
        RunConfig(teacher_members=2, members=3)
    # --preset fast taught by a teacher given: none is trained
    run = stages.train(train_options(**data, output=tmp_path / "b", preset="fast",
                                           teacher=ensemble, epochs=1, threads=1, quiet=True))
    assert not (run.run / "teacher").exists()
    assert json.loads((run.run / "config.json").read_text())["teacher_members"] == 0


def test_the_fast_preset_trains_one_untaught_model(data: dict[str, Path], tmp_path: Path
                                                   ) -> None:
    """--preset fast: one model, no teacher of its own (a teacher gave nothing on top of its
    recipe); on a multi-label task too."""
    tiny = {"proj_dim": 5, "mlp_hidden": 6, "learned_buckets": 16, "epochs": 1, "threads": 1,
            "quiet": True}
    fast = stages.train(train_options(**data, output=tmp_path / "fast", preset="fast", **tiny))
    assert not (fast.run / "teacher").exists() and not (fast.run / "members").exists()
    saved = json.loads((fast.run / "config.json").read_text())
    assert (saved["teacher_members"], saved["members"], saved["lr_schedule"]) == (0, 1, "linear")
    rows = "".join(f"{t}\t{lab}\n" for t, lab in (("good film", "pos"), ("bad film", "neg"),
                                                   ("good bad", "pos,neg"), ("film", "")) * 8)
    for name in ("mtrain", "mdev"):
        (tmp_path / f"{name}.tsv").write_text("text\tlabel\n" + rows)
    multi = stages.train(train_options(
        store=data["store"], train=tmp_path / "mtrain.tsv", dev=tmp_path / "mdev.tsv",
        output=tmp_path / "multi", preset="fast", task="multilabel", **tiny))
    assert json.loads((multi.run / "config.json").read_text())["task"] == "multilabel"
    assert not (multi.run / "teacher").exists()


def test_the_command_line_reports_the_teacher_and_the_taught_model(
        data: dict[str, Path], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from metaprep.cli import cli

    args = ["train", "--store", str(data["store"]), "--train", str(data["train"]), "--dev",
            str(data["dev"]), "--test", str(data["test"]), "--method", "sum", "--encoder",
            "pool", "--proj-dim", "5", "--set", "mlp_hidden=6", "--epochs", "1", "--threads", "1",
            "--teacher-members", "2", "-o", str(tmp_path / "run"), "-q"]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0] == f"run: {tmp_path / 'run'}"
    assert lines[1].startswith(f"teacher ({tmp_path / 'run' / 'teacher'}): dev accuracy ")
    assert lines[2].startswith("best epoch 1: dev accuracy ")
    import subprocess
    import sys

    base = [a for a in args[:-3] if a not in ("--teacher-members", "2")]
    bad = subprocess.run([sys.executable, "-m", "metaprep", *base, "--teacher",
                          str(tmp_path / "nowhere"), "-o", str(tmp_path / "other"), "-q"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "no such teacher" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and str(tmp_path / "nowhere") in bad.stderr


def test_a_missing_teacher_is_refused_before_anything_is_written(data: dict[str, Path],
                                                                tmp_path: Path) -> None:
    for teacher in (tmp_path / "nowhere", tmp_path):  # absent; a folder that is no run
        with pytest.raises(ConfigError, match="no such teacher"):
            stages.train(train_options(**data, output=tmp_path / "out", teacher=teacher,
                                             **SMALL))
        assert not (tmp_path / "out").exists()


def test_a_fresh_start_over_a_teacher_is_refused(data: dict[str, Path], tmp_path: Path) -> None:
    """A killed taught run started again without --resume: its teacher may be of other options,
    so train says to resume instead of silently reusing it."""
    out = tmp_path / "run"
    stages.train(train_options(**data, output=out, teacher_members=2, **SMALL))
    for name in ("best.safetensors", "checkpoint.pt", "metrics.json"):  # killed before its own
        (out / name).unlink(missing_ok=True)                            # first checkpoint
    with pytest.raises(ConfigError, match="already holds a teacher"):
        stages.train(train_options(**data, output=out, teacher_members=2, **SMALL))
    assert stages.train(train_options(output=out, resume=True, quiet=True)).run == out


def test_an_output_inside_the_teacher_is_refused(ensemble: Path, data: dict[str, Path]) -> None:
    before = sorted(p.name for p in (ensemble / "members" / "0").iterdir())
    with pytest.raises(ConfigError, match="inside the input teacher"):
        stages.train(train_options(**data, output=ensemble / "members" / "0",
                                         teacher=ensemble, **SMALL))
    assert sorted(p.name for p in (ensemble / "members" / "0").iterdir()) == before


def _scaled(run: Path, out: Path, factor: float) -> Path:
    """A copy of ``run`` whose weights are all multiplied by ``factor`` (finite, but so large
    that its logits overflow float32)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(run, out)
    state = load_file(str(out / "best.safetensors"))
    save_file({k: v * factor for k, v in state.items()}, str(out / "best.safetensors"))
    return out


def test_the_teachers_tables_come_from_the_students_store(data: dict[str, Path],
                                                          tmp_path: Path) -> None:
    """train --teacher T read T's tables from whatever store now sat at the path T recorded
    (evaluate T refuses that store): they come from the student's store, checked by sha256."""
    import os

    store = tmp_path / "store.h5"
    shutil.copyfile(data["store"], store)
    teacher = stages.train(train_options(**{**data, "store": store},
                                               output=tmp_path / "t", **SMALL)).run
    want = stages.train(train_options(**data, output=tmp_path / "a", teacher=teacher,
                                            **SMALL)).run
    os.replace(make_store(tmp_path / "other.h5", seed=11), store)  # same words, other vectors
    got = stages.train(train_options(**data, output=tmp_path / "b", teacher=teacher,
                                           **SMALL)).run
    assert (got / "best.safetensors").read_bytes() == (want / "best.safetensors").read_bytes()


def test_a_resume_refuses_a_teacher_changed_since_the_run_started(
        ensemble: Path, data: dict[str, Path], tmp_path: Path) -> None:
    """--resume went on with a teacher whose weights had changed since the run began."""
    teacher, out = tmp_path / "teacher", tmp_path / "run"
    shutil.copytree(ensemble, teacher)
    with crash_after(3), pytest.raises(SimulatedCrash):  # in epoch 2 (2 steps an epoch)
        stages.train(train_options(**data, output=out, teacher=teacher, checkpoint_seconds=0,
                                   **SMALL))
    recorded = json.loads((out / "teacher.json").read_text())
    assert recorded == {"path": str(teacher.resolve()), "sha256": teacher_identity(teacher)}
    checkpoint = (out / "checkpoint.pt").read_bytes()
    member = teacher / "members" / "1" / "best.safetensors"
    weights = member.read_bytes()
    member.write_bytes((teacher / "members" / "0" / "best.safetensors").read_bytes())
    with pytest.raises(ModelError, match="the teacher changed since the run started") as err:
        stages.train(train_options(output=out, resume=True, quiet=True))
    assert str(teacher) in str(err.value) and "\n" not in str(err.value)
    assert (out / "checkpoint.pt").read_bytes() == checkpoint
    (out / "teacher.json").unlink()  # no record to check against: refused too
    with pytest.raises(ModelError, match="records no teacher"):
        stages.train(train_options(output=out, resume=True, quiet=True))
    member.write_bytes(weights)  # the teacher the run started with: it finishes
    (out / "teacher.json").write_text(json.dumps(recorded))
    done = stages.train(train_options(output=out, resume=True, quiet=True))
    assert len(done.metrics["epochs"]) == 2


def test_a_teacher_with_nan_probabilities_is_refused_before_training(
        ensemble: Path, data: dict[str, Path], tmp_path: Path) -> None:
    """Its NaN probabilities made every epoch train on a NaN loss."""
    teacher = _scaled(ensemble / "members" / "0", tmp_path / "huge", 1e30)
    out = tmp_path / "run"
    with pytest.raises(ModelError, match="NaN or infinite scores") as err:
        stages.train(train_options(**data, output=out, teacher=teacher, **SMALL))
    assert str(err.value).startswith(f"{teacher}: ")
    assert not (out / "best.safetensors").exists() and not (out / "checkpoint.pt").exists()


def test_a_teacher_folder_linked_from_elsewhere_is_refused(
        ensemble: Path, data: dict[str, Path], tmp_path: Path) -> None:
    """RUN/teacher a link to an ensemble elsewhere: a resume read it, and trained into it."""
    out, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    with crash_after(1), pytest.raises(SimulatedCrash):  # in the teacher's first member
        stages.train(train_options(**data, output=out, teacher_members=2, **SMALL))
    shutil.copytree(ensemble, elsewhere)
    before = sorted((p.relative_to(elsewhere), p.stat().st_mtime_ns)
                    for p in elsewhere.rglob("*"))
    shutil.rmtree(out / "teacher")
    (out / "teacher").symlink_to(elsewhere)
    with pytest.raises(ModelError, match="teacher is a link or not a folder"):
        stages.train(train_options(output=out, resume=True, quiet=True))
    assert sorted((p.relative_to(elsewhere), p.stat().st_mtime_ns)
                  for p in elsewhere.rglob("*")) == before


def test_a_teacher_of_single_sentences_is_refused_for_pairs(ensemble: Path, data: dict[str, Path],
                                                           tmp_path: Path) -> None:
    """It scored the first sentence of each pair alone (the model ignores a second one)."""
    from exportkit import write_task

    pairs = {"store": data["store"], "train": write_task(tmp_path / "t.tsv", 40, pair=True),
             "dev": write_task(tmp_path / "d.tsv", 20, pair=True, seed=2)}
    with pytest.raises(ModelError, match="not trained on sentence pairs") as err:
        stages.train(train_options(**pairs, output=tmp_path / "run", teacher=ensemble,
                                         **SMALL))
    assert str(err.value).startswith(f"{ensemble}: ")
