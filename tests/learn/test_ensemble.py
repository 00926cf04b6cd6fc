"""Ensembles (learn/ensemble.py): members trained one after another, resumed member by member,
scored and served as the average of their probabilities."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from exportkit import SMALL, make_run, sentences, train_options

from metaprep import stages
from metaprep.errors import ConfigError, ExportError, ModelError
from metaprep.exporter.run import export_run
from metaprep.learn.config import RunConfig
from metaprep.learn.ensemble import Ensemble, load_members, member_dirs
from metaprep.learn.rundir import Run
from metaprep.runtime.model import Model
from metaprep.stages import ExportOptions


def _member_probs(dirs: list[Path], texts_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Each member's softmax on the data, computed member by member, and the gold ids."""
    from metaprep.learn.data import LabelMap, load_task
    from metaprep.learn.evaluate import model_logits

    probs = []
    for d in dirs:
        with Run.open(d) as run:
            task, _ = load_task(texts_path, run.encoder(), labels=LabelMap(run.labels),
                                progress=False)
            logits = model_logits(run.load_model(), task, 256, "cpu")
        probs.append(torch.from_numpy(logits).softmax(-1).numpy())
    gold = np.array([e.label for e in task.examples])
    return np.stack(probs), gold


def test_members_are_runs_of_one_config_and_successive_seeds(trained: Path) -> None:
    dirs = member_dirs(trained)
    assert [d.name for d in dirs] == ["0", "1"]
    configs = [json.loads((d / "config.json").read_text()) for d in dirs]
    assert [c["seed"] for c in configs] == [7, 1007] and {c["members"] for c in configs} == {1}
    assert {k: v for k, v in configs[0].items() if k != "seed"} == \
        {k: v for k, v in configs[1].items() if k != "seed"}
    saved = json.loads((trained / "ensemble.json").read_text())
    assert saved["members"] == 2 and saved["config"]["members"] == 2


def test_metrics_are_the_averaged_members(trained: Path, data: dict[str, Path]) -> None:
    metrics = json.loads((trained / "metrics.json").read_text())
    assert len(metrics["member_metrics"]) == 2
    for split in ("dev", "test"):
        probs, gold = _member_probs(member_dirs(trained), data[split])
        want = float(np.mean(probs.mean(0).argmax(1) == gold))
        assert metrics[split]["accuracy"] == pytest.approx(want)
        for k, one in enumerate(metrics["member_metrics"]):
            assert one[split] == pytest.approx(float(np.mean(probs[k].argmax(1) == gold)))
    assert metrics["best_dev_accuracy"] == metrics["dev"]["accuracy"]


def test_evaluate_scores_the_ensemble(trained: Path, data: dict[str, Path]) -> None:
    from metaprep.learn.evaluate import evaluate_run

    got = evaluate_run(trained, data["test"], progress=False)
    saved = json.loads((trained / "metrics.json").read_text())
    assert got["accuracy"] == saved["test"]["accuracy"]
    assert got["confusion"] == saved["test"]["confusion"]


def test_ensemble_module_is_the_mean_of_the_softmaxes(trained: Path) -> None:
    runs, models = load_members(member_dirs(trained))
    try:
        ids = torch.tensor([[2, 5, 9, 0], [3, 4, 0, 0]])
        lengths = torch.tensor([3, 2])
        with torch.no_grad():
            want = torch.stack([m(ids, lengths).softmax(-1) for m in models]).mean(0)
            got = Ensemble(models)(ids, lengths)
        assert torch.allclose(got.softmax(-1), want, atol=1e-6)
        assert torch.allclose(got.exp(), want, atol=1e-6)
        # the members share one copy of the store's frozen tables
        assert models[0].front.table_0.data_ptr() == models[1].front.table_0.data_ptr()
    finally:
        for run in runs:
            run.close()


