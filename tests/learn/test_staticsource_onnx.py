"""static-source on an ONNX model: the graph is checked before it runs (external data, inputs, the
word table against the vocabulary) and each output while it runs (shape, finite values)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from bertkit import VOCAB, read_w2v_binary, tiny_onnx

from metaprep.errors import ModelError
from metaprep.learn.staticsource import write_static_source


def _vocab(tmp_path: Path, tokens: list[str] = VOCAB) -> Path:
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


def _encode(tmp_path: Path, model: Path, **kw: object) -> dict[str, np.ndarray]:
    out = tmp_path / "o.bin"
    write_static_source(model, out, vocab_file=kw.pop("vocab_file", _vocab(tmp_path)),
                        pca_dims=None, zipf=False, progress=False, **kw)  # type: ignore[arg-type]
    return read_w2v_binary(out)


def test_a_plain_graph_is_encoded(tmp_path: Path) -> None:
    from onnx import TensorProto

    table = _encode(tmp_path, tiny_onnx(tmp_path / "m.onnx"))
    assert list(table) == VOCAB[6:]
    int32 = _encode(tmp_path, tiny_onnx(tmp_path / "i.onnx", id_type=TensorProto.INT32))
    np.testing.assert_array_equal(table["cat"], int32["cat"])


@pytest.mark.parametrize(("graph", "message"), [
    ({"rows": 10}, r"vocab.txt: the vocabulary has 16 tokens but m.onnx's word embedding table "
                   r"has 10 rows"),
    ({"inputs": ("input_ids", "attention_mask", "past")}, r"the model's inputs are "
                                                          r"\['attention_mask', 'input_ids', "
                                                          r"'past'\]; static-source gives"),
    ({"inputs": ("input_ids",)}, r"the model's inputs are \['input_ids'\]"),
    ({"mask_type": 1}, r"input attention_mask is a tensor\(float\), not integer ids"),
    ({"extra_token": True}, r"output states has shape \[3, 6, 8\] for a batch of \[3, 3\] ids"),
    ({"scale": float("nan")}, r"the model's states for 'the' hold a NaN or infinite value"),
    ({"scale": 3e38}, r"the model's states for '.*' hold a NaN or infinite value"),
    ({"external": "../outside.bin"}, r"the graph reads external data from '../outside.bin', "
                                     r"which is not a file inside its folder"),
    ({"external": "/etc/hostname"}, r"reads external data from '/etc/hostname'"),
])
def test_a_forged_graph_is_one_model_error(tmp_path: Path, graph: dict, message: str) -> None:
    (tmp_path / "outside.bin").write_bytes(b"\0" * 4096)
    folder = tmp_path / "model"
    folder.mkdir()
    model = tiny_onnx(folder / "m.onnx", **graph)
    with pytest.raises(ModelError, match=message):
        _encode(tmp_path, model, batch_size=3)
    assert not (tmp_path / "o.bin").exists()


def test_external_data_inside_the_folder_is_read(tmp_path: Path) -> None:
    rows = np.random.default_rng(0).standard_normal((len(VOCAB), 8)).astype(np.float32)
    (tmp_path / "table.bin").write_bytes(rows.tobytes())
    table = _encode(tmp_path, tiny_onnx(tmp_path / "m.onnx", external="table.bin"))
    np.testing.assert_allclose(table["cat"], rows[[2, VOCAB.index("cat"), 3]].mean(0),
                               rtol=1e-6)


@pytest.mark.parametrize("kind", ["fifo", "device", "garbage", "empty"])
def test_an_unreadable_onnx_file(tmp_path: Path, kind: str) -> None:
    model = tmp_path / "m.onnx"
    if kind == "fifo":
        os.mkfifo(model)
    elif kind == "device":
        model.symlink_to("/dev/zero")
    else:
        model.write_bytes(b"\x08\x07garbage" if kind == "garbage" else b"")
    message = ("not a regular file" if kind in ("fifo", "device") else
               "not a readable ONNX model|cannot load the ONNX model")
    with pytest.raises(ModelError, match=message):
        _encode(tmp_path, model)
