"""`metaprep triton` without a server: the repository it writes and its refusals. The model it
runs is tests/runtime/test_triton_backend.py; the real server, test_triton_server.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from exportkit import single_and_pair

from metaprep.cli import cli
from metaprep.errors import ConfigError, ModelError
from metaprep.exporter.triton_python import write_python_model
from metaprep.runtime.model import Model
from metaprep.stages import TritonOptions


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return single_and_pair(tmp_path_factory.mktemp("triton-py"))


def _config(path: Path) -> str:
    return (path / "config.pbtxt").read_text(encoding="utf-8")


def test_single_model_repository(models: dict[str, Path], tmp_path: Path) -> None:
    result = write_python_model(models["single"], tmp_path / "repo", TritonOptions())
    assert result.path == tmp_path / "repo" / "metaprep"
    assert result.inputs == ("TEXT",)
    assert result.outputs == ("LABEL", "PROBABILITIES", "EMBEDDING")
    text = _config(result.path)
    width = Model(models["single"]).embed(["a"]).shape[1]
    for line in ['backend: "python"', "max_batch_size: 64",
                 '{ name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] }',
                 '{ name: "PROBABILITIES" data_type: TYPE_FP32 dims: [ 2 ] }',
                 f'{{ name: "EMBEDDING" data_type: TYPE_FP32 dims: [ {width} ] }}',
                 "dynamic_batching { max_queue_delay_microseconds: 1000 }",
                 "instance_group [ { kind: KIND_CPU count: 1 } ]",
                 f'key: "model_dir" value: {{ string_value: "{models["single"].resolve()}" }}']:
        assert line in text
    model_py = (result.path / "1" / "model.py").read_text(encoding="utf-8")
    assert "from metaprep.runtime.triton_backend import TritonPythonModel" in model_py
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["metaprep"]  # no temps


def test_pair_model_copied(models: dict[str, Path], tmp_path: Path) -> None:
    opts = TritonOptions(name="nli", copy=True, instances=2, threads=1, max_batch_size=8,
                         dynamic_batching=False)
    result = write_python_model(models["pair"], tmp_path, opts)
    assert result.inputs == ("TEXT_A", "TEXT_B")
    assert result.outputs == ("LABEL", "PROBABILITIES")  # a pair model embeds no single text
    text = _config(result.path)
    assert "dynamic_batching" not in text and "count: 2" in text and "max_batch_size: 8" in text
    assert 'string_value: "1/model"' in text
    Model(result.path / "1" / "model", verify="full")  # the copy is whole


def test_refusals(models: dict[str, Path], tmp_path: Path) -> None:
    write_python_model(models["single"], tmp_path, TritonOptions())
    with pytest.raises(ConfigError, match="already exists"):
        write_python_model(models["single"], tmp_path, TritonOptions())
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")  # was "Not a directory", at the end
    with pytest.raises(ConfigError, match="already exists"):
        write_python_model(models["single"], tmp_path, TritonOptions(name="dangling"))
    for bad in [{"name": "a/b"}, {"name": ".x"}, {"max_batch_size": 0}, {"instances": 0},
                {"threads": -1}, {"verify": "some"}]:
        with pytest.raises(ConfigError):
            write_python_model(models["single"], tmp_path, TritonOptions(**bad))
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(models["single"], broken)
    with open(broken / "vocab.txt", "ab") as f:
        f.write(b"x")
    with pytest.raises(ModelError):
        write_python_model(broken, tmp_path, TritonOptions(name="broken"))
    assert not (tmp_path / "broken-model").exists()


@pytest.mark.parametrize("bad", [{"max_batch_size": 99_999_999_999}, {"instances": 1_000_000},
                                 {"threads": 99_999_999}, {"queue_delay_us": 10**21},
                                 {"instances": True}])
def test_huge_values_are_refused(models: dict[str, Path], tmp_path: Path, bad: dict) -> None:
    """They went into config.pbtxt: a million stub processes, or numbers Triton cannot read."""
    with pytest.raises(ConfigError, match="must be a whole number from"):
        write_python_model(models["single"], tmp_path / "repo", TritonOptions(**bad))
    assert not (tmp_path / "repo").exists()


def test_cli(models: dict[str, Path], tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["triton", str(models["single"]), "-o", str(tmp_path),
                                   "--name", "m", "--instances", "2", "--numpy2"])
    assert res.exit_code == 0, res.output
    assert "inputs TEXT; outputs LABEL, PROBABILITIES, EMBEDDING" in res.output
    text = _config(tmp_path / "m")
    assert "count: 2" in text and 'key: "numpy2" value: { string_value: "ok" }' in text
    assert CliRunner().invoke(cli, ["triton", "--help"]).exit_code == 0