def test_resume_trains_only_the_missing_member(trained: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ens"
    shutil.copytree(trained, copy)
    first = (copy / "members/0/best.safetensors").stat().st_mtime_ns
    second = (copy / "members/1/best.safetensors").read_bytes()
    shutil.rmtree(copy / "members/1")
    assert not (copy / "members/0/checkpoint.pt").exists()  # finished: kept as it is
    with pytest.raises(ModelError, match="missing or unfinished"):
        member_dirs(copy)
    result = stages.train(train_options(output=copy, resume=True, quiet=True, threads=1))
    assert (copy / "members/0/best.safetensors").stat().st_mtime_ns == first
    assert (copy / "members/1/best.safetensors").read_bytes() == second  # the same seed again
    before = json.loads((trained / "metrics.json").read_text())
    assert result.metrics["dev"]["accuracy"] == before["dev"]["accuracy"]
    with pytest.raises(ConfigError, match="proj_dim"):
        stages.train(train_options(output=copy, resume=True, proj_dim=9, quiet=True))


def test_refuses_to_start_over_an_ensemble_or_a_folder_of_files(
        trained: Path, data: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="already holds an ensemble"):
        stages.train(train_options(**data, output=trained, members=2, **SMALL))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="other files"):
        stages.train(train_options(**data, output=busy, members=2, **SMALL))
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    with pytest.raises(ConfigError, match="nothing to resume"):
        stages.train(train_options(output=tmp_path / "none", resume=True, members=2,
                                         quiet=True))


def test_an_ensemble_directory_is_not_one_run(trained: Path) -> None:
    with pytest.raises(ModelError, match="is an ensemble of runs") as err:
        Run.open(trained)
    assert "members" in str(err.value) and "\n" not in str(err.value)


def test_members_need_a_single_label_task_and_a_positive_count() -> None:
    with pytest.raises(ConfigError, match="members"):
        RunConfig(members=2, task="multilabel", num_labels=3)
    with pytest.raises(ConfigError, match="members"):
        RunConfig(members=0)


def test_export_serves_the_mean_of_the_members(trained: Path, tmp_path: Path) -> None:
    export_run(trained, tmp_path / "model", options=ExportOptions(quiet=True,
                                                                  front_end=True))
    alone = []
    for k, d in enumerate(member_dirs(trained)):
        export_run(d, tmp_path / f"m{k}", options=ExportOptions(quiet=True))
        alone.append(Model(tmp_path / f"m{k}"))
    model = Model(tmp_path / "model")
    texts = sentences(50, seed=9) + ["", "zebra qwerty"]
    got = model.predict_proba(texts)
    want = np.mean([m.predict_proba(texts) for m in alone], axis=0)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert model.manifest.task.members == 2
    emb = model.embed(texts)
    assert emb.shape == (len(texts), 2 * alone[0].embed(texts[:1]).shape[1])
    np.testing.assert_allclose(emb, np.concatenate([m.embed(texts) for m in alone], 1),
                               atol=1e-6)
    source = model.manifest.source_run
    assert source["member1_path"] == str((trained / "members/1").resolve())


LEARNED = {"learned_dim": 5, "learned_buckets": 16}  # 5 = proj_dim: bigram rows mapped ahead


@pytest.mark.parametrize(("method", "encoder", "pair", "extra"),
                         [("dme", "bilstm", False, {}), ("cdme", "cnn", False, {}),
                          ("sum", "pool", True, {}), ("sum", "pool", False, LEARNED)])
def test_export_of_every_kind_passes_the_gate(tmp_path: Path, method: str, encoder: str,
                                             pair: bool, extra: dict[str, int]) -> None:
    ens = tmp_path / "ens"
    for k in range(3):
        run = make_run(tmp_path / f"r{k}", method=method, encoder=encoder, pair=pair, seed=k,
                       **extra)
        shutil.copytree(run, ens / "members" / str(k))
        shutil.copy(tmp_path / f"r{k}" / "store.h5", tmp_path / "store.h5")
    for k in range(3):  # one store for all: the members' records point at it
        path = ens / "members" / str(k) / "store.json"
        record = json.loads(path.read_text())
        record["path"] = str(tmp_path / "store.h5")
        path.write_text(json.dumps(record))
    config = json.loads((ens / "members/0/config.json").read_text())
    (ens / "ensemble.json").write_text(json.dumps({"members": 3, "config": config}))
    manifest = export_run(ens, tmp_path / "model", options=ExportOptions(quiet=True))
    assert manifest.task.members == 3 and manifest.checks.accuracy is not None
    assert manifest.checks.parity["model"].max_abs_diff["probabilities"] < 1e-5


