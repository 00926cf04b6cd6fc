from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from exportkit import WORDS, make_run

from metaprep.cli import cli
from metaprep.errors import ExportError, WriteError
from metaprep.exporter.run import export_run
from metaprep.learn.rundir import Run
from metaprep.runtime.model import Model
from metaprep.runtime.modeldir import file_sha256, read_manifest
from metaprep.stages import ExportOptions

QUIET = ExportOptions(quiet=True)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> object:
    """Tiny models: torch's thread pool only adds contention when tests share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _graph_matches_torch(run: Path, onnx_path: Path) -> tuple[Any, np.ndarray, np.ndarray,
                                                               np.ndarray]:
    """The graph's logits equal torch's on a batch mixing lengths (with non-pad ids after each
    length), and a sentence alone gives its row of the batch. Returns the model, the batch and
    the graph's logits."""
    model = Run.open(run).load_model()
    sess = _session(onnx_path)
    ids = np.random.default_rng(5).integers(1, 38, size=(4, 9))
    lengths = np.array([9, 1, 4, 0])
    with torch.no_grad():
        ref = model(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
    got = sess.run(["logits"], {"ids": ids, "lengths": lengths})[0]
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    alone = sess.run(["logits"], {"ids": ids[2:3, :4], "lengths": lengths[2:3]})[0]
    np.testing.assert_allclose(alone[0], got[2], atol=1e-6, rtol=0)
    return model, ids, lengths, got



@pytest.mark.parametrize("encoder", ["bilstm", "pool", "cnn"])
@pytest.mark.parametrize("method", ["dme", "cdme", "concat", "sum", "single"])
@pytest.mark.parametrize("fold", [None, False])
def test_parity_gate_passes_for_every_method(tmp_path: Path, method: str, encoder: str,
                                             fold: bool | None) -> None:
    run = make_run(tmp_path, method=method, encoder=encoder)
    manifest = export_run(run, tmp_path / "m", options=ExportOptions(fold=fold, quiet=True),
                          log=lambda _: None)
    assert manifest.export.fold == (fold is None and method != "cdme")
    parity = manifest.checks.parity["model"]
    assert parity.cases >= 10  # dev batches and the awkward random ones
    assert parity.max_abs_diff["logits"] <= 1e-5
    assert manifest.checks.accuracy is not None and manifest.checks.accuracy.agreement == 1.0

    # independently of the gate: the graph matches torch on a batch mixing lengths, with
    # non-pad garbage after each length, and a sentence alone gives the same logits
    _graph_matches_torch(run, tmp_path / "m" / "model.onnx")


@pytest.mark.parametrize("kw", [
    {"method": "dme", "pair": True},
    {"method": "cdme", "pair": True, "encoder": "pool"},
    {"method": "sum", "pair": True, "encoder": "cnn", "cnn_widths": [2, 5]},
    {"method": "dme", "encoder": "cnn", "cnn_widths": [6], "cnn_filters": 3},
    {"method": "dme", "gating": "sigmoid"},
    {"method": "cdme", "gating": "sigmoid", "mask_missing": False},
    {"method": "dme", "mask_missing": False},
    {"method": "dme", "source_norm": "scale"},
    {"method": "cdme", "source_norm": "layernorm", "gating": "sigmoid"},
    {"method": "dme", "learned_dim": 3, "learned_buckets": 13},
    {"method": "sum", "source_norm": "center"},
    {"method": "concat", "source_norm": "scale"},
    {"method": "sum", "encoder": "pool", "pool_combiner": "sqrtn", "learned_dim": 3,
     "learned_buckets": 13},
    {"method": "dme", "pair": True, "encoder": "pool", "pool_combiner": "sqrtn"},
])
def test_parity_gate_variants_of_the_model(tmp_path: Path, kw: dict) -> None:
    run = make_run(tmp_path, **kw)
    for fold in (None, False):
        m = export_run(run, tmp_path / f"m{fold}", options=ExportOptions(fold=fold, quiet=True),
                       log=lambda _: None)
        assert m.checks.parity["model"].max_abs_diff["logits"] <= 1e-5
        assert m.graphs["model"].inputs == (("ids", "lengths", "ids_b", "lengths_b")
                                            if kw.get("pair") else ("ids", "lengths"))


def test_model_directory_layout_and_manifest(tmp_path: Path) -> None:
    run = make_run(tmp_path, method="dme", max_tokens=7)
    out = tmp_path / "model"
    export_run(run, out, options=ExportOptions(front_end=True, quiet=True),
               log=lambda _: None)
    m = read_manifest(out)
    assert sorted(m.files) == sorted(["model.onnx", "front_end.onnx", "text.onnx", "model.data",
                                      "vocab.txt", "vocab.offsets.npy", "vocab.index.npy",
                                      "tokenizer.json", "labels.json"])
    for name, rec in m.files.items():
        assert file_sha256(out / name) == rec.sha256
    assert m.source_run["config_sha256"] == file_sha256(run / "config.json")
    assert m.max_tokens == 7 and m.case_policy == "fallback"
    assert m.task.labels == ("neg", "pos")
    assert (out / "vocab.txt").read_text(encoding="utf-8").split("\n")[:3] == ["the", "a", "cat"]
    # folded dme: the front end is one Gather over one external, aligned table
    g = onnx.load(str(out / "model.onnx"), load_external_data=False)
    tables = [t for t in g.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert [t.name for t in tables] == ["front.folded"]
    offset = int({e.key: e.value for e in tables[0].external_data}["offset"])
    assert offset % 4096 == 0
    onnx.checker.check_model(str(out / "model.onnx"))
    # the front-end graph shares the table with the classifier (one data file)
    assert m.graphs["front_end"].data_files == ("model.data",)
    assert m.graphs["front_end"].outputs == ("token_embeddings", "sentence_embedding")
    # texts -> ids in onnxruntime: no external data, the two outputs the runtime reads
    assert m.graphs["text"].data_files == ()
    assert m.graphs["text"].outputs == ("ids", "missed")
    assert not list(tmp_path.glob(".model.*"))  # no temporary directory left behind


@pytest.mark.parametrize(("method", "encoder", "buckets", "fold"), [
    ("concat", "pool", 13, None), ("concat", "bilstm", 0, False), ("sum", "pool", 13, None),
    ("sum", "pool", 13, False), ("dme", "bilstm", 13, None), ("dme", "pool", 0, False),
    ("cdme", "pool", 13, None), ("cdme", "bilstm", 0, None), ("sum", "cnn", 13, None),
    ("concat", "cnn", 13, False), ("dme", "cnn", 0, None)])
def test_parity_gate_with_the_learned_source(tmp_path: Path, method: str, encoder: str,
                                             buckets: int, fold: bool | None) -> None:
    # learned_dim 3 < proj_dim 5: the bigram rows are mapped in the graph; 6: mapped at export
    run = make_run(tmp_path, method=method, encoder=encoder, learned_dim=3 if fold is None else 6,
                   learned_buckets=buckets)
    manifest = export_run(run, tmp_path / "m", options=ExportOptions(fold=fold, quiet=True),
                          log=lambda _: None)
    assert manifest.export.fold == (fold is None and method != "cdme")
    assert manifest.checks.parity["model"].max_abs_diff["logits"] <= 1e-5
    model, ids, lengths, got = _graph_matches_torch(run, tmp_path / "m" / "model.onnx")
    # the bigram rows are used: zeroing them changes the graph's logits
    if buckets:
        with torch.no_grad():
            model.front.learned.bigrams.zero_()  # type: ignore[union-attr]
            plain = model(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
        assert np.abs(plain - got).max() > 1e-3
    served = Model(tmp_path / "m")  # texts in, with unknown words, empty and long texts
    probs = served.predict_proba(["the cat sat on the mat", "", "zebra qwerty " * 200])
    assert probs.shape == (3, 2) and np.allclose(probs.sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize(("method", "encoder", "fold"), [
    ("sum", "pool", None), ("dme", "cnn", None), ("concat", "pool", False),
    ("cdme", "pool", None), ("dme", "bilstm", False)])
def test_parity_gate_with_subwords(tmp_path: Path, method: str, encoder: str,
                                   fold: bool | None) -> None:
    run = make_run(tmp_path, method=method, encoder=encoder, learned_dim=3, learned_buckets=13,
                   learned_subwords=29)
    manifest = export_run(run, tmp_path / "m", options=ExportOptions(fold=fold, quiet=True),
                          log=lambda _: None)
    assert manifest.checks.parity["model"].max_abs_diff["logits"] <= 1e-5
    model, ids, lengths, got = _graph_matches_torch(run, tmp_path / "m" / "model.onnx")
    learned = model.front.learned
    assert learned is not None and learned.subwords is not None
    with torch.no_grad():  # the n-gram rows are used: zeroing them changes the logits
        learned.subwords.zero_()
        plain = model(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
    assert np.abs(plain - got).max() > 1e-3
    # words unseen in training are present through their n-grams; served texts made of them
    # get the torch model's probabilities
    model = Run.open(run).load_model()
    unseen = [w for i, w in enumerate(WORDS) if not model.front.learned.seen[i + 2]]  # type: ignore[union-attr]
    assert len(unseen) >= 3
    texts = [" ".join(unseen[:3]), f"the cat {unseen[-1]} {unseen[0]}", unseen[1]]
    enc = Run.open(run).encoder()
    with torch.no_grad():
        for text, probs in zip(texts, Model(tmp_path / "m").predict_proba(texts), strict=True):
            row = torch.tensor([enc.encode(text)])
            assert model.front.presence(row)[0, :, -1].all()
            want = torch.softmax(model(row, torch.tensor([row.shape[1]])), -1)[0].numpy()
            np.testing.assert_allclose(probs, want, atol=1e-5, rtol=0)


def test_front_end_graph_matches_model_encode(tmp_path: Path) -> None:
    run = make_run(tmp_path, method="cdme")
    export_run(run, tmp_path / "m", options=ExportOptions(front_end=True, quiet=True),
               log=lambda _: None)
    model = Run.open(run).load_model()
    ids = np.array([[3, 4, 5, 0, 0], [7, 0, 9, 10, 11]])
    lengths = np.array([3, 5])
    with torch.no_grad():
        enc = model.encode(torch.from_numpy(ids), torch.from_numpy(lengths))
    tok, sent = _session(tmp_path / "m" / "front_end.onnx").run(
        None, {"ids": ids, "lengths": lengths})
    np.testing.assert_allclose(tok, enc.meta.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(sent, enc.sentence.numpy(), atol=1e-5, rtol=0)
    assert np.all(tok[0, 3:] == 0)  # padding is zero


def _break(spec: Any, breakage: str) -> None:
    """A small error the gate must see: a classifier bias, a cnn bias, a cnn kernel read in
    the wrong time order."""
    if breakage == "out_bias":
        spec.out_b = spec.out_b + 1e-3
        return
    w, b = spec.encoder_convs[-1]
    spec.encoder_convs[-1] = (w, b + 1e-3) if breakage == "cnn_bias" else (w[:, :, ::-1].copy(), b)


@pytest.mark.parametrize(("encoder", "breakage"), [("bilstm", "out_bias"), ("cnn", "cnn_bias"),
                                                   ("cnn", "cnn_flipped")])
def test_failed_parity_gate_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           encoder: str, breakage: str) -> None:
    import metaprep.exporter.build as export

    run = make_run(tmp_path, method="dme", encoder=encoder)
    real = export.spec_from_model

    def broken(*a: object, **kw: object) -> object:
        spec = real(*a, **kw)
        _break(spec, breakage)
        return spec

    monkeypatch.setattr(export, "spec_from_model", broken)
    with pytest.raises(ExportError, match="parity gate failed: model logits"):
        export_run(run, tmp_path / "m", options=QUIET, log=lambda _: None)
    assert not (tmp_path / "m").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".m.")]


def test_float16_tables_and_int8_report_accuracy(tmp_path: Path) -> None:
    run = make_run(tmp_path, method="dme")
    m16 = export_run(run, tmp_path / "f16", options=ExportOptions(table_dtype="float16",
                                                                    quiet=True),
                     log=lambda _: None)
    g = onnx.load(str(tmp_path / "f16" / "model.onnx"), load_external_data=False)
    table = next(t for t in g.graph.initializer if t.name == "front.folded")
    assert table.data_type == onnx.TensorProto.FLOAT16
    assert (tmp_path / "f16" / "model.data").stat().st_size < 38 * 5 * 4  # half of float32
    acc, variant = m16.checks.accuracy, m16.checks.variant_logits
    assert acc is not None and acc.examples == 40 and abs(acc.change) <= 0.1
    assert variant is not None and 0 < variant.max_abs_diff["logits"] < 0.05

    m8 = export_run(run, tmp_path / "i8", options=ExportOptions(quantize="int8", quiet=True),
                    log=lambda _: None)
    assert {"MatMul", "LSTM"} <= set(m8.export.quantized_ops)
    assert "DynamicQuantizeLSTM" in m8.graphs["model"].ops
    assert "MatMulInteger" in m8.graphs["model"].ops
    assert m8.checks.accuracy is not None
    # the quantizer's data file is rewritten so onnxruntime can map every tensor, and readable
    # (a wider model than the one above, whose int8 tensors are all small enough to stay inline)
    # The int8 tensors go to model.data as documented (after the float32 tables when the
    # front-end graph shares the file), each aligned, and readable by all.
    wide = make_run(tmp_path / "wide", method="dme", hidden=32, mlp_hidden=64)
    for name, front_end in (("i8w", False), ("i8wf", True)):
        mw = export_run(wide, tmp_path / name, options=ExportOptions(
            quantize="int8", front_end=front_end, quiet=True), log=lambda _: None)
        g8 = onnx.load(str(tmp_path / name / "model.onnx"), load_external_data=False)
        external = [{e.key: e.value for e in t.external_data} for t in g8.graph.initializer
                    if t.data_location == onnx.TensorProto.EXTERNAL]
        assert external and all(int(e.get("offset", 0)) % 65536 == 0 for e in external)
        assert {e["location"] for e in external} == {"model.data"}
        assert not (tmp_path / name / "model.onnx.data").exists()
        assert (tmp_path / name / "model.data").stat().st_mode & 0o777 == 0o644
        assert sorted(mw.files) == sorted(["model.onnx", "model.data", "text.onnx", "vocab.txt",
                                           "vocab.offsets.npy", "vocab.index.npy",
                                           "tokenizer.json", "labels.json"]
                                          + (["front_end.onnx"] if front_end else []))
        texts = ["the cat sat", "a dog ran fast"]
        assert Model(tmp_path / name).predict_proba(texts).shape == (2, 2)
        if front_end:  # the front end still reads its float32 tables from the shared file
            assert Model(tmp_path / name).embed(texts).shape == (2, 64)
    # without dev data the tables stay float32: the int8 graph shares the front end's table
    nodev = make_run(tmp_path / "nodev", method="dme", proj_dim=64, dev=False)
    export_run(nodev, tmp_path / "i8s", options=ExportOptions(
        quantize="int8", front_end=True, quiet=True), log=lambda _: None)

    def table_at(graph: str) -> dict[str, str]:
        g = onnx.load(str(tmp_path / "i8s" / graph), load_external_data=False)
        t = next(t for t in g.graph.initializer if t.name == "front.folded")
        return {e.key: e.value for e in t.external_data}

    assert table_at("model.onnx") == table_at("front_end.onnx")
    # the table at 0 and the int8 weights at 64 KiB; a second copy of the table would sit at
    # 128 KiB or beyond
    assert (tmp_path / "i8s" / "model.data").stat().st_size < 2 << 16
    served = Model(tmp_path / "i8s")
    assert served.embed(["the cat"]).shape == (1, 8) and served.predict(["the cat"])
    # only the ops the graph has: a pool encoder has no LSTM to quantize
    pool = make_run(tmp_path / "pool", method="dme", encoder="pool")
    mp = export_run(pool, tmp_path / "i8p", options=ExportOptions(quantize="int8", quiet=True),
                    log=lambda _: None)
    assert "LSTM" not in mp.export.quantized_ops and "MatMul" in mp.export.quantized_ops
    # the cnn's taps are one MatMul: quantized with the classifier's
    cnn = make_run(tmp_path / "cnn", method="sum", encoder="cnn")
    mc = export_run(cnn, tmp_path / "i8c", options=ExportOptions(quantize="int8", quiet=True),
                    log=lambda _: None)
    assert "MatMul" in mc.export.quantized_ops and "MatMulInteger" in mc.graphs["model"].ops
    assert mc.checks.accuracy is not None and abs(mc.checks.accuracy.change) <= 0.1
    assert Model(tmp_path / "i8c").predict_proba(["the cat", ""]).shape == (2, 2)


def test_export_refusals(tmp_path: Path) -> None:
    run = make_run(tmp_path, method="cdme")
    with pytest.raises(ExportError, match="cannot be folded"):
        export_run(run, tmp_path / "m", options=ExportOptions(fold=True, quiet=True))
    (tmp_path / "m").mkdir()
    with pytest.raises(ExportError, match="already exists"):
        export_run(run, tmp_path / "m", options=QUIET)
    export_run(run, tmp_path / "m", options=ExportOptions(force=True, quiet=True),
               log=lambda _: None)
    assert (tmp_path / "m" / "manifest.json").exists()


def test_cli_export_with_triton(tmp_path: Path) -> None:
    run = make_run(tmp_path, method="dme", dev=False)
    result = CliRunner().invoke(cli, ["export-onnx", str(run), "-o", str(tmp_path / "m"),
                                      "--triton", str(tmp_path / "repo"), "-q"])
    assert result.exit_code == 0, result.output
    assert "no dev data" in result.stderr and "parity model" in result.stderr
    config = (tmp_path / "repo" / "metaprep" / "config.pbtxt").read_text()
    assert 'name: "ids" data_type: TYPE_INT64 dims: [ -1 ]' in config
    assert "dynamic_batching" in config and "max_batch_size: 64" in config
    assert (tmp_path / "repo" / "metaprep" / "1" / "model.onnx").exists()
    assert "accuracy" not in json.loads((tmp_path / "m" / "manifest.json").read_text())["checks"]

    bad = CliRunner().invoke(cli, ["export-onnx", str(tmp_path / "nope"), "-o",
                                   str(tmp_path / "x")])
    assert bad.exit_code != 0 and "no such run directory" in str(bad.exception)


def test_existing_triton_entry_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    run = make_run(tmp_path, method="dme", dev=False)
    (tmp_path / "repo" / "metaprep").mkdir(parents=True)
    (tmp_path / "repo" / "dangling").symlink_to(tmp_path / "nowhere")
    for name in ("metaprep", "dangling"):  # a dangling link: "Not a directory" after the export
        with pytest.raises(ExportError, match="Triton model of that name already exists"):
            export_run(run, tmp_path / "m", options=ExportOptions(
                triton=tmp_path / "repo", triton_name=name, quiet=True), log=lambda _: None)
        assert not (tmp_path / "m").exists()
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["dangling", "metaprep"]


def test_a_triton_entry_that_cannot_be_written_leaves_no_model(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """The entry was written after the model directory: a full disk there left the model
    behind, under an error saying nothing was left half-written."""
    import errno

    import metaprep.exporter.triton as triton

    def full(*args: Any, **kw: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(triton, "copy_files", full)
    run = make_run(tmp_path, method="dme", dev=False)
    with pytest.raises(WriteError, match="cannot write the Triton model .No space left"):
        export_run(run, tmp_path / "m", options=ExportOptions(triton=tmp_path / "repo",
                                                              quiet=True),
                   log=lambda _: None)
    assert not (tmp_path / "m").exists() and list((tmp_path / "repo").iterdir()) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".m.")] == []


def test_the_gate_scales_with_the_logits_and_still_fails_a_real_mismatch() -> None:
    import numpy as np

    from metaprep.exporter.parity import compare, gate_failures

    big = np.array([[34.0, -7.0, 0.5]], dtype=np.float32)  # logits as large as a real 41-class run
    feeds = [("case", {"ids": np.zeros((1, 1), np.int64)})]

    def ref(feed: dict) -> dict:
        return {"logits": big}

    def rounding(feed: dict) -> dict:  # float32 rounding: 1.14e-5 at 34, as measured
        return {"logits": big + np.array([[1.14e-5, 0, 0]], np.float32)}

    def broken(feed: dict) -> dict:  # a wrong bias: a real mismatch
        return {"logits": big + np.float32(1e-3)}

    ok = compare(ref, rounding, feeds, ["logits"], rtol=1e-5)
    assert gate_failures(ok, 1e-5, "model") == []
    assert gate_failures(compare(ref, rounding, feeds, ["logits"], rtol=0.0), 1e-5, "model")
    bad = gate_failures(compare(ref, broken, feeds, ["logits"], rtol=1e-5), 1e-5, "model")
    assert bad and "model logits: max abs diff 0.001" in bad[0]


@pytest.mark.parametrize("max_tokens", [1, 2, 3, 33])
def test_every_max_tokens_is_servable(tmp_path: Path, max_tokens: int) -> None:
    """An export at any max_tokens opens in the runtime with its text and serve graphs and
    gives the Python path's answers (up to 33, the runtime refused every such export: its probe
    text of 200 vocabulary words was longer than the text graph takes)."""
    run = make_run(tmp_path, method="dme", encoder="pool", case_policy="exact",
                   max_tokens=max_tokens)
    export_run(run, tmp_path / "m", options=ExportOptions(quiet=True), log=lambda _: None)
    model = Model(tmp_path / "m", threads=1)
    assert model.text_path == "onnxruntime" and model._serve is not None
    texts = ["the cat sat on the mat", "", "New York été", " ".join(WORDS)]
    got = model.predict_proba(texts)
    model._serve = model._text = None  # the Python path alone
    np.testing.assert_allclose(got, model.predict_proba(texts), atol=1e-6, rtol=0)


def test_export_refuses_a_directory_the_runtime_refuses(tmp_path: Path, monkeypatch:
                                                        pytest.MonkeyPatch) -> None:
    """Export opens what it wrote with the runtime before committing it: a refusal is one
    ExportError naming the file, and nothing appears at the output."""
    from metaprep.errors import ModelError
    from metaprep.runtime import model as runtime

    def refuse(self: Any, *_: Any) -> None:
        raise ModelError("forged", path=self.dir.graph_path("text"))

    monkeypatch.setattr(runtime.Model, "_load_text_graph", refuse)
    run = make_run(tmp_path, method="dme", encoder="pool")
    with pytest.raises(ExportError, match=r"m/text.onnx: the runtime refuses .*: forged; "
                                          "nothing was written"):
        export_run(run, tmp_path / "m", options=QUIET, log=lambda _: None)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".m", "m"))) == []


