"""Copies of a model directory take exactly the files its manifest lists, each a regular file
opened without following links and checked (size, sha256) while copied: `metaprep triton --copy`
and `export-onnx --triton`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from exportkit import make_run

from metaprep.cli import cli
from metaprep.errors import ModelError
from metaprep.exporter.modelcopy import copy_files, copy_model
from metaprep.exporter.triton_python import write_python_model
from metaprep.runtime.model import Model
from metaprep.runtime.modeldir import read_manifest
from metaprep.stages import TritonOptions


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from metaprep.exporter.run import export_run
    from metaprep.stages import ExportOptions

    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("copy")
    export_run(make_run(base, method="dme", encoder="pool", dev=False), base / "model",
               options=ExportOptions(quiet=True), log=lambda _: None)
    return base / "model"


def _own(model: Path, tmp_path: Path) -> Path:
    mine = tmp_path / "m"
    shutil.copytree(model, mine)
    return mine


def _listed(model: Path) -> list[str]:
    return sorted([*read_manifest(model).files, "manifest.json"])


def test_a_copy_never_takes_what_the_manifest_does_not_list(model: Path, tmp_path: Path) -> None:
    """`triton --copy` walked the folder: a symlink to a secret was copied into the repository."""
    m = _own(model, tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    (m / "notes.txt").symlink_to(secret)
    (m / "extra").mkdir()
    (m / "extra" / "more.txt").symlink_to(secret)
    result = write_python_model(m, tmp_path / "repo", TritonOptions(copy=True))
    copied = result.path / "1" / "model"
    assert sorted(p.name for p in copied.iterdir()) == _listed(model)
    assert not any("hunter2" in p.read_text(errors="replace") for p in copied.iterdir())
    Model(copied, verify="full")  # the copy is whole


def test_links_to_devices_and_pipes_are_never_opened(model: Path, tmp_path: Path) -> None:
    """A link to /dev/zero in the folder would have filled the disk; a FIFO hung the copy."""
    m = _own(model, tmp_path)
    (m / "zero").symlink_to("/dev/zero")
    os.mkfifo(m / "pipe")
    result = write_python_model(m, tmp_path / "repo", TritonOptions(copy=True))
    assert sorted(p.name for p in (result.path / "1" / "model").iterdir()) == _listed(model)


def test_a_listed_file_must_be_the_regular_file_listed(model: Path, tmp_path: Path) -> None:
    m = _own(model, tmp_path)
    (m / "vocab.txt").rename(m / "vocab.real")
    (m / "vocab.txt").symlink_to("vocab.real")  # inside the folder, still a link
    with pytest.raises(ModelError, match="vocab.txt is a symbolic link"):
        copy_model(m, tmp_path / "a")
    (m / "vocab.txt").unlink()
    os.mkfifo(m / "vocab.txt")
    with pytest.raises(ModelError, match="vocab.txt is not a regular file"):
        copy_model(m, tmp_path / "b")
    (m / "vocab.txt").unlink()
    (m / "vocab.real").rename(m / "vocab.txt")
    data = bytearray((m / "labels.json").read_bytes())
    data[-2] ^= 1  # same size, other bytes
    (m / "labels.json").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="labels.json does not match its sha256"):
        copy_model(m, tmp_path / "c")
    with open(m / "labels.json", "ab") as f:
        f.write(b"\n")
    with pytest.raises(ModelError, match="labels.json has .* bytes, the manifest says"):
        copy_model(m, tmp_path / "d")
    for name in "abcd":  # a refused copy leaves no listed file behind
        assert not (tmp_path / name).exists() or not any(
            p.name == "labels.json" for p in (tmp_path / name).iterdir())


def test_the_manifest_itself_is_bounded_and_never_followed(model: Path, tmp_path: Path) -> None:
    m = _own(model, tmp_path)
    (m / "manifest.json").rename(tmp_path / "elsewhere.json")
    (m / "manifest.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(ModelError, match="manifest.json is a symbolic link"):
        copy_model(m, tmp_path / "a")
    (m / "manifest.json").unlink()
    text = (tmp_path / "elsewhere.json").read_text()
    (m / "manifest.json").write_text(text + " " * (5 << 20))
    with pytest.raises(ModelError, match="manifest.json is larger than"):
        copy_model(m, tmp_path / "b")


def test_a_read_stops_one_byte_past_the_listed_size(model: Path, tmp_path: Path) -> None:
    """The listed size bounds every read: a file that grows while it is copied (or a device
    swapped in after the checks) costs at most one byte more, never a full disk."""
    from metaprep.exporter import modelcopy
    from metaprep.runtime.modeldir import FileRecord

    fd = os.open("/dev/zero", os.O_RDONLY)
    try:
        with pytest.raises(ModelError, match="grew past its listed 1,000 bytes"):
            modelcopy._stream(fd, FileRecord("0" * 64, 1000), tmp_path / "zero", None)
    finally:
        os.close(fd)
    m = _own(model, tmp_path)
    manifest = read_manifest(m)
    (tmp_path / "out").mkdir()
    with pytest.raises(ModelError, match="not listed"):
        copy_files(m, tmp_path / "out", manifest, ["secret"])
    assert list((tmp_path / "out").iterdir()) == []


def test_export_triton_links_only_the_listed_graph_files(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", method="dme", dev=False)
    res = CliRunner().invoke(cli, ["export-onnx", str(run), "-o", str(tmp_path / "m"),
                                   "--triton", str(tmp_path / "repo"), "-q"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    graph = manifest["graphs"]["model"]
    entry = tmp_path / "repo" / "metaprep" / "1"
    assert sorted(p.name for p in entry.iterdir()) == sorted([graph["file"], *graph["data_files"]])
    for p in entry.iterdir():
        assert p.stat().st_ino == (tmp_path / "m" / p.name).stat().st_ino  # linked, not copied
    # a model directory whose graph was swapped for a link is refused, the repository unchanged
    from metaprep.exporter.triton import write_triton
    from metaprep.runtime.modeldir import Manifest

    m = tmp_path / "m"
    (m / "model.onnx").rename(tmp_path / "model.onnx")
    (m / "model.onnx").symlink_to(tmp_path / "model.onnx")
    loaded = Manifest.from_dict(manifest, m / "manifest.json")
    with pytest.raises(ModelError, match="model.onnx is a symbolic link"):
        write_triton(m, tmp_path / "repo", "again", loaded)
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["metaprep"]


def test_a_link_planted_at_the_temporary_name_is_never_written_through(model: Path,
                                                                       tmp_path: Path) -> None:
    """The entry's temporary folder was made with parents=True: a symlink planted at its name
    (in a shared folder) had the entry written into the link's target."""
    from metaprep.errors import WriteError
    from metaprep.exporter.triton import staging, write_triton

    outside = tmp_path / "outside"
    outside.mkdir()
    repo = tmp_path / "repo"
    planted = [staging(repo, name) for name in ("metaprep", "onnx")]
    for link in planted:
        link.symlink_to(outside)
    with pytest.raises(WriteError, match="cannot write the Triton model .File exists"):
        write_python_model(model, repo, TritonOptions(copy=True))
    with pytest.raises(WriteError, match="cannot write the Triton model .File exists"):
        write_triton(model, repo, "onnx", read_manifest(model))
    assert list(outside.iterdir()) == [] and list(repo.iterdir()) == []
    assert all(link.is_symlink() for link in planted)  # as they were


