"""Arrays kept in files, not in memory (learn/scratch.py): the frozen tables and the encoded
examples come back memory-mapped from files already unlinked (nothing left beside the run),
equal to what an in-memory read gives; stale folders of dead processes are removed, a place
that cannot be written falls back to memory, and a file of the wrong shape is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from metaprep.learn import rows as rows_module
from metaprep.learn.config import RunConfig
from metaprep.learn.data import TextEncoder, load_task
from metaprep.learn.model import load_tables
from metaprep.learn.rows import RowsBuilder
from metaprep.learn.rundir import scratch_folder
from metaprep.learn.scratch import Scratch, mapped
from metaprep.prep.store import Store, StoreWriter
from metaprep.tokenize import TokenizerConfig


def mapping_of(address: int) -> str | None:
    """The file (as /proc/self/maps names it) mapped at ``address``; None if anonymous."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        if lo <= address < hi:
            return parts[5] if len(parts) > 5 else None
    return None


pytestmark = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="Linux /proc")


def _beside(run: Path) -> Scratch:
    return Scratch.beside(*scratch_folder(run, os.getpid()))


def _leftovers(run: Path) -> list[str]:
    prefix = scratch_folder(run, os.getpid())[0].rsplit("-", 2)[0]
    return [p.name for p in run.parent.iterdir() if p.name.startswith(prefix)]


def test_tables_are_mapped_from_an_unlinked_file(tmp_path: Path) -> None:
    words = [f"w{i}" for i in range(300)]
    vectors = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float16)
    with StoreWriter(tmp_path / "s.h5", words) as w:
        w.add_source("a", 8, dtype="float16")
        w.write_block("a", 0, vectors)
        w.set_present("a", np.ones(300, bool))
    cfg = RunConfig(method="sum", sources=["a"], source_dims=[8], vocab_size=300)
    run = tmp_path / "run"
    with Store(tmp_path / "s.h5") as st, _beside(run) as scratch:
        (mine,), _ = load_tables(st, cfg, progress=False, scratch=scratch)
        (held,), _ = load_tables(st, cfg, progress=False)
    assert mine.dtype == torch.float16 and torch.equal(mine, held)
    assert torch.equal(mine[2:], torch.from_numpy(vectors)) and not mine[:2].any()
    where = mapping_of(mine.data_ptr())
    assert where is not None and ".run.scratch-" in where and where.endswith("(deleted)")
    assert "scratch" not in str(mapping_of(held.data_ptr()))
    assert _leftovers(run) == []


@pytest.mark.parametrize("pair", [False, True])
def test_examples_spilled_to_files_read_back_the_same(tmp_path: Path, pair: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows_module._Column, "_SPILL", 7)  # many writes, a partial last one
    rng = np.random.default_rng(1)
    kept, held = RowsBuilder(tmp_path), RowsBuilder()
    for k in range(50):
        ids = rng.integers(2, 99, rng.integers(1, 9)).tolist()
        ids_b = rng.integers(2, 99, rng.integers(1, 9)).tolist() if pair else None
        for b in (kept, held):
            b.append(ids, ids_b, k % 3, k + 2)
    relabel = np.array([2, 0, 1])
    on_disk, in_memory = kept.build(relabel), held.build(relabel)
    assert list(on_disk) == list(in_memory) and on_disk[4].label == 0  # 4 % 3 = 1 -> 0
    for a in (*on_disk.sides[-1], on_disk.labels, on_disk.lines):
        assert isinstance(a, np.memmap)
    assert list(tmp_path.iterdir()) == []  # unlinked at once


def test_load_task_examples_are_mapped(tmp_path: Path) -> None:
    task = tmp_path / "t.tsv"
    task.write_text("text\tlabel\n" + "".join(f"w{i % 7} w{i % 5}\t{'zb'[i % 2]}\n"
                                              for i in range(40)), encoding="utf-8")
    enc = TextEncoder([f"w{i}" for i in range(7)], case_policy="exact",
                      tokenizer=TokenizerConfig())
    folder = tmp_path / "f"
    folder.mkdir()
    data, labels = load_task(task, enc, progress=False, folder=folder)
    plain, _ = load_task(task, enc, progress=False)
    assert labels.labels == ["b", "z"] and list(data.examples) == list(plain.examples)
    assert data.examples[0].label == 1 and data.examples[1].label == 0  # sorted: b=0, z=1
    assert isinstance(data.examples.sides[0][0], np.memmap)
    assert list(folder.iterdir()) == []


def test_stale_folders_of_dead_processes_go(tmp_path: Path) -> None:
    run = tmp_path / "run"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f"{scratch_folder(run, int(dead))[0]}abc"
    live = tmp_path / f"{scratch_folder(run, os.getppid())[0]}abc"
    other = tmp_path / ".runs.scratch-1-abc"  # another run's name: not ours to remove
    for d in (stale, live, other):
        d.mkdir()
    scratch = _beside(run)
    assert scratch.folder is not None and scratch.folder.parent == tmp_path
    assert not stale.exists() and live.exists() and other.exists()
    scratch.close()
    assert not scratch.folder.exists()


