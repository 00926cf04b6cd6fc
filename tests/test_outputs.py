"""No command destroys anything but its own previous output (metaprep.outputs, used by every
stage): outputs that are, hold or sit inside an input are refused through symlinks and hard
links; special files are refused; --force replaces only metaprep's own directory; one writer at a
time; a killed run's leftovers are cleared by the next run."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from exportkit import make_run

from metaprep.cli import cli
from metaprep.outputs import clear_stale, hold


def _digest(path: Path) -> str:
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return hashlib.sha256("".join(f"{p.relative_to(path)}:{_digest(p)}" for p in
                                  sorted(path.rglob("*")) if p.is_file()).encode()).hexdigest()


def _invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args)
    message = str(result.exception) if result.exception else ""
    return result.exit_code, result.output + message


@pytest.fixture()
def vectors(tmp_path: Path) -> Path:
    path = tmp_path / "v.txt"
    path.write_text("text 0.1 0.2\nt 0.3 0.4\n")
    return path


def _task(tmp_path: Path) -> Path:
    path = tmp_path / "task.tsv"
    path.write_text("text\tlabel\n" + "".join(f"text {i}\t{'ab'[i % 2]}\n" for i in range(20)))
    return path


def test_export_onto_its_own_run_is_refused_even_with_force(tmp_path: Path) -> None:
    run = make_run(tmp_path / "w", method="dme", encoder="pool")
    before = _digest(run)
    code, text = _invoke(["export-onnx", str(run), "-o", str(run), "--force", "-q"])
    assert code != 0 and "is the input run" in text
    inside, text2 = _invoke(["export-onnx", str(run), "-o", str(run / "model"), "-q"])
    assert inside != 0 and "sits inside the input run" in text2
    assert _digest(run) == before


def test_two_outputs_of_one_command_never_hold_one_another(tmp_path: Path) -> None:
    """export-onnx -o M --triton M (or M/repo) made M for the Triton lock, then said "another
    process is writing" or "the model directory already exists", and left M behind empty."""
    run = make_run(tmp_path / "w", method="dme", encoder="pool")
    work = tmp_path / "out"
    work.mkdir()
    for triton in (work / "m", work / "m" / "repo"):
        code, text = _invoke(["export-onnx", str(run), "-o", str(work / "m"), "--triton",
                              str(triton), "-q"])
        assert code != 0 and "would be written one inside the other" in text, text
        assert list(work.iterdir()) == []


def test_force_replaces_only_a_model_directory(tmp_path: Path) -> None:
    run = make_run(tmp_path / "w", method="dme", encoder="pool")
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"\xff\xd8 not a model")
    code, text = _invoke(["export-onnx", str(run), "-o", str(mine), "--force", "-q"])
    assert code != 0 and "not a metaprep model directory" in text
    assert (mine / "holiday.jpg").read_bytes() == b"\xff\xd8 not a model"
    model = tmp_path / "model"
    assert _invoke(["export-onnx", str(run), "-o", str(model), "-q"])[0] == 0
    assert _invoke(["export-onnx", str(run), "-o", str(model), "--force", "-q"])[0] == 0


def test_align_never_writes_over_its_inputs(tmp_path: Path, vectors: Path) -> None:
    task = _task(tmp_path)
    before = task.read_bytes()
    code, text = _invoke(["align", f"v={vectors}", "--vocab", str(task), "-o", str(task), "-q"])
    assert code != 0 and "is the input vocab" in text
    link = tmp_path / "link.h5"
    link.symlink_to(vectors)
    code, text = _invoke(["align", f"v={vectors}", "-o", str(link), "-q"])
    assert code != 0 and "is the input sources" in text
    hard = tmp_path / "hard.h5"
    os.link(vectors, hard)
    code, text = _invoke(["align", f"v={vectors}", "-o", str(hard), "-q"])
    assert code != 0 and "is the input sources" in text
    assert task.read_bytes() == before and vectors.read_text().startswith("text 0.1")


def test_align_replaces_only_a_store(tmp_path: Path, vectors: Path) -> None:
    notes = tmp_path / "notes.h5"
    notes.write_text("my notes")
    code, text = _invoke(["align", f"v={vectors}", "-o", str(notes), "-q"])
    assert code != 0 and "is not a metaprep store" in text
    assert notes.read_text() == "my notes"
    store = tmp_path / "s.h5"
    assert _invoke(["align", f"v={vectors}", "-o", str(store), "-q"])[0] == 0
    assert _invoke(["align", f"v={vectors}", "-o", str(store), "-q"])[0] == 0  # its own output


