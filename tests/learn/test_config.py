"""RunConfig's bounds: sizes a hand-edited config.json can ask for are refused by name before
anything is allocated, and the weight estimate behind the overall bound counts the real model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from exportkit import make_run

from metaprep.errors import ConfigError
from metaprep.learn.config import ENCODERS, LIMITS, MAX_WEIGHTS, METHODS, RANGES, RunConfig
from metaprep.learn.model import MetaEmbeddingClassifier


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize(("pair", "learned"), [(False, 0), (True, 0), (False, 3)])
def test_weight_count_is_the_models_trainable_weights(method: str, encoder: str,
                                                      pair: bool, learned: int) -> None:
    dims = [7] if method == "single" else [7, 5]
    cfg = RunConfig(method=method, encoder=encoder, pair=pair,
                    sources=[f"s{k}" for k in range(len(dims))], source_dims=dims,
                    vocab_size=10, num_labels=3, hidden=6, mlp_hidden=4, proj_dim=5,
                    learned_dim=learned, learned_buckets=4 if learned else 0,
                    cnn_filters=3, cnn_widths=[1, 2, 4])
    model = MetaEmbeddingClassifier(cfg, [torch.zeros(12, d) for d in dims],
                                    torch.ones(12, len(dims), dtype=torch.bool))
    assert cfg.weight_count() == sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("key", sorted(LIMITS))
def test_each_size_has_an_upper_bound(key: str) -> None:
    data = {"sources": ["a"], "source_dims": [4], key: LIMITS[key] + 1}
    with pytest.raises(ConfigError, match=rf"config.json: config key '{key}': must be at most"):
        RunConfig.from_dict(data, path="config.json")


def test_sizes_each_allowed_but_too_large_together_are_refused() -> None:
    data = {"sources": ["a"], "source_dims": [300], "hidden": 16384, "mlp_hidden": 16384}
    with pytest.raises(ConfigError, match=f"more than the {MAX_WEIGHTS:,} metaprep trains"):
        RunConfig.from_dict(data, path="config.json")


def test_a_run_killed_before_its_first_epoch_with_huge_sizes_is_one_line(tmp_path: Path) -> None:
    """No weights file yet, so nothing else bounds the edited sizes."""
    run = make_run(tmp_path / "w")
    for name in ("best.safetensors", "checkpoint.pt", "metrics.json"):  # as before epoch 1
        (run / name).unlink(missing_ok=True)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "hidden": 10**9, "proj_dim": 10**9}))
    proc = subprocess.run([sys.executable, "-m", "metaprep", "train", "--resume", "-o", str(run),
                           "-q"], capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {run / 'config.json'}: config key")
    assert "must be at most" in lines[0]


@pytest.mark.parametrize("method", ["dme", "cdme", "sum"])
@pytest.mark.parametrize("norm", ["none", "layernorm"])
def test_weight_count_covers_the_levers(method: str, norm: str) -> None:
    cfg = RunConfig(method=method, sources=["a", "b"], source_dims=[7, 5], vocab_size=10,
                    num_labels=3, hidden=6, mlp_hidden=4, proj_dim=5, source_norm=norm,
                    word_features=True, learned_dim=3)
    model = MetaEmbeddingClassifier(cfg, [torch.zeros(12, d) for d in (7, 5)],
                                    torch.ones(12, 2, dtype=torch.bool),
                                    [f"w{i}" for i in range(10)])
    assert cfg.weight_count() == sum(p.numel() for p in model.parameters() if p.requires_grad)


def _beyond(key: str) -> list[float]:
    low, high = RANGES[key]
    return [float("nan"), float("inf"), float("-inf"), low - 1.0, high + 1.0]


@pytest.mark.parametrize("key", sorted(RANGES))
def test_every_float_option_is_finite_and_in_range(key: str) -> None:
    """--lr inf was accepted (and trained on NaN); a pipeline's [train] keys are checked by the
    same rule when its file is loaded (the train stage's options)."""
    from metaprep.stages import TrainOptions

    for value in _beyond(key):
        with pytest.raises(ConfigError, match=rf"config key '{key}': must be a finite number"):
            RunConfig.from_dict({key: value}, path="config.json")
        with pytest.raises(ConfigError, match=rf"^config key '{key}': must be a finite number"):
            TrainOptions(**{key: value})
    low, high = RANGES[key]
    for value in (low + (high - low) / 2, high if key not in ("mix_dropout", "source_dropout",
                                                                 "learned_dropout") else 0.5):
        RunConfig(**{key: value})  # inside: fine


@pytest.mark.parametrize(("key", "value"), [("seed", -5), ("seed", 2**32), ("epochs", 0),
                                            ("checkpoint_steps", -1), ("teacher_members", -2)])
def test_whole_number_options_are_bounded_both_ways(key: str, value: int) -> None:
    from metaprep.stages import TrainOptions

    with pytest.raises(ConfigError, match=rf"config key '{key}'"):
        RunConfig(**{key: value})
    with pytest.raises(ConfigError, match=rf"^config key '{key}': must be"):
        TrainOptions(**{key: value})


def test_every_member_seed_is_a_valid_seed() -> None:
    RunConfig(seed=2**32 - 1)
    RunConfig(seed=2**32 - 1 - 2000, members=3)
    with pytest.raises(ConfigError, match="'seed': must be at most"):
        RunConfig(seed=2**32 - 1, members=2)
    with pytest.raises(ConfigError, match="'seed': must be at most"):
        RunConfig(seed=2**32 - 1, teacher_members=2)
