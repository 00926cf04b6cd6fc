"""The text graph (texts -> ids in onnxruntime) gives exactly the Python path's ids, for every
tokenizer mode and case policy, on hostile and random text; the runtime falls back to Python
where the graph cannot be exact, and refuses a text graph that disagrees with the vocabulary."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from exportkit import make_run, sentences

from metaprep.errors import ModelError
from metaprep.exporter.onnx_data import save_graph
from metaprep.exporter.textgraph import re2_pattern, text_graph
from metaprep.runtime.model import Model
from metaprep.runtime.modeldir import file_sha256
from metaprep.tokenize import DEFAULT_PATTERN, TokenizerConfig

HOSTILE = ["", "   ", "\t\n", "İstanbul ΑΣ Σα ΌΣΟΣ", "naïve café — “quotes” 'n' it's co-op",
           "e\u0301 x² ½ Ⅻ ١٢٣ 123_4", "a\x00b \x1c\x1d\x1e\x1f c", "中文 日本語 😀👍🏽 👨‍👩‍👧",
           "ﬁ ﬂ ŉ ǅ ß ẞ", "THE Cat SAT on the MAT", "Paris PARIS paris pArIs", "don't -- ' ’",
           "tab\tsep\u00a0nbsp\u2028line\u3000ideo", "x" * 300, "the " * 40]
# runs of characters from scripts and classes where Python's re and RE2 differ by default
ALPHABET = ("abcXYZ019_-'’ .,!?\t\n\u00a0\u2028\u3000\x1c\x00" "éÉßİıΣσςΩ" "\u0301\u0308"
            "²½Ⅻ١٢" "中文かカ한" "😀\u200d\ufe0f" "ﬁǅ")


def _random_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 40))) for _ in range(n)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from metaprep.exporter.run import export_run
    from metaprep.stages import ExportOptions

    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("textgraph")
    run = make_run(base, method="sum", encoder="pool", learned_dim=4, learned_buckets=97,
                   max_tokens=9)
    export_run(run, base / "model", options=ExportOptions(quiet=True),
               log=lambda _: None)
    return base / "model"


def _variant(src: Path, dst: Path, tok: TokenizerConfig, policy: str) -> Path:
    """A copy of the model directory with another tokenizer and case policy, its text graph
    rebuilt for them (the manifest's checksums updated)."""
    shutil.copytree(src, dst)
    data = json.loads((dst / "manifest.json").read_text())
    data["case_policy"] = policy
    (dst / "tokenizer.json").write_text(json.dumps(tok.to_dict()))
    words = (dst / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    save_graph(text_graph(tok, words, policy), dst / "text.onnx")
    _save_manifest(dst, data, ("tokenizer.json", "text.onnx"))
    return dst


def _save_manifest(d: Path, data: dict[str, Any], changed: tuple[str, ...]) -> None:
    """Write the manifest with the checksums of the ``changed`` files brought up to date."""
    for name in changed:
        data["files"][name] = {"sha256": file_sha256(d / name), "bytes": (d / name).stat().st_size}
    (d / "manifest.json").write_text(json.dumps(data))


def _same(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> None:
    for x, y, what in zip(a, b, ("ids", "lengths", "counts"), strict=True):
        np.testing.assert_array_equal(x, y, err_msg=what)


TEXTS = HOSTILE + sentences(40, seed=3) + _random_texts(300, seed=5)


@pytest.mark.parametrize("policy", ["exact", "lower", "fallback"])
@pytest.mark.parametrize(("mode", "lowercase"), [("regex", False), ("regex", True),
                                                 ("whitespace", False)])
def test_the_text_graph_gives_the_python_ids(model_dir: Path, tmp_path: Path, policy: str,
                                             mode: str, lowercase: bool) -> None:
    tok = TokenizerConfig(mode=mode, lowercase=lowercase)
    model = Model(_variant(model_dir, tmp_path / "m", tok, policy), threads=1)
    assert model.text_path == "onnxruntime"
    for start in range(0, len(TEXTS), 16):
        batch = TEXTS[start : start + 16]
        got = model._encode_in_graph(batch)
        assert got is not None
        _same(got, model.text_ids.in_python(batch))


def test_predictions_and_stats_match_the_python_path_on_any_thread_count(model_dir: Path) -> None:
    texts = TEXTS * 3
    python = Model(model_dir, threads=1, batch_size=8)
    python._text = None
    want = python.predict_proba(texts)
    for threads in (1, 2, 3):
        model = Model(model_dir, threads=threads, batch_size=8)
        assert model.text_path == "onnxruntime"
        np.testing.assert_array_equal(model.predict_proba(texts), want)
        assert model.stats == python.stats
        python.stats = type(python.stats)()
        python.predict_proba(texts)
    assert want.shape == (len(texts), 2) and python.stats.truncated > 0


def test_batches_the_graph_cannot_take_exactly_go_through_python(model_dir: Path) -> None:
    model = Model(model_dir, threads=1)
    huge = "word " * 20_000  # the Python path reads only its first tokens
    lone = "a \ud800 surrogate"  # Python holds it, UTF-8 cannot
    for batch in (["the cat", huge], ["the cat", lone]):
        assert model._encode_in_graph(batch) is None
        python = Model(model_dir, threads=1)
        python._text = None
        np.testing.assert_array_equal(model.predict_proba(batch), python.predict_proba(batch))


def test_every_text_empty_is_one_padding_token(model_dir: Path) -> None:
    model = Model(model_dir, threads=1)
    ids, lengths, counts = model._encode_in_graph(["", "  "])  # type: ignore[misc]
    assert ids.shape == (2, 1) and not ids.any() and not lengths.any() and not counts.any()


def _rewrite(d: Path, graph: Any) -> None:
    """A consistent forgery: text.onnx replaced, the manifest's record of it updated."""
    save_graph(graph, d / "text.onnx")
    data = json.loads((d / "manifest.json").read_text())
    data["graphs"]["text"].update(inputs=[i.name for i in graph.graph.input],
                                  outputs=[o.name for o in graph.graph.output],
                                  ops=sorted({n.op_type for n in graph.graph.node}))
    _save_manifest(d, data, ("text.onnx",))


def test_a_text_graph_that_disagrees_with_the_vocabulary_is_refused(model_dir: Path,
                                                                    tmp_path: Path) -> None:
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    words = (d / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    _rewrite(d, text_graph(TokenizerConfig(), words[::-1], "fallback"))  # other ids
    with pytest.raises(ModelError, match="text.onnx does not give the ids"):
        Model(d)


def test_a_text_graph_onnxruntime_cannot_run_leaves_the_python_path(
        model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An onnxruntime build without the contrib ops cannot load the genuine text graph: the
    Python path serves. A text graph of an op the exporter never writes is refused."""
    import onnxruntime
    from onnx import TensorProto, helper

    real = onnxruntime.InferenceSession

    def session(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).endswith("text.onnx"):
            raise RuntimeError("Could not find an implementation for Tokenizer(1)")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    model = Model(model_dir)
    assert model.text_path == "python" and "text graph not used" in model.text_note
    monkeypatch.undo()
    reference = Model(model_dir)
    np.testing.assert_array_equal(model.predict_proba(TEXTS), reference.predict_proba(TEXTS))

    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    node = helper.make_node("NoSuchOp", ["text"], ["ids"], domain="org.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "text", TensorProto.STRING, ["n"])], [helper.make_tensor_value_info(
            "ids", TensorProto.INT64, ["n", "t"])])
    _rewrite(d, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19),
                                                        helper.make_opsetid("org.example", 1)]))
    with pytest.raises(ModelError, match="op metaprep's exporter never writes"):
        Model(d)


def test_a_model_directory_without_a_text_graph_still_serves(model_dir: Path,
                                                             tmp_path: Path) -> None:
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    data = json.loads((d / "manifest.json").read_text())
    del data["graphs"]["text"], data["files"]["text.onnx"]
    (d / "manifest.json").write_text(json.dumps(data))
    (d / "text.onnx").unlink()
    model = Model(d)
    assert model.text_path == "python"
    np.testing.assert_array_equal(model.predict_proba(TEXTS), Model(model_dir).predict_proba(TEXTS))


@pytest.mark.parametrize("pattern", [r"\w+(?=s)", r"(\w+)", r"(?i)\w+", r"\b\w+", r"a*",
                                     r"\w{2000}"])
def test_a_pattern_without_an_exact_re2_form_gets_no_text_graph(pattern: str,
                                                                tmp_path: Path) -> None:
    from metaprep.exporter.build import _write_text_graph

    with pytest.raises(ValueError):
        re2_pattern("regex", pattern)
    notes: list[str] = []
    assert not _write_text_graph(tmp_path, TokenizerConfig(pattern=pattern), ["a"], "exact",
                                 notes.append)
    assert not (tmp_path / "text.onnx").exists()
    assert notes and "tokenize in Python" in notes[0]


def test_the_rewritten_default_pattern_is_plain_re2_syntax() -> None:
    pattern = re2_pattern("regex", DEFAULT_PATTERN)
    assert r"\w" not in pattern and r"\s" not in pattern and pattern.startswith("(?:")


def test_a_text_graph_with_other_ports_or_a_failing_run_is_refused(model_dir: Path,
                                                                   tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    text = helper.make_tensor_value_info("text", TensorProto.STRING, ["n"])
    strings = helper.make_tensor_value_info("ids", TensorProto.STRING, ["n"])
    missed = helper.make_tensor_value_info("missed", TensorProto.STRING, ["n"])
    one = helper.make_graph([helper.make_node("Identity", ["text"], ["ids"])], "g", [text],
                            [strings])
    opsets = [helper.make_opsetid("", 17)]
    _rewrite(d, helper.make_model(one, opset_imports=opsets))  # no "missed" output
    with pytest.raises(ModelError, match="text.onnx gives \\['ids'\\]; .* the runtime reads "
                                         "\\['ids', 'missed'\\]"):
        Model(d)
    # the right ports, but strings where ids should be
    bad = helper.make_graph([helper.make_node("Identity", ["text"], ["ids"]),
                             helper.make_node("Identity", ["text"], ["missed"])], "g", [text],
                            [strings, missed])
    _rewrite(d, helper.make_model(bad, opset_imports=opsets))
    with pytest.raises(ModelError, match="text.onnx"):
        Model(d)


def test_batches_cover_every_text_once_and_keep_padding_in_bounds() -> None:
    from metaprep.runtime.batching import MAX_PADDING
    from metaprep.runtime.batching import batches as _batches

    rng = np.random.default_rng(0)
    sizes = np.sort(np.concatenate([rng.integers(0, 60, 300), rng.integers(200, 3000, 12)]))
    order = np.arange(len(sizes))
    batches = _batches(order, sizes, 32)
    assert np.array_equal(np.concatenate(batches), order)  # every text once, in order
    assert all(1 <= len(b) <= 32 for b in batches)
    for b in batches:  # in token units (about 6 characters a token), as the runtime counts
        t = sizes[b] // 6 + 1
        assert len(b) == 1 or len(b) * t.max() - t.sum() <= MAX_PADDING * len(b) * t.max()
    # the long tail is cut apart; the short texts still fill batches
    assert max(len(b) for b in batches) == 32 and len(batches[-1]) < 32
    assert _batches(order[:0], sizes[:0], 32) == []


def test_batches_run_on_the_caller_and_the_pool_in_order(model_dir: Path) -> None:
    import threading
    import time

    model = Model(model_dir, threads=3)
    seen: set[int] = set()

    def slow_double(x: int) -> int:
        seen.add(threading.get_ident())
        time.sleep(0.01 if x == 0 else 0.001)  # one long item: the others go elsewhere
        return 2 * x

    assert model._pool.map(slow_double, list(range(12))) == [2 * x for x in range(12)]
    assert threading.get_ident() in seen and len(seen) >= 2

    def fails(x: int) -> int:
        if x == 7:
            raise ValueError("batch 7")
        return x

    with pytest.raises(ValueError, match="batch 7"):
        model._pool.map(fails, list(range(12)))
    assert model._pool.map(fails, [1, 2]) == [1, 2]  # the pool is still usable
