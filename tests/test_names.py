"""One check for every name a user gives that becomes a folder or file name (metaprep.names):
a Triton model's name (export-onnx --triton-name, triton --name, a pipeline's triton_name), an
embedding source's name, a pipeline's name. Each refusal is one line naming the option, and
nothing is written anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from exportkit import make_run

from metaprep.cli import cli
from metaprep.errors import ConfigError
from metaprep.names import MAX_NAME, check_name, is_name

BAD = ["", ".", "..", "../x", "a/b", "/abs", "a\\b", "a\0b", ".hidden", "-rf", "a b", "a\nb",
       'a"b', "caf\u00e9", "a" * (MAX_NAME + 1)]


@pytest.mark.parametrize("name", ["a", "my-model", "glove.6B+x", "_x", "x..y", "a" * MAX_NAME])
def test_plain_names_pass(name: str) -> None:
    assert is_name(name) and check_name(name, "--name") == name


@pytest.mark.parametrize("name", [*BAD, None, 5])
def test_anything_that_could_leave_its_folder_is_refused(name: object) -> None:
    assert not is_name(name)
    with pytest.raises(ConfigError, match=r"^--name .* must be one folder name") as info:
        check_name(name, "--name")
    assert "\n" not in str(info.value)


def _refused(args: list[str], option: str) -> None:
    """A ConfigError (the console entry point prints it as one line, exit 2) naming the option."""
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, ConfigError), result.output
    message = str(result.exception)
    assert message.startswith(f"{option} ") and "\n" not in message
    assert "must be one folder name" in message


@pytest.mark.parametrize("name", ["../escaped", "..", "a/b", ".hidden", "a\nb"])
def test_export_triton_name_never_leaves_the_repository(tmp_path: Path, name: str) -> None:
    """`--triton-name ../x` wrote the Triton entry beside the repository, outside it."""
    run = make_run(tmp_path / "r", method="dme", dev=False)
    work = tmp_path / "w"
    work.mkdir()
    _refused(["export-onnx", str(run), "-o", str(work / "m"), "--triton", str(work / "repo"),
              "--triton-name", name, "-q"], "--triton-name")
    assert list(work.iterdir()) == []  # no model, no repository, no lock, nothing beside


@pytest.mark.parametrize("name", ["../escaped", "a b", "a\nb", "x" * (MAX_NAME + 1)])
def test_triton_name_is_one_folder_name(tmp_path: Path, name: str) -> None:
    """A newline or a space in --name went into the folder name and broke config.pbtxt."""
    model = tmp_path / "model"
    model.mkdir()
    work = tmp_path / "w"
    work.mkdir()
    _refused(["triton", str(model), "-o", str(work / "repo"), "--name", name], "--name")
    assert list(work.iterdir()) == []


def test_write_triton_checks_the_name_itself(tmp_path: Path) -> None:
    from metaprep.exporter.triton import write_triton

    with pytest.raises(ConfigError, match="--triton-name '../x'"):
        write_triton(tmp_path, tmp_path / "repo", "../x", None)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_a_source_name_is_checked_before_anything_is_read(tmp_path: Path) -> None:
    """A long source name aligned every source, then failed on its staging file's name."""
    from metaprep.stages import AlignOptions, align

    (tmp_path / "v.txt").write_text("a 0.1 0.2\n")
    for name in ("x" * (MAX_NAME + 1), "a/b", "../b"):
        with pytest.raises(ConfigError, match=r"source name \(.*\) .* must be one folder name"):
            align(AlignOptions(sources={name: str(tmp_path / "v.txt")},
                               output=str(tmp_path / "s.h5"), quiet=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.txt"]
