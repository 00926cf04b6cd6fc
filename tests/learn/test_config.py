"""RunConfig: each option declared once (type, default, bounds, choices, help, group) and checked
by that declaration wherever a value enters (config.json, TrainOptions, the pipeline, --set);
sizes a hand-edited config.json can ask for are refused by name before anything is allocated,
and the weight estimate behind the overall bound counts the real model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from exportkit import make_run

from metaprep.errors import ConfigError
from metaprep.learn.config import ENCODERS, MAX_WEIGHTS, METHODS, OPTIONS, RunConfig
from metaprep.learn.model import MetaEmbeddingClassifier
from metaprep.learn.options import GROUPS, kind_of


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


def _spec(key: str):  # noqa: ANN202
    return OPTIONS[key].metadata["spec"]


NUMBERS = sorted(k for k, f in OPTIONS.items() if kind_of(f) in ("int", "float"))
BOUNDED = sorted(k for k in NUMBERS if _spec(k).high is not None)


def test_every_option_is_declared_whole() -> None:
    """Type, help and group for every option; a number has a lower bound, a name its choices
    or free text; the declarations are what the pipeline and --set read."""
    for key, f in OPTIONS.items():
        spec = _spec(key)
        assert spec.help and spec.group in GROUPS, key
        assert kind_of(f) in ("str", "int", "float", "bool", "list[int]", "list[str]"), key
        if key in NUMBERS:
            assert spec.low is not None, key


@pytest.mark.parametrize("key", BOUNDED)
def test_each_size_has_an_upper_bound(key: str) -> None:
    high = _spec(key).high
    value = high + 1 if kind_of(OPTIONS[key]) == "int" else high * 2 + 1
    data = {"sources": ["a"], "source_dims": [4], key: value}
    with pytest.raises(ConfigError, match=rf"config.json: config key '{key}': must be"):
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
    assert "must be from 1 to 16,384" in lines[0]


@pytest.mark.parametrize("method", ["dme", "cdme", "sum"])
@pytest.mark.parametrize("norm", ["none", "layernorm"])
def test_weight_count_covers_the_source_norm(method: str, norm: str) -> None:
    cfg = RunConfig(method=method, sources=["a", "b"], source_dims=[7, 5], vocab_size=10,
                    num_labels=3, hidden=6, mlp_hidden=4, proj_dim=5, source_norm=norm,
                    learned_dim=3)
    model = MetaEmbeddingClassifier(cfg, [torch.zeros(12, d) for d in (7, 5)],
                                    torch.ones(12, 2, dtype=torch.bool))
    assert cfg.weight_count() == sum(p.numel() for p in model.parameters() if p.requires_grad)


def _beyond(key: str) -> list[float]:
    spec, whole = _spec(key), kind_of(OPTIONS[key]) == "int"
    out = [] if whole else [float("nan"), float("inf"), float("-inf")]
    out.append(spec.low - 1)
    if spec.high is not None:
        out.append(spec.high + 1)
    if not whole and spec.open_low:
        out.append(spec.low)
    return out


@pytest.mark.parametrize("key", NUMBERS)
def test_every_number_option_is_finite_and_in_range(key: str) -> None:
    """--lr inf was accepted (and trained on NaN); TrainOptions (so a pipeline's [train] keys
    when its file is loaded) and --set are checked by the same declaration."""
    from metaprep.stages import TrainOptions

    for value in _beyond(key):
        with pytest.raises(ConfigError, match=rf"config key '{key}': must be"):
            RunConfig.from_dict({key: value}, path="config.json")
        with pytest.raises(ConfigError, match=rf"^config key '{key}': must be"):
            TrainOptions(config={key: value})
    spec = _spec(key)
    inside = spec.low + 1 if kind_of(OPTIONS[key]) == "int" else spec.low + 0.5
    inside = 2 if key == "teacher_members" else inside  # an ensemble of 2 or more
    learned = {"learned_dim": 4} if key.startswith("learned_") else {}
    RunConfig(**{**learned, key: inside})  # inside: fine


@pytest.mark.parametrize(("key", "value"), [("method", "bme"), ("encoder", 3), ("gating", ""),
                                            ("cnn_widths", "1,2"), ("mask_missing", 1),
                                            ("sources", "a,b"), ("epochs", 2.5)])
def test_a_value_of_the_wrong_kind_is_refused_by_name(key: str, value: object) -> None:
    from metaprep.stages import TrainOptions

    with pytest.raises(ConfigError, match=rf"config key '{key}'"):
        RunConfig.from_dict({key: value})
    with pytest.raises(ConfigError, match=rf"^config key '{key}'"):
        TrainOptions(config={key: value})


def test_options_filled_from_the_store_are_no_options() -> None:
    from metaprep.stages import TrainOptions

    for key in ("vocab_size", "source_dims", "num_labels", "pair", "teacher", "no_such"):
        assert key not in OPTIONS
        with pytest.raises(ConfigError, match="no such training option"):
            TrainOptions(config={key: 1})


def test_every_member_seed_is_a_valid_seed() -> None:
    RunConfig(seed=2**32 - 1)
    RunConfig(seed=2**32 - 1 - 2000, members=3)
    with pytest.raises(ConfigError, match="'seed': must be at most"):
        RunConfig(seed=2**32 - 1, members=2)
    with pytest.raises(ConfigError, match="'seed': must be at most"):
        RunConfig(seed=2**32 - 1, teacher_members=2)
