"""The serve graph (texts -> the model's outputs in one onnxruntime run, textgraph.serve_graph):
written when the text graph's map is complete, it gives what the text graph and the model graph
give one after the other (outputs, ids, statistics), leaves the batches it cannot take exactly to
them, and a serve graph that disagrees with them is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from exportkit import make_run, sentences
from test_textgraph import HOSTILE, _random_texts, _save_manifest

from metaprep.errors import ModelError
from metaprep.exporter.onnx_data import save_graph
from metaprep.exporter.run import export_run
from metaprep.exporter.textgraph import serve_graph
from metaprep.runtime.model import Model
from metaprep.stages import ExportOptions

TEXTS = HOSTILE + sentences(40, seed=3) + _random_texts(200, seed=7)


def _export(base: Path, **kw: object) -> Path:
    run = make_run(base, method="sum", encoder="pool", learned_dim=4, learned_buckets=97,
                   max_tokens=9, **kw)
    export_run(run, base / "model", options=ExportOptions(quiet=True),
               log=lambda _: None)
    return base / "model"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("serve"), case_policy="exact")


def _two_graphs(model_dir: Path, **kw: object) -> Model:
    model = Model(model_dir, **kw)  # type: ignore[arg-type]
    model._serve = None  # the text graph, then the model graph
    model._load_text_graph("text")
    return model


def test_written_for_a_complete_map_and_used(model_dir: Path, tmp_path: Path) -> None:
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["graphs"]["serve"]["inputs"] == ["text"]
    assert {"probabilities", "ids", "counts"} <= set(manifest["graphs"]["serve"]["outputs"])
    # the model's tables are read from the one data file both graphs share
    assert manifest["graphs"]["serve"]["data_files"] == manifest["graphs"]["model"]["data_files"]
    assert Model(model_dir)._serve is not None
    # a map that leaves tokens to Python (the fallback case policy) and pairs: no serve graph
    for kw in ({"case_policy": "fallback"}, {"case_policy": "exact", "pair": True}):
        other = _export(tmp_path / str(len(list(tmp_path.iterdir()))), **kw)
        assert "serve" not in json.loads((other / "manifest.json").read_text())["graphs"]


@pytest.mark.parametrize("threads", [1, 2])
def test_outputs_and_statistics_are_the_two_graphs(model_dir: Path, threads: int) -> None:
    texts = TEXTS * 2
    two = _two_graphs(model_dir, threads=threads, batch_size=8)
    one = Model(model_dir, threads=threads, batch_size=8)
    np.testing.assert_allclose(one.predict_proba(texts), two.predict_proba(texts),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(one.embed(texts), two.embed(texts), rtol=1e-6, atol=1e-6)
    assert one.stats == two.stats and one.stats.truncated > 0 and one.stats.empty > 0
    assert one.stats.unknown > 0


def test_batches_it_cannot_take_exactly_go_the_other_way(model_dir: Path) -> None:
    model = Model(model_dir, threads=1)
    huge = "word " * 20_000  # the Python path reads only its first tokens
    lone = "a \ud800 surrogate"  # Python holds it, UTF-8 cannot
    for batch in (["the cat", huge], ["the cat", lone]):
        assert model._serve_batch(batch, "probabilities") is None
        want = _two_graphs(model_dir, threads=1).predict_proba(batch)
        np.testing.assert_allclose(model.predict_proba(batch), want, rtol=1e-6, atol=1e-7)


def test_a_serve_graph_that_disagrees_is_refused(model_dir: Path, tmp_path: Path) -> None:
    """A consistent forgery: serve.onnx changed, the manifest's checksums brought up to date."""
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    graph = onnx.load(str(d / "serve.onnx"), load_external_data=False)
    cap = next(t for t in graph.graph.initializer if t.name == "text_cap")
    cap.int64_data[0] = 3  # counts cut short: the statistics would lie
    save_graph(graph, d / "serve.onnx")
    _save_manifest(d, json.loads((d / "manifest.json").read_text()), ("serve.onnx",))
    with pytest.raises(ModelError, match="serve.onnx is not the join of text.onnx and "
                                         "model.onnx: its constant text_cap is not the join's"):
        Model(d)


def test_a_serve_graph_that_agrees_only_on_the_probe_texts_is_refused(
        model_dir: Path, tmp_path: Path) -> None:
    """A word no probe text holds mapped to another word's id inside serve.onnx alone: the
    probes agreed, so it was served, and texts with that word were classified as if they held
    the other. The serve graph is now compared with the two graphs themselves."""
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    graph = onnx.load(str(d / "serve.onnx"), load_external_data=False)
    encoder = next(n for n in graph.graph.node if n.op_type == "LabelEncoder")
    attrs = {a.name: a for a in encoder.attribute}
    attrs["keys_strings"].strings.append(b"qwerty")
    attrs["values_int64s"].ints.append(Model(model_dir).vocab.id("good"))
    save_graph(graph, d / "serve.onnx")
    _save_manifest(d, json.loads((d / "manifest.json").read_text()), ("serve.onnx",))
    with pytest.raises(ModelError, match="serve.onnx is not the join of text.onnx and "
                                         "model.onnx: node 1 is not the text graph's "
                                         "LabelEncoder"):
        Model(d)
    # the serve graph of another max_tokens, and one of another model graph
    text = onnx.load(str(model_dir / "text.onnx"))
    model = onnx.load(str(model_dir / "model.onnx"), load_external_data=False)
    for other, message in [(serve_graph(text, model, 8), "its constant text_cap"),
                           (_bias_nudged(serve_graph(text, model, 9)), "its initializer")]:
        save_graph(other, d / "serve.onnx")
        _save_manifest(d, json.loads((d / "manifest.json").read_text()), ("serve.onnx",))
        with pytest.raises(ModelError, match=message):
            Model(d)


def _bias_nudged(graph: onnx.ModelProto) -> onnx.ModelProto:
    """The classifier's bias changed by 1e-7: within the probes' tolerance."""
    from onnx import numpy_helper

    for t in graph.graph.initializer:
        if t.name == "classifier.out.b":
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) + 1e-7, t.name))
    return graph


@pytest.mark.parametrize("options", [{"table_dtype": "float16"}, {"quantize": "int8"}])
def test_the_shipped_variants_get_one_too(tmp_path: Path, options: dict[str, object]) -> None:
    """Built from the model graph actually shipped (float16 tables, int8 weights)."""
    run = make_run(tmp_path, method="sum", encoder="pool", learned_dim=4, learned_buckets=97,
                   case_policy="exact", max_tokens=9)
    export_run(run, tmp_path / "model", log=lambda _: None,
               options=ExportOptions(quiet=True, max_accuracy_drop=1.0,
                                     **options))  # type: ignore[arg-type]
    one = Model(tmp_path / "model", threads=1)
    assert one._serve is not None
    want = _two_graphs(tmp_path / "model", threads=1).predict_proba(TEXTS)
    np.testing.assert_allclose(one.predict_proba(TEXTS), want, rtol=1e-6, atol=1e-7)


def test_a_map_that_leaves_tokens_to_python_cannot_be_joined(model_dir: Path) -> None:
    from metaprep.exporter.textgraph import serve_graph, text_graph
    from metaprep.tokenize import TokenizerConfig

    words = (model_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    model = onnx.load(str(model_dir / "model.onnx"), load_external_data=False)
    with pytest.raises(ValueError, match="does not answer every token"):
        serve_graph(text_graph(TokenizerConfig(), words, "fallback"), model, 9)
    assert serve_graph(text_graph(TokenizerConfig(), words, "exact"), model, 9) is not None
