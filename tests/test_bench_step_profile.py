"""benchmarks/bench_step_profile.py on a tiny synthetic store: every part of a step is found and
timed, the parts add up to the step, and the report and JSON are written."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from exportkit import small_task

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_step_profile.py"
_spec = importlib.util.spec_from_file_location("bench_step_profile", _PATH)
assert _spec is not None and _spec.loader is not None
profile = importlib.util.module_from_spec(_spec)
sys.modules["bench_step_profile"] = profile
_spec.loader.exec_module(profile)


def test_a_taught_run_with_a_learned_source_is_taken_apart(tmp_path: Path) -> None:
    import torch

    data = small_task(tmp_path)
    out = tmp_path / "profile"
    backward = torch.Tensor.backward
    # 80 texts in batches of 16: 5 steps an epoch, so the 9 steps cross an epoch's end
    assert profile.main(["--store", str(data["store"]), "--train", str(data["train"]),
                         "--dev", str(data["dev"]), "--preset", "fast",
                         "--set", "proj_dim=5", "--set", "mlp_hidden=6",
                         "--set", "learned_dim=4", "--set", "learned_buckets=16",
                         "--set", "learned_min_tokens=0",
                         "--set", "batch_size=16", "--set", "teacher_members=2",
                         "--steps", "7", "--warmup", "2",
                         "--output", str(out)]) == 0
    assert torch.Tensor.backward is backward  # every patch undone
    result = json.loads(Path(f"{out}.json").read_text(encoding="utf-8"))
    parts = {r["part"]: r for r in result["rows"]}
    expected = {"batching + padding", "gather: s0", "gather: s1", "learned words",
                "learned bigram buckets", "front: norms, projections, mix", "encoder",
                "classifier head", "loss", "backward", "gradient clip", "zero_grad",
                "optimizer: dense", "optimizer: sparse", profile.OTHER}
    assert set(parts) == expected and result["not_found"] == []
    assert all(parts[p]["mean_ms"] > 0 for p in expected - {profile.OTHER})
    assert result["taught"] and len(result["per_step"]) == 7
    for step in result["per_step"]:  # the exclusive parts never exceed their step
        assert sum(v for k, v in step.items() if k != "total") <= step["total"] + 1e-3
    assert sum(r["share"] for r in result["rows"]) == pytest.approx(1.0, abs=1e-6)
    assert result["step_cpu_ms_median"] > 0 and all(
        r["cpu_median_ms"] > 0 for r in result["rows"] if r["part"] != profile.OTHER)
    assert result["batch"]["texts"] == 16 and "batch plan (per epoch)" in result["once_ms"]
    text = Path(f"{out}.md").read_text(encoding="utf-8")
    assert "| optimizer: sparse |" in text and "random stand-in" in text


def test_set_values_are_read_as_the_cli_reads_them() -> None:
    from metaprep.errors import ConfigError

    cfg, taught = profile.run_config(None, ["proj_dim=32", "cnn_widths=1,2"])
    assert cfg.proj_dim == 32 and cfg.cnn_widths == [1, 2] and not taught
    with pytest.raises(ConfigError, match="no_such"):
        profile.run_config(None, ["no_such=1"])
    with pytest.raises(ConfigError, match="proj_dim"):
        profile.run_config(None, ["proj_dim=big"])


def test_inner_optimizers_are_timed_apart_and_the_outer_step_ends_a_step() -> None:
    import torch

    class HomeMade:  # a row-wise optimizer that is no torch.optim.Optimizer
        param_groups: list[dict[str, float]] = [{"lr": 1.0}]

        def step(self) -> None:
            pass

    class Pair:
        def __init__(self) -> None:
            self.dense = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))])
            self.sparse = HomeMade()

        def step(self) -> None:
            self.dense.step()
            self.sparse.step()

        def zero_grad(self) -> None:
            pass

    clock = profile.Clock(steps=2)
    opt = profile._optimizer(clock, Pair())
    opt.zero_grad()
    opt.step()
    assert len(clock.steps) == 1
    assert {"optimizer: dense", "optimizer: sparse", "zero_grad"} <= set(clock.steps[0])
    with pytest.raises(profile._Enough):  # the steps asked for are done
        opt.step()