def test_the_gate_fails_a_broken_member(trained: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import metaprep.exporter.build as export

    real, calls = export.spec_from_model, []

    def broken(model: object, **kw: object) -> object:
        spec = real(model, **kw)
        calls.append(spec)
        if len(calls) == 2:  # the second member's first class bias, off by a little
            spec.out_b = spec.out_b.copy()
            spec.out_b[0] += np.float32(0.05)
        return spec

    monkeypatch.setattr(export, "spec_from_model", broken)
    with pytest.raises(ExportError, match="parity gate failed"):
        export_run(trained, tmp_path / "model", options=ExportOptions(quiet=True))
    assert not (tmp_path / "model").exists()


def test_members_that_differ_are_refused(trained: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ens"
    shutil.copytree(trained, copy)
    path = copy / "members/1/config.json"
    config = json.loads(path.read_text())
    config["learned_dropout"] = 0.25
    path.write_text(json.dumps(config))
    with pytest.raises(ModelError, match="learned_dropout"):
        export_run(copy, tmp_path / "model", options=ExportOptions(quiet=True))


@pytest.mark.parametrize("combiner", ["mean", "sqrtn"])
def test_the_fused_graph_of_pool_members_is_the_graph_of_each(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, combiner: str) -> None:
    """Folded pool members (the accurate preset) share one table, Gather and pooling; the
    graph gives what the members built one by one give. Members that pool differently are
    built apart."""
    import onnxruntime as ort

    import metaprep.exporter.onnx_graph as og
    from metaprep.exporter.bake import spec_from_model
    from metaprep.exporter.onnx_data import ExternalData

    specs = []
    for k in range(3):
        with Run.open(make_run(tmp_path / f"r{k}", method="sum", encoder="pool", seed=k,
                               pool_combiner=combiner, **LEARNED)) as run:
            specs.append(spec_from_model(run.load_model(), fold=True))
    assert og._fusable(specs) and not og._fusable(specs[:1])
    other = "mean" if combiner == "sqrtn" else "sqrtn"
    assert not og._fusable([*specs[:2], dataclasses.replace(specs[2], pool_combiner=other)])
    assert specs[0].front.pair_table is not None and specs[0].front.pair_map is None
    rng = np.random.default_rng(0)
    ids = rng.integers(0, specs[0].front.folded.shape[0], size=(7, 9))
    ids[2, 4:] = 0
    feed = {"ids": ids, "lengths": np.array([9, 3, 4, 1, 9, 0, 12])}

    def outputs(name: str, front_end: bool) -> list[np.ndarray]:
        data = ExternalData(tmp_path / f"{name}.data")
        model = og.build_graph(specs, data, front_end=front_end)
        data.close()
        path = tmp_path / f"{name}.onnx"
        onnx.save(model, str(path))
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return sess.run(None, feed)

    for front_end in (False, True):
        fused = outputs(f"fused{front_end}", front_end)
        with monkeypatch.context() as m:
            m.setattr(og, "_fusable", lambda _specs: False)
            apart = outputs(f"apart{front_end}", front_end)
        assert len(fused) == len(apart)
        for a, b in zip(fused, apart, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_an_ensemble_is_not_trained_under_torchrun(data: dict[str, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="without torchrun"):
        stages.train(train_options(**data, output=tmp_path / "ens", members=2, **SMALL))
    assert not (tmp_path / "ens").exists()


def test_the_cli_trains_and_reports_an_ensemble(data: dict[str, Path], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from metaprep.cli import cli

    args = ["train", "--store", str(data["store"]), "--train", str(data["train"]), "--dev",
            str(data["dev"]), "--test", str(data["test"]), "--method", "sum", "--encoder", "pool",
            "--proj-dim", "5", "--set", "mlp_hidden=6", "--epochs", "1", "--members", "2",
            "--threads", "1", "-q", "-o", str(tmp_path / "ens")]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    saved = json.loads((tmp_path / "ens" / "metrics.json").read_text())
    assert f"ensemble of 2: dev accuracy {saved['dev']['accuracy']:.4f}" in out.output
    assert "member 1: best epoch 1" in out.output
    import subprocess
    import sys

    again = subprocess.run([sys.executable, "-m", "metaprep", *args], capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'ens'}: already holds an ensemble (continue it with --resume, "
        "or choose another -o)"]


@pytest.mark.parametrize("body", ["not json", '{"members": 1, "config": {}}',
                                  '{"members": "2", "config": {}}', '{"members": 2}',
                                  '{"members": 2, "config": []}',
                                  '{"members": 2, "config": {}, "inputs": ["a"]}',
                                  '{"members": 2, "config": {}, "inputs": {"store": 3}}'])
def test_a_damaged_ensemble_file_is_one_error(trained: Path, tmp_path: Path, body: str) -> None:
    copy = tmp_path / "ens"
    shutil.copytree(trained, copy)
    (copy / "ensemble.json").write_text(body)
    with pytest.raises(ModelError, match="ensemble.json") as err:
        member_dirs(copy)
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match="ensemble.json"):
        stages.train(train_options(output=copy, resume=True, quiet=True))
    with pytest.raises(ModelError, match="ensemble.json"):
        export_run(copy, tmp_path / "model", options=ExportOptions(quiet=True))
    assert not (tmp_path / "model").exists()


def test_a_member_linked_in_from_elsewhere_is_refused(trained: Path, data: dict[str, Path],
                                                       tmp_path: Path) -> None:
    """members/1 a link to a run elsewhere was taken as a member (by evaluate, a teacher, an
    export) and a resume would train into it; so was a members folder that is a link."""
    from metaprep.learn.evaluate import evaluate_run

    ens, elsewhere = tmp_path / "ens", tmp_path / "elsewhere"
    shutil.copytree(trained, ens)
    shutil.move(ens / "members" / "1", elsewhere)
    (ens / "members" / "1").symlink_to(elsewhere)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in elsewhere.iterdir())
    calls = [lambda: evaluate_run(ens, data["dev"], progress=False),
             lambda: member_dirs(ens),
             lambda: stages.train(train_options(**data, output=tmp_path / "s",
                                                      teacher=ens, **SMALL)),
             lambda: stages.train(train_options(output=ens, resume=True, quiet=True))]
    for call in calls:
        with pytest.raises(ModelError, match="1 is a link or not a folder") as err:
            call()
        assert "\n" not in str(err.value)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in elsewhere.iterdir()) == before
    (ens / "members" / "1").unlink()
    shutil.move(ens / "members", tmp_path / "members")
    (ens / "members").symlink_to(tmp_path / "members")
    with pytest.raises(ModelError, match="members is a link or not a folder"):
        evaluate_run(ens, data["dev"], progress=False)


@pytest.mark.parametrize("body", ['{"epochs": []}', '{"epochs": [], "dev": "x", "best_epoch": 1}',
                                  '{"epochs": [], "dev": {"accuracy": true}, "best_epoch": 1}'])
def test_a_finished_members_damaged_metrics_are_one_error(trained: Path, tmp_path: Path,
                                                          body: str) -> None:
    """A finished member (no checkpoint) is taken by its metrics.json: a KeyError traceback."""
    copy = shutil.copytree(trained, tmp_path / "ens")
    (copy / "members/1/checkpoint.pt").unlink(missing_ok=True)
    (copy / "members/1/metrics.json").write_text(body)
    with pytest.raises(ModelError, match="lack its dev accuracy") as err:
        stages.train(train_options(output=copy, resume=True, quiet=True))
    assert str(err.value).startswith(f"{copy / 'members/1/metrics.json'}: ")


def test_a_member_trained_on_other_data_is_refused(trained: Path, data: dict[str, Path],
                                                   tmp_path: Path) -> None:
    """A real folder holding a run of the same config, trained on another train file, was taken
    as a member (its weights averaged in as if it were one)."""
    from exportkit import write_task

    from metaprep.learn.evaluate import evaluate_run

    other = {**data, "train": write_task(tmp_path / "other.tsv", 80, seed=9)}
    stranger = stages.train(train_options(**other, output=tmp_path / "s", seed=1007,
                                                **SMALL)).run
    copy = shutil.copytree(trained, tmp_path / "ens")
    shutil.rmtree(copy / "members/1")
    shutil.copytree(stranger, copy / "members/1")
    with pytest.raises(ModelError, match="differs from .*train file") as err:
        evaluate_run(copy, data["dev"], progress=False)
    assert str(err.value).startswith(f"{copy / 'members/1'}: ")
