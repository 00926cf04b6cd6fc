"""npy / safetensors matrix + vocab file reader."""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from readkit import read_all

from metaprep.errors import FormatError
from metaprep.prep.readers import ReadOptions, open_source

TOKENS = ["[PAD]", "the", "NaN", "##s", "caf\u00e9", "a b", "the", "1.5"]




@pytest.fixture
def matrix() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((len(TOKENS), 5)).astype(np.float32)


def _vocab(path: Path, tokens: list[str] = TOKENS) -> Path:
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_npy_round_trip(tmp_path: Path, matrix: np.ndarray, dtype: type) -> None:
    stored = matrix.astype(dtype)
    np.save(tmp_path / "emb.npy", stored)
    _vocab(tmp_path / "vocab.txt")
    src, words, got = read_all(tmp_path / "emb.npy")
    assert src.format == "npy" and src.vocab_path == tmp_path / "vocab.txt"
    assert words == TOKENS[:6] + ["1.5"] and src.stats.duplicates == 1
    np.testing.assert_array_equal(got, stored[[0, 1, 2, 3, 4, 5, 7]].astype(np.float32))
    assert [w for ws in src.iter_words() for w in ws] == words
    _, some, sub = read_all(tmp_path / "emb.npy", wanted={"##s", "the", "zz"})
    assert some == ["the", "##s"]
    np.testing.assert_array_equal(sub, stored[[1, 3]].astype(np.float32))
    assert read_all(tmp_path / "emb.npy", limit=3)[1] == TOKENS[:3]


def test_safetensors_round_trip(tmp_path: Path, matrix: np.ndarray) -> None:
    st = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "model.safetensors"
    st.save_file({"embeddings.word_embeddings.weight": matrix, "other": matrix[:2]}, str(path))
    vocab = _vocab(tmp_path / "tokens.list")
    with pytest.raises(FormatError, match="holds 2 tensors; choose one: embeddings.*, other"):
        open_source(path, options=ReadOptions(vocab_file=vocab))
    with pytest.raises(FormatError, match="no tensor named 'nope'"):
        open_source(path, options=ReadOptions(vocab_file=vocab, tensor="nope"))
    src, words, got = read_all(
        path, vocab_file=vocab, tensor="embeddings.word_embeddings.weight"
    )
    assert src.format == "safetensors" and len(words) == 7
    np.testing.assert_array_equal(got, matrix[[0, 1, 2, 3, 4, 5, 7]])


def test_safetensors_bfloat16_matches_torch(tmp_path: Path, matrix: np.ndarray) -> None:
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    weights = torch.tensor(matrix).to(torch.bfloat16)
    st.save_file({"w": weights}, str(tmp_path / "bf.safetensors"))
    _vocab(tmp_path / "bf.vocab")
    _, _, got = read_all(tmp_path / "bf.safetensors")
    np.testing.assert_array_equal(got, weights.float().numpy()[[0, 1, 2, 3, 4, 5, 7]])


def test_row_count_must_match_vocab(tmp_path: Path, matrix: np.ndarray) -> None:
    np.save(tmp_path / "emb.npy", matrix)
    _vocab(tmp_path / "emb.txt", TOKENS[:-1])
    with pytest.raises(FormatError, match=r"emb\.npy: the matrix has 8 rows but the vocab file .*"
                       r"emb\.txt has 7 lines"):
        open_source(tmp_path / "emb.npy")


def test_missing_or_odd_vocab(tmp_path: Path, matrix: np.ndarray) -> None:
    np.save(tmp_path / "emb.npy", matrix)
    with pytest.raises(FormatError, match="no vocab file found; looked for vocab.txt, emb.vocab"):
        open_source(tmp_path / "emb.npy")
    with pytest.raises(FormatError, match=r"nope\.txt: no such vocab file"):
        open_source(tmp_path / "emb.npy", options=ReadOptions(vocab_file=tmp_path / "nope.txt"))
    (tmp_path / "vocab.txt").write_text("".join(f"w{i} {i * 10}\n" for i in range(8)))
    with pytest.raises(FormatError, match="look like 'token count' pairs"):
        open_source(tmp_path / "emb.npy")
    (tmp_path / "vocab.txt").write_bytes(b"a\nb\xff\n" + b"c\n" * 6)
    with pytest.raises(FormatError, match=r"vocab\.txt:2: the token is not valid UTF-8"):
        open_source(tmp_path / "emb.npy")
    src = open_source(tmp_path / "emb.npy", options=ReadOptions(encoding_errors="replace"))
    assert [w for ws in src.iter_words() for w in ws] == ["a", "b\ufffd", "c"]


def test_bad_matrices(tmp_path: Path, matrix: np.ndarray) -> None:
    _vocab(tmp_path / "vocab.txt")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}] * 8, dtype=object))
    with pytest.raises(FormatError, match=r"obj\.npy: not a readable \.npy array"):
        open_source(tmp_path / "obj.npy")
    np.save(tmp_path / "v.npy", np.zeros(8, np.float32))
    with pytest.raises(FormatError, match="expected a 2-D matrix"):
        open_source(tmp_path / "v.npy")
    bad = matrix.copy()
    bad[2, 1] = np.inf
    np.save(tmp_path / "inf.npy", bad)
    with pytest.raises(FormatError, match=r"inf\.npy: row 2 \('NaN'\) has a NaN or infinite"):
        read_all(tmp_path / "inf.npy")
    src, words, _ = read_all(tmp_path / "inf.npy", on_bad_line="skip")
    assert "NaN" not in words and src.stats.bad_lines == 1
    wide = matrix.astype(np.float64)
    wide[3, 0] = 1e300  # finite, but not as float32: one line, no RuntimeWarning before it
    np.save(tmp_path / "f64.npy", wide)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FormatError, match=r"f64\.npy: row 3 \('##s'\) has a NaN or infinite"):
            read_all(tmp_path / "f64.npy")
    np.save(tmp_path / "trunc.npy", matrix)
    data = (tmp_path / "trunc.npy").read_bytes()
    (tmp_path / "trunc.npy").write_bytes(data[:-10])
    with pytest.raises(FormatError, match=r"trunc\.npy: not a readable \.npy array"):
        open_source(tmp_path / "trunc.npy", fmt="npy")


def test_bad_safetensors(tmp_path: Path, matrix: np.ndarray) -> None:
    _vocab(tmp_path / "vocab.txt")
    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [8, 5], "data_offsets": [0, matrix.nbytes]}}
    ).encode()
    good = struct.pack("<Q", len(header)) + header + matrix.tobytes()
    (tmp_path / "t.safetensors").write_bytes(good[:-4])
    with pytest.raises(FormatError, match=r"t\.safetensors \(byte \d+\): .*truncated"):
        open_source(tmp_path / "t.safetensors")
    (tmp_path / "j.safetensors").write_bytes(struct.pack("<Q", 5) + b"{nope" + b"\0" * 16)
    with pytest.raises(FormatError, match="header is not JSON"):
        open_source(tmp_path / "j.safetensors", fmt="safetensors")
    header = json.dumps({"w": {"dtype": "I64", "shape": [8, 5], "data_offsets": [0, 320]}})
    (tmp_path / "i.safetensors").write_bytes(
        struct.pack("<Q", len(header)) + header.encode() + b"\0" * 320
    )
    with pytest.raises(FormatError, match="has dtype I64"):
        open_source(tmp_path / "i.safetensors")
