"""The model Triton's python backend runs (runtime/triton_backend.py), driven through a
stand-in for Triton's ``triton_python_backend_utils`` on repositories `metaprep triton` wrote.
The real server is tests/exporter/test_triton_server.py."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from exportkit import single_and_pair

from metaprep.errors import ModelError
from metaprep.exporter.triton_python import write_python_model
from metaprep.runtime.model import Model
from metaprep.runtime.triton_backend import TritonPythonModel
from metaprep.stages import TritonOptions


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return single_and_pair(tmp_path_factory.mktemp("triton-py"))


def _config(path: Path) -> str:
    return (path / "config.pbtxt").read_text(encoding="utf-8")


# --- the backend class, with a stand-in for Triton's python backend utilities --------------------
class _Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self.name, self.array = name, array

    def as_numpy(self) -> np.ndarray:
        return self.array


class _Request:
    def __init__(self, inputs: dict[str, list[bytes]], outputs: tuple[str, ...] = ()) -> None:
        self.inputs = {k: _Tensor(k, np.array([[v] for v in vs], dtype=np.object_))
                       for k, vs in inputs.items()}
        self.outputs = outputs

    def requested_output_names(self) -> list[str]:
        return list(self.outputs)


class _Response:
    def __init__(self, output_tensors: list[_Tensor], error: Any = None) -> None:
        self.tensors = {t.name: t.array for t in output_tensors}
        self.error = error


@pytest.fixture()
def pb_utils(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    mod = types.ModuleType("triton_python_backend_utils")
    mod.Tensor = _Tensor  # type: ignore[attr-defined]
    mod.InferenceResponse = _Response  # type: ignore[attr-defined]
    mod.TritonError = str  # type: ignore[attr-defined]
    mod.get_input_tensor_by_name = lambda r, n: r.inputs.get(n)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", mod)
    monkeypatch.setattr(np, "__version__", "1.26.4")  # the check below is tested on its own
    return mod


def _loaded(repo_model: Path) -> TritonPythonModel:
    config = _config(repo_model)
    # what Triton hands initialize(): the config as JSON (only the parts the model reads)
    params = dict(
        (line.split('"')[1], {"string_value": json.loads(line.split("string_value: ")[1][:-4])})
        for line in config.splitlines() if line.startswith("parameters"))
    inputs = [{"name": n} for n in ("TEXT", "TEXT_A", "TEXT_B") if f'"{n}"' in config]
    outputs = [{"name": n} for n in ("LABEL", "PROBABILITIES", "EMBEDDING") if f'"{n}"' in config]
    m = TritonPythonModel()
    m.initialize({"model_config": json.dumps({
        "max_batch_size": 64, "input": inputs, "output": outputs, "parameters": params,
        "instance_group": [{"count": 1}]}), "model_repository": str(repo_model),
        "model_version": "1"})
    return m


def test_backend_answers_like_the_runtime(models: dict[str, Path], tmp_path: Path,
                                         pb_utils: types.ModuleType) -> None:
    result = write_python_model(models["single"], tmp_path, TritonOptions(copy=True))
    backend = _loaded(result.path)
    texts = ["the cat sat", "", "été à Paris 🙂", "dog " * 3000, "big red house"]
    requests = [_Request({"TEXT": [t.encode() for t in texts[:2]]}),
                _Request({"TEXT": [texts[2].encode() + b"\xff"]}, ("LABEL",)),
                _Request({"TEXT": [t.encode() for t in texts[3:]]}, ("EMBEDDING",))]
    responses = backend.execute(requests)
    model = Model(models["single"])
    expected = model.predict_proba(texts[:2] + [texts[2] + "\ufffd"] + texts[3:])
    labels = [model.labels[i].encode() for i in expected.argmax(axis=1)]
    assert [r.error for r in responses] == [None] * 3
    assert set(responses[0].tensors) == {"LABEL", "PROBABILITIES", "EMBEDDING"}
    assert set(responses[1].tensors) == {"LABEL"}
    assert set(responses[2].tensors) == {"EMBEDDING"}
    np.testing.assert_allclose(responses[0].tensors["PROBABILITIES"], expected[:2], atol=1e-6)
    assert responses[0].tensors["LABEL"].shape == (2, 1)
    assert list(responses[0].tensors["LABEL"].ravel()) == labels[:2]
    assert list(responses[1].tensors["LABEL"].ravel()) == labels[2:3]
    # the backend batches the texts its own way (one thread): float rounding of other padding
    np.testing.assert_allclose(responses[2].tensors["EMBEDDING"], model.embed(texts[3:]),
                               atol=1e-5)


def test_backend_pairs_and_errors(models: dict[str, Path], tmp_path: Path,
                                  pb_utils: types.ModuleType) -> None:
    result = write_python_model(models["pair"], tmp_path, TritonOptions())
    backend = _loaded(result.path)
    pairs = [("the cat", "a dog"), ("", "é")]
    (response,) = backend.execute([_Request({"TEXT_A": [a.encode() for a, _ in pairs],
                                             "TEXT_B": [b.encode() for _, b in pairs]})])
    np.testing.assert_allclose(response.tensors["PROBABILITIES"],
                               Model(models["pair"]).predict_proba(pairs), atol=1e-6)
    assert "EMBEDDING" not in response.tensors

    def broken(texts: Any) -> Any:
        raise RuntimeError("onnxruntime fell over")

    backend.model.predict_proba = broken  # type: ignore[method-assign]
    responses = backend.execute([_Request({"TEXT_A": [b"a"], "TEXT_B": [b"b"]})] * 2)
    assert [r.error for r in responses] == ["metaprep: onnxruntime fell over"] * 2


def test_backend_refuses_numpy2_unless_told(models: dict[str, Path], tmp_path: Path,
                                            pb_utils: types.ModuleType,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    old = write_python_model(models["single"], tmp_path, TritonOptions(name="old"))
    new = write_python_model(models["single"], tmp_path, TritonOptions(name="new", numpy2=True))
    monkeypatch.setattr(np, "__version__", "2.4.6")
    with pytest.raises(ModelError, match="numpy<2"):
        _loaded(old.path)
    _loaded(new.path)


def test_backend_refuses_a_model_directory_its_config_does_not_fit(
        models: dict[str, Path], tmp_path: Path, pb_utils: types.ModuleType) -> None:
    """The config names the model directory by its absolute path; exported again since as a
    multi-label model, the backend served argmax labels as if it were single-label."""
    import shutil

    d = tmp_path / "model"
    shutil.copytree(models["single"], d)
    result = write_python_model(d, tmp_path / "repo", TritonOptions())
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["task"].update(multilabel=True, thresholds={"global": 0.5, "per_label": [0.5, 0.5]})
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="single-label models only"):
        _loaded(result.path)
    shutil.rmtree(d)
    shutil.copytree(models["pair"], d)  # a pair model where the config reads TEXT
    with pytest.raises(ModelError, match=r"config.pbtxt reads \['TEXT'\] .* reads "
                                         r"\['TEXT_A', 'TEXT_B'\]"):
        _loaded(result.path)