def test_a_pair_model_exports_its_front_end(tmp_path: Path) -> None:
    """--front-end on a sentence-pair model: its parity check ran the pair classifier on one
    sentence (a torch traceback); the front end is compared alone, and embed serves it."""
    run = make_run(tmp_path, method="dme", encoder="pool", pair=True)
    manifest = export_run(run, tmp_path / "m", options=ExportOptions(front_end=True,
                                                                     quiet=True),
                          log=lambda _: None)
    assert manifest.checks.parity["front_end"].max_abs_diff["sentence_embedding"] <= 1e-5
    model = Model(tmp_path / "m")
    ids = np.array([[2, 5, 7]])
    with torch.no_grad():
        want = Run.open(run).load_model().encode(torch.from_numpy(ids),
                                                 torch.tensor([3])).sentence.numpy()
    np.testing.assert_allclose(model.embed([" ".join(WORDS[i - 2] for i in ids[0])]), want,
                               atol=1e-5)


@pytest.mark.parametrize("options", [{"tolerance": float("inf")}, {"tolerance": float("nan")},
                                     {"tolerance": -1.0}, {"rtol": float("nan")},
                                     {"max_accuracy_drop": float("nan")},
                                     {"max_accuracy_drop": 2.0}])
def test_numbers_of_the_checks_are_finite(options: dict[str, float]) -> None:
    """--tolerance inf passed every graph (the parity gate off without a word), NaN failed it
    with a puzzling message, --max-accuracy-drop nan was taken."""
    name = "--" + next(iter(options)).replace("_", "-")
    with pytest.raises(ExportError, match=f"{name} must be a finite number from 0"):
        ExportOptions(quiet=True, **options).validate()
