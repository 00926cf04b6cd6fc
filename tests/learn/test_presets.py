"""`metaprep train --preset`: a measured recipe whose values explicit options override, recorded
resolved in the run's config, and a preset run that exports through the parity gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from exportkit import train_options
from test_data import make_task

import metaprep as mp
from metaprep.cli import cli
from metaprep.errors import ConfigError
from metaprep.learn.config import PRESETS, RunConfig, preset_values
from metaprep.pipeline.options import build_options, stage_specs


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_task(tmp_path_factory.mktemp("task"))


def test_every_preset_is_a_valid_config() -> None:
    for name in PRESETS:
        values = preset_values(name)
        RunConfig(**values)  # a typo in a key or a value out of range fails here
    with pytest.raises(ConfigError, match="unknown preset 'quick'"):
        preset_values("quick")


def test_explicit_options_override_the_preset_and_the_config_records_both(
        task: dict[str, Path], tmp_path: Path) -> None:
    fast = PRESETS["fast"]
    result = mp.train(train_options(
        store=task["store"], train=task["train"], dev=task["dev"], test=task["test"],
        output=tmp_path / "run", preset="fast", proj_dim=8, mlp_hidden=8, learned_buckets=64,
        epochs=2, batch_size=8, quiet=True, learned_min_tokens=0))  # a tiny task: keep it
    saved = json.loads((result.run / "config.json").read_text(encoding="utf-8"))
    assert (saved["proj_dim"], saved["mlp_hidden"], saved["learned_buckets"]) == (8, 8, 64)
    for key in ("method", "encoder", "learned_dim", "lr"):
        assert saved[key] == fast[key], key  # from the preset
    # the preset run exports and passes the parity gate
    exported = mp.export(mp.ExportOptions(run=result.run, output=tmp_path / "model",
                                          quiet=True))
    assert exported.manifest.checks.parity["model"].max_abs_diff["logits"] <= 1e-5


def test_an_explicit_method_beats_the_presets(task: dict[str, Path], tmp_path: Path) -> None:
    result = mp.train(train_options(
        store=task["store"], train=task["train"], dev=task["dev"], output=tmp_path / "run",
        preset="accurate", method="dme", encoder="cnn", proj_dim=8, mlp_hidden=8, cnn_filters=4,
        learned_buckets=0, epochs=1, batch_size=8, quiet=True, learned_min_tokens=0))
    # accurate is an ensemble: its members are runs of the preset's values and the ones given
    members = sorted((result.run / "members").iterdir())
    assert [m.name for m in members] == [str(k) for k in range(PRESETS["accurate"]["members"])]
    for k, member in enumerate(members):
        saved = json.loads((member / "config.json").read_text(encoding="utf-8"))
        assert (saved["method"], saved["encoder"], saved["seed"]) == ("dme", "cnn", 1000 * k)
        assert saved["learned_dim"] == PRESETS["accurate"]["learned_dim"]
    assert len(result.metrics["member_metrics"]) == len(members)
    single = mp.train(train_options(
        store=task["store"], train=task["train"], dev=task["dev"], output=tmp_path / "one",
        preset="accurate", members=1, proj_dim=8, mlp_hidden=8, learned_buckets=0, epochs=1,
        batch_size=8, quiet=True))
    assert json.loads((single.run / "config.json").read_text(encoding="utf-8"))["members"] == 1


def test_the_cli_and_pipelines_take_a_preset(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["train", "--help"], terminal_width=200)
    assert out.exit_code == 0
    text = " ".join(out.output.split())
    assert "--preset [fast|accurate]" in text and "fast: method=sum" in text
    bad = CliRunner().invoke(cli, ["train", "--preset", "quick"])
    assert bad.exit_code == 2 and "quick" in bad.output
    spec = stage_specs()["train"]
    opts = build_options(spec, "train", {"preset": "fast", "store": "s.h5"},
                         file=tmp_path / "p.toml", dirs={"train": tmp_path / "train"},
                         present=["train"])
    assert opts.preset == "fast"
    with pytest.raises(ConfigError, match="preset"):
        build_options(spec, "train", {"preset": 1}, file=tmp_path / "p.toml",
                      dirs={"train": tmp_path / "train"}, present=["train"])


def test_the_fast_preset_with_the_cnn_encoder(task: dict[str, Path], tmp_path: Path) -> None:
    """--preset fast --encoder cnn through the command line: the widths are recorded as given,
    the run resumes with the same options, and the export passes the parity gate."""
    args = ["train", "--store", str(task["store"]), "--train", str(task["train"]), "--dev",
            str(task["dev"]), "--preset", "fast", "--encoder", "cnn", "--set", "cnn_filters=5",
            "--set", "cnn_widths=1,3", "--proj-dim", "8", "--set", "mlp_hidden=8", "--epochs", "1",
            "--set", "learned_buckets=64", "--set", "learned_subwords=97",
            "--set", "learned_min_tokens=0",  # a tiny task: the learned source kept
            "--batch-size", "8", "-o", str(tmp_path / "run"), "-q"]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    saved = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert (saved["encoder"], saved["cnn_filters"], saved["cnn_widths"]) == ("cnn", 5, [1, 3])
    assert saved["method"] == PRESETS["fast"]["method"] and saved["learned_subwords"] == 97
    again = CliRunner().invoke(cli, ["train", "--resume", "--set", "cnn_widths=1,3", "-o",
                                     str(tmp_path / "run"), "-q"])
    assert again.exit_code == 0, again.output
    other = CliRunner().invoke(cli, ["train", "--resume", "--set", "cnn_widths=1,2", "-o",
                                     str(tmp_path / "run"), "-q"])
    assert other.exit_code != 0 and "cnn_widths" in str(other.exception), other.output
    exported = mp.export(mp.ExportOptions(run=tmp_path / "run", output=tmp_path / "model",
                                          quiet=True))
    assert exported.manifest.task.encoder == "cnn" and exported.manifest.task.sentence_dim == 10
    spec = stage_specs()["train"]
    opts = build_options(spec, "train", {"encoder": "cnn", "cnn_widths": [2, 4]},
                         file=tmp_path / "p.toml", dirs={"train": tmp_path / "train"},
                         present=["train"])
    assert opts.config["cnn_widths"] == [2, 4] and opts.given()["cnn_widths"] == [2, 4]
    opts = build_options(spec, "train", {"learned_subwords": 5000}, file=tmp_path / "p.toml",
                         dirs={"train": tmp_path / "train"}, present=["train"])
    assert opts.config["learned_subwords"] == 5000
    with pytest.raises(ConfigError, match="cnn_widths"):
        build_options(spec, "train", {"cnn_widths": ["a"]}, file=tmp_path / "p.toml",
                      dirs={"train": tmp_path / "train"}, present=["train"])
