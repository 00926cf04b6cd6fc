"""The stages as the documented Python API: the README's few lines, on real files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from dataclasses import fields
from pathlib import Path

import click
import gensim
import pytest
from click.testing import CliRunner

import metaprep as mp
from metaprep import stages
from metaprep.cli import cli
from metaprep.errors import ConfigError
from metaprep.learn.config import RunConfig
from metaprep.stages import path_fields

DATA = Path(os.path.dirname(gensim.__file__)) / "test" / "test_data"


def test_notebook_flow_in_a_few_lines(tmp_path: Path) -> None:
    data = mp.split(mp.SplitOptions(data=DATA / "pang_lee_polarity.cor", encoding="latin-1",
                                    output=tmp_path / "data"))
    assert set(data.counts) == {"train", "dev", "test"}
    store = mp.align(mp.AlignOptions(
        sources={"glove": str(DATA / "test_glove.txt"), "lee": str(DATA / "lee_fasttext.vec")},
        vocab=(str(tmp_path / "data" / "train.tsv"),), lowercase=True, case="lower",
        output=tmp_path / "store.h5", quiet=True))
    assert [s["name"] for s in store.summary["sources"]] == ["glove", "lee"]
    run = mp.train(mp.TrainOptions(
        store=store.store, train=tmp_path / "data" / "train.tsv", dev=tmp_path / "data/dev.tsv",
        config={"method": "dme", "encoder": "pool", "proj_dim": 8, "mlp_hidden": 8, "epochs": 1},
        output=tmp_path / "run", quiet=True))
    assert run.run == tmp_path / "run" and 0 <= run.dev_accuracy <= 1
    model = mp.export(mp.ExportOptions(run=run.run, output=tmp_path / "model", quiet=True))
    assert model.files >= 5 and (tmp_path / "model" / "manifest.json").is_file()
    label, probs = mp.Model(model.model).predict(["a gripping film"])[0]
    assert label in probs and abs(sum(probs.values()) - 1) < 1e-5
    scores = mp.evaluate(mp.EvaluateOptions(run=run.run, data=tmp_path / "data" / "test.tsv",
                                            quiet=True))
    assert 0 <= scores.metrics["accuracy"] <= 1
    # the commands that had no stage of their own
    assert stages.inspect(stages.InspectOptions(store=store.store)).summary == store.summary
    vectors = stages.export_vectors(stages.ExportVectorsOptions(
        store=store.store, source="glove", output=tmp_path / "glove.txt", quiet=True))
    assert (vectors.path, vectors.sources) == (tmp_path / "glove.txt", ["glove"])
    assert vectors.rows == int((tmp_path / "glove.txt").read_text().split()[0])
    entry = stages.triton(stages.TritonOptions(model=model.model, output=tmp_path / "repo"))
    assert entry.path == tmp_path / "repo" / "metaprep" and entry.inputs == ("TEXT",)
    (tmp_path / "texts.txt").write_text("a gripping film\n\n")
    got = stages.predict(stages.PredictOptions(model_dir=model.model, input=tmp_path / "texts.txt",
                                               output=tmp_path / "p.jsonl"))
    assert (got.records, got.errors) == (2, 0)
    vecs = stages.embed(stages.EmbedOptions(model_dir=model.model, input=tmp_path / "texts.txt",
                                            output=tmp_path / "v.npy"))
    assert (vecs.records, vecs.output) == (2, tmp_path / "v.npy")


def test_a_missing_required_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="store is required"):
        mp.train(mp.TrainOptions(train="t.tsv", dev="d.tsv"))
    with pytest.raises(ConfigError, match="output is required"):
        mp.align(mp.AlignOptions(sources={"a": "a.txt"}))
    with pytest.raises(ConfigError, match="inspect: store is required"):
        stages.inspect(stages.InspectOptions())
    with pytest.raises(ConfigError, match="export-vectors: output is required"):
        stages.export_vectors(stages.ExportVectorsOptions(store="s.h5", source="a"))
    with pytest.raises(ConfigError, match="triton: model is required"):
        stages.triton(stages.TritonOptions(output="repo"))


def test_every_command_is_a_face_over_one_stage() -> None:
    """`metaprep <command>` parses, builds the options, calls one stage function and prints
    (`run` calls the pipeline, which calls the stages)."""
    import ast

    functions = {n for n in stages.__all__ if n.islower() and n != "path_fields"}
    for path in sorted(Path(stages.__file__).parents[1].joinpath("cli").glob("[!_]*.py")):
        if path.stem == "run":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        called = [n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call)
                  and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
                  and n.func.value.id == "stages" and n.func.attr in functions]
        assert len(called) == 1, (path.name, called)


def test_train_help_shows_about_twenty_flags_in_groups_and_the_rest_through_set() -> None:
    """The flags are made from RunConfig's declarations: a training option is declared once;
    those without a flag of their own are listed for --set with their defaults."""
    from metaprep.learn.config import OPTIONS

    command = cli.get_command(click.Context(cli), "train")
    assert command is not None
    flags = [p for p in command.params if isinstance(p, click.Option) and p.name != "help"]
    assert 18 <= len(flags) <= 24, [p.name for p in flags]
    text = CliRunner().invoke(cli, ["train", "--help"]).output
    for group in ("Data options", "Model options", "Training options", "Teacher options",
                  "Output options", "More options (--set KEY=VALUE"):
        assert group in text
    for key, f in OPTIONS.items():
        spec = f.metadata["spec"]
        if spec.flag:
            assert "--" + key.replace("_", "-") in text, key
        else:
            assert re.search(rf"^  {key} ", text, re.M), key
    defaults = RunConfig()
    for key in ("proj_dim", "lr", "hidden", "cnn_widths", "mask_missing"):  # shown defaults
        want = getattr(defaults, key)
        if isinstance(want, bool):
            shown = "on" if want else "off"
        else:
            shown = ",".join(map(str, want)) if isinstance(want, list) else str(want)
        assert f"[default: {shown}]" in " ".join(text.split()), key


def test_path_fields_are_declared() -> None:
    opts = mp.TrainOptions(store="s.h5", train="t.tsv", dev="d.tsv", output="run",
                           config={"proj_dim": 8})
    assert path_fields(opts, "in") == {"store": "s.h5", "train": "t.tsv", "dev": "d.tsv",
                                       "test": None, "teacher": None}
    assert path_fields(opts, "out") == {"output": "run"}
    for cls in (mp.SplitOptions, mp.AlignOptions, mp.EvaluateOptions, mp.ExportOptions):
        assert any(f.metadata.get("path") == "out" for f in fields(cls)), cls


def test_the_stage_package_exports_its_names_not_its_modules() -> None:
    # each stage lives in a private module named after it; the package hands out the function
    assert stages.__all__ == sorted(stages.__all__)
    for name in stages.__all__:
        assert not isinstance(getattr(stages, name), types.ModuleType), name
    for name in ("split", "align", "static_source", "train", "evaluate", "export"):
        assert getattr(stages, name).__module__ == f"metaprep.stages._{name}"


def test_importing_the_stages_loads_nothing_heavy() -> None:
    code = ("import sys, metaprep.stages; print(sorted(m for m in ('torch', 'h5py', 'onnx', "
            "'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
