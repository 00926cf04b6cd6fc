"""word2vec binary and fastText .bin readers: real files, round trips, bad input."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from readkit import read_all

from metaprep.errors import FormatError
from metaprep.prep.readers import ReadOptions, open_source
from metaprep.prep.readers.word2vec_binary import Word2VecBinarySource

gensim = pytest.importorskip("gensim")
from gensim.models import KeyedVectors  # noqa: E402
from gensim.models.fasttext import load_facebook_vectors  # noqa: E402

DATA = Path(os.path.dirname(gensim.__file__)) / "test" / "test_data"




def write_w2v_binary(
    path: Path, words: list[str], vecs: np.ndarray, *, newline: bool, header: str | None = None
) -> Path:
    """Google's writer (newline after each vector) or gensim's (none)."""
    with open(path, "wb") as f:
        f.write((header or f"{len(words)} {vecs.shape[1]}\n").encode())
        for w, v in zip(words, vecs, strict=True):
            f.write(w.encode() + b" " + v.astype("<f4").tobytes() + (b"\n" if newline else b""))
    return path


# --- word2vec binary ------------------------------------------------------------------------------
def test_matches_gensim_on_bundled_binary() -> None:
    path = DATA / "euclidean_vectors.bin"
    kv = KeyedVectors.load_word2vec_format(path, binary=True)
    src, words, matrix = read_all(path)
    assert src.format == "word2vec-binary" and src.dim == kv.vector_size
    assert words == list(kv.index_to_key)
    np.testing.assert_array_equal(matrix, kv.vectors)
    assert [w for ws in src.iter_words() for w in ws] == words


@pytest.mark.parametrize("suffix", [".bin", ".bin.gz"])
def test_round_trip_gensim_binary(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(0)
    kv = KeyedVectors(6)
    words = [f"w{i}" for i in range(500)] + ["caf\u00e9", "a\u00a0b", "NaN", "1.5"]
    kv.add_vectors(words, rng.standard_normal((len(words), 6)).astype(np.float32))
    path = tmp_path / f"v{suffix}"
    kv.save_word2vec_format(str(path), binary=True)
    # small blocks so gzip records straddle block boundaries
    src, got, matrix = read_all(path, chunk_bytes=1000)
    assert got == words
    np.testing.assert_array_equal(matrix, kv.vectors)
    if suffix.endswith(".gz"):
        with gzip.open(path) as f:
            assert f.read(3) == b"504"


@pytest.mark.parametrize("newline", [False, True])
def test_both_writers_wanted_limit_duplicates(tmp_path: Path, newline: bool) -> None:
    rng = np.random.default_rng(1)
    words = ["a", "b", "a", "c", "d", "b", "e"]
    vecs = rng.standard_normal((len(words), 4)).astype(np.float32)
    path = write_w2v_binary(tmp_path / "v.bin", words, vecs, newline=newline)
    src, got, matrix = read_all(path)
    assert got == ["a", "b", "c", "d", "e"] and src.stats.duplicates == 2
    np.testing.assert_array_equal(matrix, vecs[[0, 1, 3, 4, 6]])
    src, got, matrix = read_all(path, wanted={"b", "e", "zz"})
    assert got == ["b", "e"] and src.stats.rows_read == 7
    np.testing.assert_array_equal(matrix, vecs[[1, 6]])
    src, got, _ = read_all(path, limit=4)
    assert got == ["a", "b", "c"] and src.stats.rows_read == 4
    gz = tmp_path / "v.bin.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    _, got, matrix = read_all(gz, chunk_bytes=16)
    assert got == ["a", "b", "c", "d", "e"]
    np.testing.assert_array_equal(matrix, vecs[[0, 1, 3, 4, 6]])


def test_truncated_binary(tmp_path: Path) -> None:
    vecs = np.ones((10, 4), np.float32)
    path = write_w2v_binary(tmp_path / "t.bin", [f"w{i}" for i in range(10)], vecs, newline=False)
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    with pytest.raises(FormatError, match=r"t\.bin \(byte \d+\): the file ends after 9 of the 10"):
        read_all(path)
    with pytest.raises(FormatError, match="truncated"):
        read_all(path)
    gz = tmp_path / "t.bin.gz"
    gz.write_bytes(gzip.compress(data)[:-30])
    with pytest.raises(FormatError, match=r"t\.bin\.gz"):
        read_all(gz)


def test_header_disagrees_with_binary_body(tmp_path: Path) -> None:
    vecs = np.arange(12, dtype=np.float32).reshape(3, 4)
    words = ["a", "b", "c"]
    more = write_w2v_binary(tmp_path / "m.bin", words, vecs, newline=True, header="2 4\n")
    with pytest.raises(FormatError, match="data continues after the 2 rows the header declares"):
        read_all(more)
    fewer = write_w2v_binary(tmp_path / "f.bin", words, vecs, newline=True, header="5 4\n")
    with pytest.raises(FormatError, match=r"f\.bin:1: the header declares 5 rows of 4 dim.*"
                                          r"at least 90 bytes, but the file has 57"):
        read_all(fewer)  # refused when opened: 5 rows cannot fit in 57 bytes
    long_words = [w * 10 for w in words]  # 3 rows of 28 bytes hold 4 rows' minimum, 72 bytes
    fewer = write_w2v_binary(tmp_path / "f.bin", long_words, vecs, newline=True, header="4 4\n")
    with pytest.raises(FormatError, match="ends after 3 of the 4 rows"):
        read_all(fewer)
    wrong_dim = write_w2v_binary(tmp_path / "d.bin", words * 50, np.tile(vecs, (50, 1)),
                                 newline=True, header="150 3\n")
    with pytest.raises(FormatError, match=r"d\.bin \(byte \d+\): .*header's 3 dimensions"):
        read_all(wrong_dim, encoding_errors="replace")


def test_binary_bad_values_and_utf8(tmp_path: Path) -> None:
    vecs = np.ones((3, 2), np.float32)
    vecs[1, 1] = np.nan
    path = write_w2v_binary(tmp_path / "n.bin", ["a", "b", "c"], vecs, newline=False)
    with pytest.raises(FormatError, match=r"n\.bin \(byte 20\): value 2 of the vector of 'b'"):
        read_all(path)
    src, words, _ = read_all(path, on_bad_line="skip")
    assert words == ["a", "c"] and src.stats.bad_lines == 1
    path = tmp_path / "u.bin"
    path.write_bytes(b"2 1\nok " + struct.pack("<f", 1.0) + b"b\xffd " + struct.pack("<f", 2.0))
    with pytest.raises(FormatError, match=r"u\.bin \(byte 12\): the word of row 2 is not valid"):
        read_all(path)
    assert read_all(path, encoding_errors="replace")[1] == ["ok", "b\ufffdd"]
    src, words, _ = read_all(path, on_bad_line="skip")
    assert words == ["ok"] and src.stats.bad_lines == 1


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b"3 4\n", "header line but no vectors"),
     (b"\x00\x01garbage", "expected a 'count dim' header")],
)
def test_binary_empty_or_headerless(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "e.bin"
    path.write_bytes(content)
    with pytest.raises(FormatError, match=message):
        Word2VecBinarySource(path, options=ReadOptions(progress=False))


# --- fastText .bin --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["lee_fasttext.bin", "lee_fasttext_new.bin"])
def test_fasttext_matches_gensim(name: str) -> None:
    path = DATA / name
    kv = load_facebook_vectors(str(path))
    src, words, matrix = read_all(path)
    assert src.format == "fasttext-bin" and src.has_subwords
    assert words == list(kv.index_to_key)
    np.testing.assert_array_equal(matrix, kv.vectors)
    oov = ["zzqxj", "thereabouts", "Übermensch", "x"]
    assert not any(w in kv.key_to_index for w in oov)
    np.testing.assert_array_equal(src.subword_vectors(oov), np.stack([kv[w] for w in oov]))
    assert [w for ws in src.iter_words() for w in ws] == words
    _, some, sub = read_all(path, wanted={"the", "of", "nope"})
    assert some == ["the", "of"]
    np.testing.assert_array_equal(sub, kv.vectors[[kv.key_to_index["the"], kv.key_to_index["of"]]])
    assert read_all(path, limit=5)[1] == words[:5]


def test_fasttext_bad_utf8_and_supervised(tmp_path: Path) -> None:
    path = DATA / "cp852_fasttext.bin"
    with pytest.raises(FormatError, match=r"cp852_fasttext\.bin: word 2 .* not valid UTF-8"):
        read_all(path)
    _, words, _ = read_all(path, encoding_errors="replace")
    assert words[1] == "kter\ufffd"
    src, skipped, _ = read_all(path, on_bad_line="skip")
    assert "kter\ufffd" not in skipped and src.stats.bad_lines >= 1
    with pytest.raises(FormatError, match="Supervised"):
        open_source(DATA / "pang_lee_polarity_fasttext.bin")


def test_fasttext_truncated(tmp_path: Path) -> None:
    path = tmp_path / "t.bin"
    path.write_bytes((DATA / "lee_fasttext_new.bin").read_bytes()[:5000])
    with pytest.raises(FormatError,
                       match=r"t\.bin \(byte \d+\): the fastText model is truncated or corrupt"):
        open_source(path, options=ReadOptions(progress=False))