def test_a_place_that_cannot_be_written_keeps_arrays_in_memory(tmp_path: Path) -> None:
    with Scratch.beside(*scratch_folder(tmp_path / "no" / "such" / "run", 1)) as scratch:
        assert scratch.folder is None
        held = scratch.array((2, 3), np.float32, lambda: [np.full((2, 3), 1.5)])
    assert not isinstance(held, np.memmap) and (held == 1.5).all()


def test_a_mapped_file_of_another_shape_or_type_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((3, 2), np.float32))
    assert mapped(tmp_path / "a.npy", (3, 2), np.float32).shape == (3, 2)
    with pytest.raises(ValueError, match="not float16"):
        mapped(tmp_path / "a.npy", (3, 2), np.float16)
    with pytest.raises(ValueError, match=r"\(4, 2\)"):
        mapped(tmp_path / "a.npy", (4, 2), np.float32)
    np.save(tmp_path / "o.npy", np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="Python objects"):  # never unpickled
        mapped(tmp_path / "o.npy", (1,), object)


def test_a_failed_write_keeps_arrays_in_memory(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk or a file-size limit: the stage goes on with the arrays in memory."""
    import builtins

    real = builtins.open

    def full(path: Path, mode: str = "r", *a: object, **k: object) -> object:
        f = real(path, mode, *a, **k)  # type: ignore[call-overload]
        if "w" in mode:
            def write(_: bytes) -> int:
                raise OSError(28, "No space left on device")
            f.write = write
        return f

    monkeypatch.setattr(builtins, "open", full)
    monkeypatch.setattr(rows_module._Column, "_SPILL", 3)
    with _beside(tmp_path / "run") as scratch:
        table = scratch.array((4, 2), np.float16, lambda: [np.ones((1, 2)), np.zeros((3, 2))])
        assert scratch.folder is not None and list(scratch.folder.iterdir()) == []
        rows = RowsBuilder(scratch.folder)
        for k in range(10):
            rows.append([k + 2, k + 3], None, k % 2, k)
        built = rows.build(np.array([1, 0]))
        assert list(scratch.folder.iterdir()) == []
    assert not isinstance(table, np.memmap) and table.tolist()[0] == [1, 1] and table[1:].sum() == 0
    assert not isinstance(built.labels, np.memmap)
    assert [e.ids for e in built] == [[k + 2, k + 3] for k in range(10)]
    assert built.labels.tolist() == [1, 0] * 5


def test_a_shared_buffer_writes_to_its_unlinked_file(tmp_path: Path) -> None:
    """The training loop's best weights: writable, file-backed (a shared mapping: page cache,
    not anonymous memory), nothing left beside the run; in memory when the place is
    read-only."""
    run = tmp_path / "run"
    with _beside(run) as scratch:
        best = torch.from_numpy(scratch.shared((1000, 16), np.float32))
        flags = scratch.shared((7,), np.bool_)
    best.copy_(torch.ones(1000, 16))
    flags[2] = True
    name = mapping_of(best.data_ptr())
    assert name is not None and name.endswith("(deleted)") and float(best.sum()) == 16_000
    line = next(x for x in Path("/proc/self/maps").read_text().splitlines() if name in x)
    assert line.split()[1].endswith("s")  # shared: its writes go to the file
    assert flags.tolist() == [False, False, True, False, False, False, False]
    assert _leftovers(run) == []
    with Scratch.beside(*scratch_folder(tmp_path / "no" / "such" / "run", 1)) as nowhere:
        held = nowhere.shared((3, 2), np.float32)
    assert not isinstance(held, np.memmap) and held.sum() == 0


def test_the_best_weights_of_a_run_are_held_in_a_mapped_buffer(tmp_path: Path) -> None:
    """The training loop keeps its best epoch's weights file-backed, and the run's final
    weights are theirs."""
    from safetensors.torch import load_file
    from test_data import make_task

    from metaprep.learn import train as learn_train

    task = make_task(tmp_path)
    seen: list[str | None] = []
    real = learn_train._finish

    def finish(loop: object, *args: object) -> object:
        best = loop.best  # type: ignore[attr-defined]
        seen.extend(mapping_of(v.data_ptr()) for v in best.values() if v.numel())
        return real(loop, *args)  # type: ignore[arg-type]

    cfg = RunConfig(method="sum", encoder="pool", proj_dim=8, mlp_hidden=8, epochs=2,
                    batch_size=8, learned_dim=4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(learn_train, "_finish", finish)
        learn_train.train(cfg, store=task["store"], train_data=task["train"], dev=task["dev"],
                          out=tmp_path / "r", progress=False)
    assert seen and all(s is not None and s.endswith("(deleted)") for s in seen)
    assert load_file(str(tmp_path / "r" / "best.safetensors"))


def test_a_shared_buffer_on_a_full_disk_is_held_in_memory(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Its blocks are allocated before it is mapped: a full disk fails there (never as a fault
    on a mapped page later), and the buffer is held in memory, no file left."""
    from metaprep.learn import scratch as scratch_module

    def full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(scratch_module.os, "posix_fallocate", full, raising=False)
    run = tmp_path / "run"
    with _beside(run) as scratch:
        held = scratch.shared((64, 4), np.float32)
        assert scratch.folder is not None and list(scratch.folder.iterdir()) == []
    assert not isinstance(held, np.memmap) and held.shape == (64, 4) and held.sum() == 0
    assert _leftovers(run) == []
