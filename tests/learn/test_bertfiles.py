"""A BERT folder is checked before static-source runs a forward pass: every config key the pass
uses, every tensor it reads and the vocabulary, each damaged in turn, is a one-line ModelError
naming the file and the key or tensor."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from bertkit import CONFIG, DROP, LAYERS, VOCAB, Weights, read_w2v_binary, tiny_bert

from metaprep.errors import ModelError
from metaprep.learn import bertfiles
from metaprep.learn.bert import load_bert
from metaprep.learn.bertfiles import BertConfig, tensor_shapes
from metaprep.learn.staticsource import write_static_source

# --- config.json ------------------------------------------------------------------------------
# Every value here is wrong for every key: the wrong type, out of range, or not finite.
BAD_VALUES = ["many", True, None, 1.5, 0, -1, 10**12, [], {}, math.nan, math.inf]


@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
@pytest.mark.parametrize("key", [*CONFIG, "position_embedding_type"])
def test_each_config_key_is_checked(tmp_path: Path, key: str, value: Any) -> None:
    model = tiny_bert(tmp_path / "m", config={key: value})
    with pytest.raises(ModelError, match=key) as info:
        load_bert(model)
    assert info.value.path == str(model / "config.json")


@pytest.mark.parametrize("key", ["hidden_size", "num_attention_heads", "num_hidden_layers",
                                 "intermediate_size", "vocab_size"])
def test_the_sizes_are_required(tmp_path: Path, key: str) -> None:
    with pytest.raises(ModelError, match=f"config key '{key}' is missing"):
        load_bert(tiny_bert(tmp_path / "m", config={key: DROP}))


def test_optional_keys_take_hugging_face_defaults(tmp_path: Path) -> None:
    bert = load_bert(tiny_bert(tmp_path / "m", config={
        "hidden_act": DROP, "layer_norm_eps": DROP, "type_vocab_size": DROP}))
    assert (bert.config.act, bert.config.eps, bert.config.type_vocab) == ("gelu", 1e-12, 2)
    with pytest.raises(ModelError, match=r"position_embeddings.weight has shape \[32, 8\], "
                                         r"config.json makes it \[512, 8\]"):
        load_bert(tiny_bert(tmp_path / "n", config={"max_position_embeddings": DROP}))


@pytest.mark.parametrize(("key", "value", "message"), [
    ("hidden_size", 16, r"word_embeddings.weight has shape \[16, 8\], config.json makes it "
                        r"\[16, 16\]"),
    ("num_attention_heads", 3, r"num_attention_heads' \(3\) must divide hidden_size \(8\)"),
    ("num_hidden_layers", 1, r"belongs to encoder layer '1', but config.json gives "
                             r"num_hidden_layers 1"),
    ("num_hidden_layers", 3, r"bert.encoder.layer.2.attention.self.query.weight is missing"),
    ("intermediate_size", 17, r"intermediate.dense.weight has shape \[16, 8\]"),
    ("vocab_size", 17, r"word_embeddings.weight has shape \[16, 8\]"),
    ("max_position_embeddings", 31, r"position_embeddings.weight has shape \[32, 8\]"),
    ("type_vocab_size", 3, r"token_type_embeddings.weight has shape \[2, 8\]"),
])
def test_a_config_that_disagrees_with_the_weights(tmp_path: Path, key: str, value: int,
                                                  message: str) -> None:
    model = tiny_bert(tmp_path / "m", config={key: value})
    with pytest.raises(ModelError, match=message):
        load_bert(model)


@pytest.mark.parametrize(("text", "message"), [
    (b"{", "cannot read config.json"), (b"[1, 2]", "holds a JSON list, not an object"),
    (b'{"model_type": "bert", "x": "\xff"}', "cannot read config.json"),
    (b"[" * 100_000, "cannot read config.json"),
    (b" " * (bertfiles.MAX_CONFIG_BYTES + 1), "more than the 1,048,576 allowed"),
])
def test_an_unreadable_config(tmp_path: Path, text: bytes, message: str) -> None:
    model = tiny_bert(tmp_path / "m")
    (model / "config.json").write_bytes(text)
    with pytest.raises(ModelError, match=message):
        load_bert(model)


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "vocab.txt"])
def test_a_pipe_or_device_is_not_read(tmp_path: Path, name: str) -> None:
    model = tiny_bert(tmp_path / "m")
    (model / name).unlink()
    os.mkfifo(model / name)  # opening it would wait for a writer forever
    with pytest.raises(ModelError, match="not a regular file"):
        write_static_source(model, tmp_path / "o.bin", progress=False)
    (model / name).unlink()
    (model / name).symlink_to("/dev/zero")  # reading it would fill memory
    with pytest.raises(ModelError, match="not a regular file"):
        write_static_source(model, tmp_path / "o.bin", progress=False)
    assert not (tmp_path / "o.bin").exists()


# --- model.safetensors --------------------------------------------------------------------------
def _nan(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[0] = math.nan
    return t


def _inf(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[-1] = -math.inf
    return t


DAMAGE = {  # how a tensor is damaged -> what the error says
    "missing": (None, "is missing"),
    "one row more": (lambda t: torch.cat([t, t[:1]]), "has shape"),
    "flattened or widened": (lambda t: t.reshape(-1) if t.ndim == 2 else t[None], "has shape"),
    "integer": (lambda t: t.to(torch.int32), "has dtype I32"),
    "NaN": (_nan, "holds a NaN or infinite value"),
    "infinite": (_inf, "holds a NaN or infinite value"),
}
TENSORS = list(tensor_shapes(BertConfig(8, 2, LAYERS, 16, len(VOCAB), 32, 2)))


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_each_tensor_is_checked(tmp_path: Path, damage: str) -> None:
    edit, message = DAMAGE[damage]
    assert len(TENSORS) == 5 + 16 * LAYERS
    for k, name in enumerate(TENSORS):

        def damaged(w: Weights, name: str = name) -> Weights:
            if edit is None:
                del w[name]
            else:
                w[name] = edit(w[name])
            return w

        model = tiny_bert(tmp_path / f"m{k}", weights=damaged)
        with pytest.raises(ModelError, match=message) as info:
            load_bert(model)
        assert info.value.path == str(model / "model.safetensors")
        assert name in str(info.value)


@pytest.mark.parametrize(("extra", "message"), [
    ("encoder.layer.2.output.dense.bias", "belongs to encoder layer '2'"),
    ("encoder.layer.x.output.dense.bias", "belongs to encoder layer 'x'"),
    ("encoder.layer.01.output.dense.bias", None),  # "01" is layer 1 to int(): allowed as such
])
def test_a_layer_the_config_does_not_have(tmp_path: Path, extra: str, message: str | None
                                          ) -> None:
    def add(w: Weights) -> Weights:
        return {**w, extra: torch.zeros(8)}

    model = tiny_bert(tmp_path / "m", weights=add)
    if message is None:
        load_bert(model)
        return
    with pytest.raises(ModelError, match=message):
        load_bert(model)


def test_two_models_in_one_file_and_a_damaged_header(tmp_path: Path) -> None:
    def twice(w: Weights) -> Weights:
        return {**w, "other.embeddings.word_embeddings.weight": w[
            "embeddings.word_embeddings.weight"].clone()}

    with pytest.raises(ModelError, match="holds 2 word embedding tables"):
        load_bert(tiny_bert(tmp_path / "m", weights=twice))
    model = tiny_bert(tmp_path / "n")
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[:8] + b"!" + data[9:])
    with pytest.raises(ModelError, match="cannot read the weights"):
        load_bert(model)


def test_half_precision_weights_are_read(tmp_path: Path) -> None:
    full = load_bert(tiny_bert(tmp_path / "f"))
    half = load_bert(tiny_bert(tmp_path / "h", weights=lambda w: {
        k: v.to(torch.bfloat16) for k, v in w.items()}))
    ids = torch.tensor([[2, 7, 3]])
    mask = torch.ones_like(ids)
    assert torch.allclose(full(ids, mask), half(ids, mask), atol=0.1)


# --- vocab.txt ----------------------------------------------------------------------------------
def test_vocabulary_ids_past_the_table(tmp_path: Path) -> None:
    model = tiny_bert(tmp_path / "m", vocab=[*VOCAB, "extra", "more"])
    with pytest.raises(ModelError, match=r"the vocabulary has 18 tokens but model.safetensors's "
                                         r"word embedding table has 16 rows: ids from 16 on "
                                         r"\('extra' first\)") as info:
        write_static_source(model, tmp_path / "o.bin", progress=False)
    assert info.value.path == str(model / "vocab.txt")


def test_a_line_separator_inside_a_token_does_not_shift_the_ids(tmp_path: Path) -> None:
    # str.splitlines would cut "[unused0]\u2028x" in two and give every later token the next id
    vocab = [t + "\u2028x" if t == "[unused0]" else t for t in VOCAB]
    model = tiny_bert(tmp_path / "m", vocab=vocab)
    out = tmp_path / "o.bin"
    write_static_source(model, out, pca_dims=None, zipf=False, progress=False)
    bert = load_bert(model)
    cat = bert(torch.tensor([[2, VOCAB.index("cat"), 3]]), torch.ones(1, 3, dtype=torch.long))
    np.testing.assert_allclose(read_w2v_binary(out)["cat"], cat[0].mean(0).numpy(), atol=1e-5)


@pytest.mark.parametrize(("text", "message"), [
    (b"[PAD]\n[CLS]\n\xffx\n[SEP]\n", r"vocab.txt:3: the vocabulary is not valid UTF-8"),
    (b"a\nb\n", "no \\[CLS\\]/\\[SEP\\] tokens"),
    (b"", "no \\[CLS\\]/\\[SEP\\] tokens"),
])
def test_a_bad_vocabulary(tmp_path: Path, text: bytes, message: str) -> None:
    model = tiny_bert(tmp_path / "m")
    (model / "vocab.txt").write_bytes(text)
    with pytest.raises(ModelError, match=message):
        write_static_source(model, tmp_path / "o.bin", progress=False)


def test_a_huge_vocabulary_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bertfiles, "MAX_VOCAB_BYTES", 50)
    model = tiny_bert(tmp_path / "m")
    with pytest.raises(ModelError, match="vocab.txt: the vocabulary is 80 bytes, more than "
                                         "the 50 allowed"):
        write_static_source(model, tmp_path / "o.bin", progress=False)


def test_the_checked_activations_are_the_ones_the_forward_pass_has() -> None:
    from metaprep.learn.bert import _ACTS

    assert set(bertfiles.ACTS) == set(_ACTS)
