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

import metaprep as mp
from metaprep import stages
from metaprep.cli import cli
from metaprep.errors import ConfigError
from metaprep.learn.config import RunConfig
from metaprep.stages import HYPER, TrainOptions, path_fields

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
        method="dme", encoder="pool", proj_dim=8, mlp_hidden=8, epochs=1, output=tmp_path / "run",
        quiet=True))
    assert run.run == tmp_path / "run" and 0 <= run.dev_accuracy <= 1
    model = mp.export(mp.ExportOptions(run=run.run, output=tmp_path / "model", quiet=True))
    assert model.files >= 5 and (tmp_path / "model" / "manifest.json").is_file()
    label, probs = mp.Model(model.model).predict(["a gripping film"])[0]
    assert label in probs and abs(sum(probs.values()) - 1) < 1e-5
    scores = mp.evaluate(mp.EvaluateOptions(run=run.run, data=tmp_path / "data" / "test.tsv",
                                            quiet=True))
    assert 0 <= scores.metrics["accuracy"] <= 1


def test_a_missing_required_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="store is required"):
        mp.train(mp.TrainOptions(train="t.tsv", dev="d.tsv"))
    with pytest.raises(ConfigError, match="output is required"):
        mp.align(mp.AlignOptions(sources={"a": "a.txt"}))


def test_hyper_parameter_defaults_agree_everywhere() -> None:
    # TrainOptions leaves them unset (None); RunConfig holds the value; `train --help` shows it
    command = cli.get_command(click.Context(cli), "train")
    assert command is not None
    shown = {p.name: p.help for p in command.params if isinstance(p, click.Option)}
    defaults = RunConfig()
    for name in HYPER:
        assert getattr(TrainOptions(), name) is None
        match = re.search(r"\[default: (\w[\w.,+-]*)\]", shown[name] or "")
        assert match, f"train --{name} does not show its default"
        want = getattr(defaults, name)
        if isinstance(want, list):  # cnn_widths: comma-separated on the command line
            assert [int(v) for v in match.group(1).split(",")] == want, name
            continue
        got = {"on": True, "off": False, "none": ""}.get(match.group(1), match.group(1))
        assert type(want)(got) == want, name


def test_path_fields_are_declared() -> None:
    opts = mp.TrainOptions(store="s.h5", train="t.tsv", dev="d.tsv", output="run")
    assert path_fields(opts, "in") == {"store": "s.h5", "train": "t.tsv", "dev": "d.tsv",
                                       "test": None, "teacher": None}
    assert path_fields(opts, "out") == {"output": "run"}
    for cls in (mp.SplitOptions, mp.AlignOptions, mp.EvaluateOptions, mp.ExportOptions):
        assert any(f.metadata.get("path") == "out" for f in fields(cls)), cls


def test_the_stage_package_exports_its_names_not_its_modules() -> None:
    # each stage module shares its function's name; the package must hand out the function
    assert stages.__all__ == sorted(stages.__all__)
    for name in stages.__all__:
        assert not isinstance(getattr(stages, name), types.ModuleType), name
    for name in ("split", "align", "distill", "train", "evaluate", "export"):
        assert getattr(stages, name).__module__ == f"metaprep.stages.{name}"


def test_importing_the_stages_loads_nothing_heavy() -> None:
    code = ("import sys, metaprep.stages; print(sorted(m for m in ('torch', 'h5py', 'onnx', "
            "'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