def test_a_special_file_is_refused_not_renamed_over(tmp_path: Path, vectors: Path) -> None:
    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    code, text = _invoke(["align", f"v={vectors}", "-o", str(fifo), "-q"])
    assert code != 0 and "not a regular file" in text
    assert fifo.exists() and not fifo.is_file()


def test_an_output_under_a_file_or_device_is_refused(tmp_path: Path, vectors: Path) -> None:
    """Both used to say only "File exists" (from making the folders above the output)."""
    code, text = _invoke(["align", f"v={vectors}", "-o", str(vectors / "s.h5"), "-q"])
    assert code != 0 and f"would go inside {vectors}, which is not a folder" in text
    code, text = _invoke(["split", str(_task(tmp_path)), "-o", "/dev/null"])
    assert code != 0 and "would go inside /dev/null, which is not a folder" in text
    assert vectors.read_text() == "text 0.1 0.2\nt 0.3 0.4\n"


def test_train_does_not_write_into_a_folder_of_other_files(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "thesis.tex").write_text("chapter 1")
    code, text = _invoke(["train", "--store", "s.h5", "--train", "t.tsv", "--dev", "d.tsv",
                          "-o", str(folder)])
    assert code != 0 and "not a run" in text
    assert [p.name for p in folder.iterdir()] == ["thesis.tex"]


def test_split_may_write_beside_its_input(tmp_path: Path) -> None:
    task = _task(tmp_path)
    code, text = _invoke(["split", str(task), "-o", str(tmp_path)])
    assert code == 0, text
    assert (tmp_path / "train.tsv").is_file() and task.is_file()


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    task = _task(tmp_path)
    out = tmp_path / "out"
    with hold(out / "train.tsv"):
        code, text = _invoke(["split", str(task), "-o", str(out)])
    assert code != 0 and "another metaprep process is writing" in text
    assert _invoke(["split", str(task), "-o", str(out)])[0] == 0  # released


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        pid += 1


def test_the_next_run_clears_what_a_killed_run_left(tmp_path: Path, vectors: Path) -> None:
    store = tmp_path / "s.h5"
    stale = tmp_path / f".s.h5.{_dead_pid()}.tmp"
    stale.write_bytes(b"half a store")
    alive = tmp_path / f".s.h5.{os.getppid()}.tmp"  # a live process's temp file is left alone
    alive.write_bytes(b"someone else's")
    assert _invoke(["align", f"v={vectors}", "-o", str(store), "-q"])[0] == 0
    assert not stale.exists() and alive.exists()


def test_a_model_set_aside_by_a_killed_force_comes_back(tmp_path: Path) -> None:
    model = tmp_path / "model"
    aside = tmp_path / f".model.old-{_dead_pid()}"
    aside.mkdir()
    (aside / "manifest.json").write_text("{}")
    building = tmp_path / f".model.export-{_dead_pid()}"
    building.mkdir()
    cleared = clear_stale(model)
    assert sorted(cleared) == sorted([aside, building])
    assert (model / "manifest.json").read_text() == "{}" and not building.exists()


_RACER = """
import os, sys, time
from pathlib import Path
from metaprep.errors import ConfigError
from metaprep.outputs import claim
out, log, until = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
while time.time() < until:
    try:
        with claim("race", {"output": out}, {}):
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(fd, b"start\\n")
            time.sleep(0.0005)
            os.write(fd, b"end\\n")
            os.close(fd)
    except ConfigError:
        pass
"""


def test_three_processes_claiming_one_output_never_hold_it_together(tmp_path: Path) -> None:
    """The lock file is removed by each holder; a process that opened it just before used to
    lock that removed file while a third locked a new one (about 14 overlaps a second)."""
    import subprocess
    import sys
    import time

    log = tmp_path / "log"
    until = str(time.time() + 2.5)
    procs = [subprocess.Popen([sys.executable, "-c", _RACER, str(tmp_path / "out"), str(log),
                               until]) for _ in range(3)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    events = log.read_text().split()
    assert len(events) > 100 and events[::2] == ["start"] * (len(events) // 2)
    assert events[1::2] == ["end"] * (len(events) // 2)  # strictly start, end, start, end...
    assert not (tmp_path / ".out.lock").exists()
