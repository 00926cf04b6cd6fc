"""Train and export say up front what they will hold in memory: a one-line note, with the
figure, above the memory goal; a one-line refusal, before anything large is read, above what
the machine has free (tested on a small store with the goal and the free memory lowered)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from exportkit import make_run
from test_data import make_task

from metaprep.cli import main
from metaprep.errors import ConfigError
from metaprep.ids import ID_OFFSET
from metaprep.learn import memory
from metaprep.learn.config import RunConfig
from metaprep.learn.memory import Estimate, check_memory, export_estimate, train_estimate


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_task(tmp_path_factory.mktemp("task"))


def test_the_estimates_add_up_the_weights_and_say_the_mapped_tables_apart() -> None:
    cfg = RunConfig(method="sum", sources=["a", "b"], source_dims=[300, 50], vocab_size=1000,
                    learned_dim=8, learned_buckets=100, num_labels=2)
    tables = (1000 + ID_OFFSET) * (300 * 2 + 50 * 4)  # float16 and float32 sources
    got = train_estimate(cfg, [2, 4])
    assert dict(got.parts) == {"weights, gradients and optimizer state": 16 * cfg.weight_count(),
                               "task data": 0}
    assert got.total == 16 * cfg.weight_count() and got.mapped == tables  # page cache
    assert f"frozen tables {tables / 1e6:.1f} MB mapped from a file" in got.line()
    with_data = train_estimate(cfg, [2, 4], data_bytes=1000)
    assert dict(with_data.parts)["task data"] >= 1000
    two = export_estimate(cfg, [2, 4], members=2)
    one = export_estimate(cfg, [2, 4])
    assert dict(one.parts)["the trained model"] == 4 * cfg.weight_count()
    assert one.mapped == two.mapped == tables  # the members share one mapped copy
    assert dict(one.parts)["baked tables"] == (1000 + ID_OFFSET) * cfg.meta_dim * 4
    assert dict(two.parts)["the trained model"] == 2 * dict(one.parts)["the trained model"]
    assert "float16" not in got.hint() and "learned_dim" in got.hint()
    f16 = train_estimate(RunConfig(**{**cfg.__dict__, "learned_dim": 0, "learned_buckets": 0}),
                         [2, 2])
    assert "learned_dim" not in f16.hint()
    assert "--set sources" in f16.hint() and "align --vocab" in f16.hint()
    # a bigger vocabulary costs more in every part that grows with it
    big = export_estimate(RunConfig(**{**cfg.__dict__, "vocab_size": 10_000}), [2, 4])
    assert all(b > a for (_, a), (_, b) in zip(one.parts, big.parts, strict=True))
    assert big.mapped > one.mapped


def test_check_memory_notes_above_the_goal_and_refuses_above_free_memory(
        monkeypatch: pytest.MonkeyPatch) -> None:
    est = Estimate("train", (("frozen tables", 3 * 10**9), ("weights", 2 * 10**9)))
    lines: list[str] = []
    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * 10**9)
    check_memory(est, path="store.h5", log=lines.append)
    assert lines == [lines[0]] and lines[0].startswith(
        "note: train holds about 5.0 GB of memory (frozen tables 3.0 GB, weights 2.0 GB), "
        "above the 4.0 GB goal")
    monkeypatch.setattr(memory, "available_bytes", lambda: 4 * 10**9)
    with pytest.raises(ConfigError, match="more than the 4.0 GB this machine has free") as err:
        check_memory(est, path="store.h5", log=lines.append)
    assert err.value.path is not None and err.value.hint and "learned_dim" in err.value.hint
    small = Estimate("train", (("frozen tables", 1 << 20),))
    check_memory(small, path=None, log=lines.append)  # under the goal: nothing said
    assert len(lines) == 1
    assert memory.available_bytes() is None or memory.available_bytes() > 0  # type: ignore[operator]


def _train_args(task: dict[str, Path], out: Path) -> list[str]:
    return ["metaprep", "train", "--store", str(task["store"]), "--train", str(task["train"]),
            "--dev", str(task["dev"]), "--proj-dim", "8", "--set", "hidden=8", "--set",
            "mlp_hidden=8", "--epochs", "1", "-o", str(out)]


def test_train_notes_then_refuses_before_it_starts(
        task: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(memory, "MEMORY_GOAL", 1000)  # bytes: the small store passes it
    monkeypatch.setattr(sys, "argv", _train_args(task, tmp_path / "r"))
    main()  # trains
    assert any((tmp_path / "r").glob("*.safetensors"))
    notes = [line for line in capsys.readouterr().err.splitlines() if "goal" in line]
    assert len(notes) == 1 and notes[0].startswith("note: train holds about ")
    monkeypatch.setattr(memory, "available_bytes", lambda: 1000)
    monkeypatch.setattr(sys, "argv", _train_args(task, tmp_path / "r2"))
    with pytest.raises(SystemExit) as done:
        main()
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2 and "\n" not in err
    assert err.startswith("error: ") and "this machine has free" in err
    assert not any((tmp_path / "r2").glob("*.safetensors"))  # refused before training


def test_export_notes_then_refuses_before_the_model_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from metaprep.exporter.run import export_run
    from metaprep.stages import ExportOptions

    run = make_run(tmp_path / "run", method="sum", encoder="pool")
    monkeypatch.setattr(memory, "MEMORY_GOAL", 1000)
    lines: list[str] = []
    export_run(run, tmp_path / "m", options=ExportOptions(quiet=True), log=lines.append)
    assert [line for line in lines if "goal" in line][0].startswith(
        "note: export holds about ")
    monkeypatch.setattr(memory, "available_bytes", lambda: 1000)
    with pytest.raises(ConfigError, match="export holds about .* this machine has free"):
        export_run(run, tmp_path / "m2", options=ExportOptions(quiet=True), log=lines.append)
    assert not (tmp_path / "m2").exists()
