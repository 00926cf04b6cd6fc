"""Crashes and faults cost nothing: a file-size limit (a full disk, as far as a process can tell)
is one line naming the path with the previous output intact and no temp file left; kill -9 at
random points leaves no incomplete output, and the next run of the same command succeeds and
clears what the killed one left."""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import gensim
import pytest
from exportkit import make_run, make_store, write_task

DATA = Path(os.path.dirname(gensim.__file__)) / "test" / "test_data"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _metaprep(args: list[str], *, fsize: int | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([sys.executable, "-m", "metaprep", *args], capture_output=True,
                          text=True, timeout=300, preexec_fn=limit, env=ENV, cwd=cwd)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()
                  if p.name.startswith(".") and not p.name.startswith(".metaprep"))


def _one_line_error(proc: subprocess.CompletedProcess[str], path: Path) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    assert str(path) in lines[0] or path.name in lines[0]


def test_align_under_a_file_size_limit(tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    args = ["align", f"glove={DATA / 'test_glove.txt'}", f"lee={DATA / 'lee_fasttext.vec'}",
            "-o", str(out), "-q"]
    assert _metaprep(args).returncode == 0
    before = out.read_bytes()
    proc = _metaprep(args, fsize=20_000)
    _one_line_error(proc, out)
    assert out.read_bytes() == before and _leftovers(tmp_path) == []


def _vectors(path: Path, prefix: str, rows: int) -> Path:
    rng = random.Random(prefix)
    path.write_text("".join(f"{prefix}{i} " + " ".join(f"{rng.gauss(0, 1):.4f}" for _ in range(50))
                            + "\n" for i in range(rows)))
    return path


@pytest.mark.parametrize("fsize", [1_300_000, 2_000_000, 2_900_000])
def test_a_store_outgrowing_its_room_check_is_one_line(tmp_path: Path, fsize: int) -> None:
    """Text files declare no row count, so a union's room check can only count on 1 MB: the
    limit is hit while HDF5 writes (this used to end in a segfault)."""
    a, b = _vectors(tmp_path / "a.txt", "x", 4000), _vectors(tmp_path / "b.txt", "y", 4000)
    out = tmp_path / "out" / "s.h5"
    assert _metaprep(["align", f"a={a}", "-o", str(out), "-q"]).returncode == 0
    before = out.read_bytes()
    proc = _metaprep(["align", f"a={a}", f"b={b}", "-o", str(out), "-q"], fsize=fsize)
    _one_line_error(proc, out)
    assert "cannot write the store (File too large)" in proc.stderr
    assert out.read_bytes() == before and _leftovers(out.parent) == []


def test_split_under_a_file_size_limit(tmp_path: Path) -> None:
    """It said only "No space left on device" and left its temporary file behind."""
    data = write_task(tmp_path / "all.tsv", 300)
    out = tmp_path / "out"
    assert _metaprep(["split", str(data), "-o", str(out)]).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = _metaprep(["split", str(data), "-o", str(out), "--seed", "1"], fsize=2_000)
    _one_line_error(proc, out / "train.tsv")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_evaluate_output_under_a_file_size_limit(tmp_path: Path) -> None:
    """It said only "No space left on device", naming no file."""
    run = make_run(tmp_path / "w", method="dme", encoder="pool")
    dev = write_task(tmp_path / "d.tsv", 20, seed=2)
    out = tmp_path / "scores.json"
    proc = _metaprep(["evaluate", str(run), str(dev), "-o", str(out), "-q"], fsize=50)
    _one_line_error(proc, out)
    assert not out.exists() and _leftovers(tmp_path) == []


def test_train_and_export_under_a_file_size_limit(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store.h5")
    train, dev = write_task(tmp_path / "t.tsv", 40), write_task(tmp_path / "d.tsv", 20, seed=2)
    run = tmp_path / "run"
    proc = _metaprep(["train", "--store", str(store), "--train", str(train), "--dev", str(dev),
                      "--set", "hidden=8", "--set", "mlp_hidden=8", "--proj-dim", "8", "--epochs",
                      "1", "--keep-checkpoints", "-o", str(run), "-q"], fsize=8_000)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "cannot write" in proc.stderr
    assert [p.name for p in run.iterdir() if p.name.endswith(".tmp")] == []

    ready = make_run(tmp_path / "w", method="dme", encoder="pool")
    model = tmp_path / "model"
    proc = _metaprep(["export-onnx", str(ready), "-o", str(model), "-q"], fsize=1_000)
    _one_line_error(proc, model)  # the external data's write error used to name no file
    assert not model.exists() and _leftovers(tmp_path) == []


def test_triton_copy_under_a_file_size_limit(tmp_path: Path) -> None:
    """The copy's error was a list of (source, destination, error) tuples, naming temp paths."""
    from metaprep.exporter.run import export_run
    from metaprep.stages import ExportOptions

    model = tmp_path / "model"
    export_run(make_run(tmp_path / "w", method="dme", encoder="pool"), model,
               options=ExportOptions(quiet=True), log=lambda s: None)
    repo = tmp_path / "repo"
    proc = _metaprep(["triton", str(model), "-o", str(repo), "--copy"], fsize=2_000)
    _one_line_error(proc, repo / "metaprep")
    assert "cannot write the Triton model (File too large); nothing was written" in proc.stderr
    assert list(repo.iterdir()) == []


def _kill_at_random(args: list[str], seconds: float) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "metaprep", *args], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_kill_9_at_random_points_loses_nothing(tmp_path: Path) -> None:
    from metaprep.prep.store import Store
    from metaprep.runtime.model import Model

    rng = random.Random(7)
    store = tmp_path / "s.h5"
    align = ["align", f"glove={DATA / 'test_glove.txt'}", f"lee={DATA / 'lee_fasttext.vec'}",
             f"bin={DATA / 'lee_fasttext.bin'}", "--oov", "bin=subword", "-o", str(store), "-q"]
    run = make_run(tmp_path / "w", method="dme", encoder="bilstm")
    model = tmp_path / "model"
    export = ["export-onnx", str(run), "-o", str(model), "-q", "--force"]
    for _ in range(3):
        _kill_at_random(align, rng.uniform(0.3, 2.5))
        if store.exists():  # whatever is at the output path is a whole store
            with Store(store) as s:
                assert s.sources == ["glove", "lee", "bin"]
        _kill_at_random(export, rng.uniform(0.3, 3.0))
        if model.exists():
            Model(model, verify="full")
    assert _metaprep(align).returncode == 0 and _metaprep(export).returncode == 0
    assert _leftovers(tmp_path) == []
    Model(model, verify="full")


@pytest.mark.slow
def test_a_run_killed_mid_training_resumes(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store.h5")
    train, dev = write_task(tmp_path / "t.tsv", 200), write_task(tmp_path / "d.tsv", 20, seed=2)
    run = tmp_path / "run"
    args = ["train", "--store", str(store), "--train", str(train), "--dev", str(dev),
            "--set", "hidden=8", "--set", "mlp_hidden=8", "--proj-dim", "8", "--epochs", "3",
            "--batch-size", "4", "--set", "checkpoint_steps=5", "-o", str(run), "-q"]
    rng = random.Random(3)
    for _ in range(2):
        _kill_at_random(args + (["--resume"] if (run / "checkpoint.pt").exists() else []),
                        rng.uniform(1.0, 4.0))
    final = _metaprep(args + (["--resume"] if (run / "checkpoint.pt").exists() else []))
    assert final.returncode == 0, final.stderr
    assert (run / "best.safetensors").is_file() and (run / "metrics.json").is_file()
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize(("sizes", "fsize", "name"), [
    ("16", 2_000, "best.safetensors"), ("16", 8_000, "checkpoint.pt"),
    ("4", 20_000, "learning_curves.png")])
def test_every_file_of_a_run_under_a_file_size_limit(tmp_path: Path, sizes: str, fsize: int,
                                                     name: str) -> None:
    """The best weights (a safetensors traceback), the checkpoint and the plots (a message
    naming no file): one line naming the file, no temp left, and the run resumable once there
    is room (a short run that failed at its end holds no checkpoint: the resume starts it
    over)."""
    store = make_store(tmp_path / "store.h5")
    train, dev = write_task(tmp_path / "t.tsv", 40), write_task(tmp_path / "d.tsv", 20, seed=2)
    run = tmp_path / "run"
    args = ["train", "--store", str(store), "--train", str(train), "--dev", str(dev), "--method",
            "sum", "--encoder", "pool", "--proj-dim", sizes, "--set", f"mlp_hidden={sizes}",
            "--epochs",
            "1", "--threads", "1", "-o", str(run), "-q"]
    if name == "checkpoint.pt":  # a finished run drops it: kept here to be looked at
        args.append("--keep-checkpoints")
    if name.endswith(".png"):  # drawn when asked
        args.append("--plots")
    proc = _metaprep(args, fsize=fsize)
    _one_line_error(proc, run / name)
    assert f"cannot write {name} (" in proc.stderr
    assert [p.name for p in run.iterdir() if p.name.endswith(".tmp")] == []
    assert not (run / name).exists()
    again = _metaprep([*args, "--resume"])
    assert again.returncode == 0, again.stderr
    assert (run / name).is_file() and (run / "metrics.json").is_file()
