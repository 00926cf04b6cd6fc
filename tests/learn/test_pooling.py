"""The pool encoder's second half (learn/encoders.py): the mean of the word vectors, or their sum
over sqrt(n) (pool_combiner sqrtn), which `auto` picks for long texts when a run starts and the
saved config records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from exportkit import make_run, train_options
from test_data import make_task

from metaprep import stages
from metaprep.errors import ConfigError, ModelError
from metaprep.learn import config as config_module
from metaprep.learn.config import PRESETS, RunConfig
from metaprep.learn.encoders import MaxMeanPool
from metaprep.learn.rundir import Run


def test_sqrtn_divides_the_sum_over_the_valid_steps_by_their_root() -> None:
    g = torch.Generator().manual_seed(0)
    meta = torch.randn(2, 5, 3, generator=g)
    lengths = torch.tensor([5, 2])
    valid = torch.arange(5)[None, :] < lengths[:, None]
    meta = meta * valid[..., None]  # the front end leaves pads at 0
    mean = MaxMeanPool(3)(meta, lengths, valid)
    root = MaxMeanPool(3, "sqrtn")(meta, lengths, valid)
    assert torch.equal(mean[:, :3], root[:, :3])  # the max half is the same
    sums = meta.sum(1)
    torch.testing.assert_close(root[:, 3:], sums / lengths[:, None].float().sqrt())
    torch.testing.assert_close(mean[:, 3:], sums / lengths[:, None].float())
    # a text alone and in a batch padded wider pool alike
    alone = MaxMeanPool(3, "sqrtn")(meta[1:, :2], lengths[1:], valid[1:, :2])
    torch.testing.assert_close(alone, root[1:])


def test_auto_picks_sqrtn_from_the_median_length() -> None:
    edge = config_module.SQRTN_MIN_MEDIAN
    auto = RunConfig(encoder="pool", pool_combiner="auto")
    assert auto.for_lengths(edge).pool_combiner == "sqrtn"
    assert auto.for_lengths(edge - 0.5).pool_combiner == "mean"
    given = RunConfig(encoder="pool", pool_combiner="mean")
    assert given.for_lengths(10 * edge) is given  # a value given is kept
    assert all(p.get("pool_combiner") == "auto" for p in PRESETS.values())
    assert RunConfig().pool_combiner == "mean"  # what runs saved before the option mean


def test_a_run_saves_the_combiner_it_trained_and_exports_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    task = make_task(tmp_path)
    small = {"method": "sum", "encoder": "pool", "proj_dim": 5, "mlp_hidden": 6, "epochs": 1,
             "batch_size": 8, "threads": 1, "pool_combiner": "auto"}
    short = stages.train(train_options(**task, output=tmp_path / "short", quiet=True, **small))
    assert json.loads((short.run / "config.json").read_text())["pool_combiner"] == "mean"
    monkeypatch.setattr(config_module, "SQRTN_MIN_MEDIAN", 1)  # every text counts as long
    done = stages.train(train_options(**task, output=tmp_path / "long", **small))
    assert json.loads((done.run / "config.json").read_text())["pool_combiner"] == "sqrtn"
    assert "divides each sum by sqrt(n)" in capsys.readouterr().err
    model = stages.export(stages.ExportOptions(run=done.run, output=tmp_path / "m", quiet=True))
    assert model.manifest.checks.parity["model"].max_abs_diff["logits"] <= 1e-5


def test_a_saved_auto_is_refused_with_one_line(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", method="sum", encoder="pool")
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "pool_combiner": "auto"}))
    with pytest.raises((ConfigError, ModelError), match="pool_combiner auto") as err, \
            Run.open(run) as opened:
        opened.load_model()
    assert "\n" not in str(err.value)


def test_a_preset_run_resumes_with_the_preset_it_resolved(tmp_path: Path) -> None:
    """A `fast` run on a small task resolves auto and leaves the learned source out; a resume
    given the same preset continues it, one given another value is refused."""
    task = make_task(tmp_path)
    kw = {**task, "output": tmp_path / "r", "quiet": True, "preset": "fast", "epochs": 1,
          "threads": 1}
    done = stages.train(train_options(**kw))
    saved = json.loads((done.run / "config.json").read_text())
    assert saved["learned_dim"] == 0 and saved["pool_combiner"] == "mean"
    again = stages.train(train_options(**{**kw, "resume": True}))
    assert again.run == done.run
    with pytest.raises(ConfigError, match="pool_combiner is 'sqrtn' here but 'mean'"):
        stages.train(train_options(**{**kw, "resume": True, "pool_combiner": "sqrtn"}))