def test_an_entry_is_never_built_inside_the_repository(model: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Triton loads every folder in its repository, a half-built entry too: one a killed
    `triton --copy` or `export-onnx --triton` left stopped tritonserver from starting ("failed
    to load all models"), and a server polling the repository saw each entry being built."""
    import metaprep.exporter.modelcopy as modelcopy
    import metaprep.exporter.triton as triton

    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("metaprep", "onnx"):  # what runs killed long ago left (their pid is gone)
        (tmp_path / f".repo.{name}.999999999.tmp" / "1").mkdir(parents=True)
    seen: list[list[str]] = []

    def watching(copy: Any) -> Any:
        def copy_and_look(*args: Any, **kw: Any) -> Any:
            seen.append(sorted(p.name for p in repo.iterdir() if p.is_dir()))
            return copy(*args, **kw)
        return copy_and_look

    monkeypatch.setattr(modelcopy, "copy_model", watching(modelcopy.copy_model))
    monkeypatch.setattr(triton, "copy_files", watching(triton.copy_files))
    write_python_model(model, repo, TritonOptions(copy=True))
    triton.write_triton(model, repo, "onnx", read_manifest(model))
    assert seen == [[], ["metaprep"]]  # nothing but finished entries, ever
    assert sorted(p.name for p in repo.iterdir()) == ["metaprep", "onnx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # the leftovers cleared
