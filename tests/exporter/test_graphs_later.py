"""A model whose text graph is large opens at once and checks and loads the text and serve graphs
on a thread (a 3.5M-word text graph took 4 s to load in onnxruntime): until then texts take the
Python path, with the same predictions and counts (then the serve graph alone, without a second
copy of the map in a text graph session); a deferred graph that fails a check refuses
every call after it, as it would have refused the open."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from exportkit import make_run, sentences

from metaprep.errors import ModelError
from metaprep.runtime import model as model_module
from metaprep.runtime.dirfiles import verify_files, verify_hashes
from metaprep.runtime.model import Model
from metaprep.runtime.modeldir import ModelDir, read_manifest

TEXTS = ["", "The cat sat.", "PARIS paris", "x" * 200, *sentences(60, seed=4)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from metaprep.exporter.run import export_run
    from metaprep.stages import ExportOptions

    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("later")
    run = make_run(base, method="sum", encoder="pool", learned_dim=4, learned_buckets=97,
                   max_tokens=9, case_policy="exact")  # a complete map: a serve graph too
    export_run(run, base / "model", options=ExportOptions(quiet=True), log=lambda _: None)
    return base / "model"


def test_the_model_serves_the_same_before_and_after_its_graphs_load(
        model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    assert {"text", "serve"} <= set(read_manifest(model_dir).graphs)
    now = Model(model_dir, threads=2, batch_size=8, wait=True)
    assert now.text_path == "onnxruntime" and now._serve is not None
    release = threading.Event()
    real = onnxruntime.InferenceSession

    def session(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).endswith(("text.onnx", "serve.onnx")):
            assert release.wait(30)  # the text graph "loads" until the test lets it
        return real(path, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    later = Model(model_dir, threads=2, batch_size=8, wait=False)
    assert later.dir.deferred == ("text", "serve")
    assert later.text_path == "python" and later.text_note == "text graph loading"
    np.testing.assert_array_equal(later.predict_proba(TEXTS), now.predict_proba(TEXTS))
    assert later.stats == now.stats and later.text_path == "python"
    assert not later.ready(timeout=0.01)
    release.set()
    assert later.ready()  # waits for the thread
    assert later.text_path == "onnxruntime" and later._serve is not None and not later.text_note
    # the serve graph holds the vocabulary's map: the text graph's session would be a 2nd copy
    assert later._text is None and "text" not in later._sessions
    np.testing.assert_array_equal(later.predict_proba(TEXTS), now.predict_proba(TEXTS))


def test_a_large_text_graph_is_loaded_on_a_thread_by_default(
        model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Model(model_dir).dir.deferred == ()  # small: checked and loaded before it returns
    monkeypatch.setattr(model_module, "WAIT_GRAPH_BYTES", 100)
    model = Model(model_dir)
    assert model.dir.deferred == ("text", "serve")
    assert model.ready() and model.text_path == "onnxruntime"


def _forge_text_graph(src: Path, dst: Path) -> None:
    """Another model's text graph (other ids for the same words) in place of this one's, the
    manifest's record of it updated: only the probes can tell."""
    from metaprep.exporter.onnx_data import save_graph
    from metaprep.exporter.textgraph import text_graph
    from metaprep.runtime.modeldir import file_sha256
    from metaprep.tokenize import TokenizerConfig

    shutil.copytree(src, dst)
    data = json.loads((dst / "manifest.json").read_text())
    del data["graphs"]["serve"], data["files"]["serve.onnx"]
    (dst / "serve.onnx").unlink()
    words = (dst / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    save_graph(text_graph(TokenizerConfig(), words[::-1], data["case_policy"]),
               dst / "text.onnx")
    data["files"]["text.onnx"] = {"sha256": file_sha256(dst / "text.onnx"),
                                  "bytes": (dst / "text.onnx").stat().st_size}
    (dst / "manifest.json").write_text(json.dumps(data))


def test_a_deferred_graph_that_fails_its_probes_refuses_every_later_call(
        model_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "m"
    _forge_text_graph(model_dir, d)
    with pytest.raises(ModelError, match="text.onnx does not give the ids"):
        Model(d, wait=True)
    model = Model(d, wait=False)  # opens: the graph is checked on the thread
    with pytest.raises(ModelError, match="text.onnx does not give the ids"):
        model.ready()
    with pytest.raises(ModelError, match="text.onnx does not give the ids"):
        model.load_graphs()
    assert model.text_path == "python" and "text graph refused" in model.text_note
    for call in (model.predict_proba, model.predict, model.embed):
        with pytest.raises(ModelError, match="text.onnx does not give the ids"):
            call(["a text"])
    with pytest.raises(ModelError, match="text.onnx does not give the ids"):
        model.encode("a text")


def test_a_damaged_deferred_graph_is_caught_by_its_sha256_before_it_is_read(
        model_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    raw = bytearray((d / "serve.onnx").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (d / "serve.onnx").write_bytes(bytes(raw))
    manifest = read_manifest(d)
    verify_files(d, manifest, later={"serve.onnx"})  # sizes agree; its hash waits
    with pytest.raises(ModelError, match="serve.onnx does not match its sha256"):
        verify_hashes(d, manifest, ["serve.onnx"])
    opened = ModelDir.open(d, defer=["text", "serve"])
    with pytest.raises(ModelError, match="serve.onnx does not match its sha256"):
        opened.check_deferred()
    model = Model(d, wait=False)
    with pytest.raises(ModelError, match="serve.onnx does not match its sha256"):
        model.load_graphs()
    with pytest.raises(ModelError, match="serve.onnx does not match its sha256"):
        model.predict_proba(["a text"])
    # a size that differs is still refused at once
    (d / "serve.onnx").write_bytes(bytes(raw) + b"\0")
    with pytest.raises(ModelError, match="serve.onnx has"):
        Model(d, wait=False)


def test_wait_takes_none_true_or_false(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="wait must be"):
        Model(model_dir, wait="yes")  # type: ignore[arg-type]
