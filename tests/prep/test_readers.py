"""The readers package: dispatcher, format detection, public API, and property tests of the text
parser (random odd words and layouts written as text, read back equal)."""

from __future__ import annotations

import gzip
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from readkit import TEXT_ROUTES, on_route

import metaprep.prep.readers as readers
from metaprep.errors import ConfigError, FormatError
from metaprep.prep.readers import FORMATS, ReadOptions, detect_format, open_source

gensim = pytest.importorskip("gensim")
from gensim.models import KeyedVectors  # noqa: E402

DATA = Path(os.path.dirname(gensim.__file__)) / "test" / "test_data"


def test_public_api() -> None:
    assert readers.__all__ == sorted(readers.__all__)
    for name in readers.__all__:
        assert hasattr(readers, name)
    assert FORMATS == ("glove", "word2vec-text", "word2vec-binary", "fasttext-bin", "npy",
                       "safetensors")


# --- detection ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, fmt",
    [("test_glove.txt", "glove"), ("lee_fasttext.vec", "word2vec-text"),
     ("euclidean_vectors.bin", "word2vec-binary"), ("lee_fasttext.bin", "fasttext-bin"),
     ("lee_fasttext_new.bin", "fasttext-bin"), ("high_precision.kv.txt", "word2vec-text")],
)
def test_detect_bundled_files(name: str, fmt: str) -> None:
    assert detect_format(DATA / name) == fmt


def test_detect_by_content_not_extension(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    kv = KeyedVectors(4)
    kv.add_vectors([f"w{i}" for i in range(20)], rng.standard_normal((20, 4)).astype(np.float32))
    cases = {}
    for binary in (False, True):
        for gz in (False, True):
            path = tmp_path / f"v{int(binary)}{int(gz)}.data"  # the extension tells nothing
            kv.save_word2vec_format(str(path), binary=binary)
            if gz:
                path.write_bytes(gzip.compress(path.read_bytes()))
            cases[path] = "word2vec-binary" if binary else "word2vec-text"
    glove = tmp_path / "g.gz"
    glove.write_bytes(gzip.compress(b"\xef\xbb\xbfthe 0.1 0.2\nof 0.3 0.4\n"))
    cases[glove] = "glove"
    np.save(tmp_path / "m.bin", np.zeros((2, 2), np.float32))
    cases[tmp_path / "m.bin.npy"] = "npy"
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}})
    st_path = tmp_path / "weights.dat"
    st_path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + b"\0" * 16)
    cases[st_path] = "safetensors"
    for path, fmt in cases.items():
        assert detect_format(path) == fmt, path
        if fmt.startswith("word2vec"):
            src = open_source(path, options=ReadOptions(progress=False))
            assert [w for ws in src.iter_words() for w in ws] == list(kv.index_to_key)


def test_detect_errors(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"nope\.vec: no such file"):
        detect_format(tmp_path / "nope.vec")
    (tmp_path / "e.txt").write_bytes(b"")
    with pytest.raises(FormatError, match=r"e\.txt: the file is empty"):
        detect_format(tmp_path / "e.txt")
    with pytest.raises(ConfigError, match="unknown embedding format 'csv'"):
        open_source(tmp_path / "e.txt", fmt="csv")


def test_open_source_dispatches(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_text("2 2\na 1 2\nb 3 4\n")
    with open_source(path, options=ReadOptions(progress=False)) as src:
        assert type(src).__name__ == "TextSource" and src.format == "word2vec-text"
    # forcing glove on a file with a header reads the header as a row (and says so)
    with pytest.raises(FormatError, match=r"v\.txt:1: expected a word and 2 numbers"):
        list(open_source(path, fmt="glove", options=ReadOptions(progress=False)).iter_chunks())
    assert open_source(DATA / "lee_fasttext.bin").has_subwords
    with pytest.raises(NotImplementedError):
        open_source(DATA / "lee_fasttext.vec").subword_vectors(["x"])


# --- property tests of the text parser ------------------------------------------------------------
# Characters that break naive readers: spaces and other Unicode spaces inside words, quotes, CSV
# comment and null markers, digits and signs.
_CHARS = st.sampled_from(list("ab xyZ\u00a0\u2009\u3000\"',#.-+019eE\u00e9\u4e2d\t;|\\"))
_SPECIAL = st.sampled_from(["NaN", "nan", "null", "NULL", "NA", "N/A", "#N/A", "None", "-", "1.5",
                            "-0", "inf", "1e5", '"', '""', "#", ". . .", "a b", "\u00a0", " x"])


def _unambiguous(word: str) -> bool:
    """A word with a space whose last part is a number ("x 1") cannot be told from one more
    vector value when every row of a small file is like that; real files are not."""
    if not word.strip(" "):
        return False
    if " " not in word:
        return True
    try:
        float(word.rsplit(" ", 1)[1])
    except ValueError:
        return True
    return False


_WORD = st.one_of(_SPECIAL, st.text(_CHARS, min_size=1, max_size=8)).filter(_unambiguous)
_FLOAT = st.floats(width=32, allow_nan=False, allow_infinity=False)


@st.composite
def _text_files(draw: st.DrawFn) -> tuple[bytes, list[str], np.ndarray, bool, int]:
    dim = draw(st.integers(1, 4))
    n = draw(st.integers(1, 12))
    words = draw(st.lists(_WORD, min_size=n, max_size=n))
    vecs = np.array(draw(st.lists(st.lists(_FLOAT, min_size=dim, max_size=dim), min_size=n,
                                  max_size=n)), dtype=np.float32).reshape(n, dim)
    header = draw(st.booleans())
    end = draw(st.sampled_from(["\n", "\r\n"]))
    trailing = draw(st.sampled_from(["", " "]))
    lines = [f"{w} " + " ".join(repr(float(x)) for x in v) + trailing
             for w, v in zip(words, vecs, strict=True)]
    if header:
        lines.insert(0, f"{n} {dim}")
    text = end.join(lines) + (end if draw(st.booleans()) else "")
    data = ("\ufeff" if draw(st.booleans()) else "").encode() + text.encode()
    chunk = draw(st.sampled_from([1, 7, 40, 1 << 20]))
    return data, words, vecs, header, chunk


@pytest.mark.parametrize("route", TEXT_ROUTES)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=_text_files())
def test_text_round_trip_property(tmp_path: Path, route: str, case: tuple) -> None:
    data, words, vecs, header, chunk = case
    path = tmp_path / "p.txt"
    path.write_bytes(data)
    fmt = "word2vec-text" if header else "glove"
    src = on_route(path, route, fmt=fmt, chunk_bytes=chunk)
    first: dict[str, int] = {}
    for i, w in enumerate(words):
        first.setdefault(w, i)
    got_words: list[str] = []
    got = []
    for c in src.iter_chunks():
        got_words += c.words
        got.append(c.vectors)
    assert got_words == list(first)
    np.testing.assert_array_equal(np.concatenate(got), vecs[list(first.values())])
    assert src.stats.duplicates == len(words) - len(first)
    assert src.stats.rows_read == len(words)
    assert [w for ws in src.iter_words() for w in ws] == list(first)
    wanted = set(list(first)[::2])
    sel = [w for c in src.iter_chunks(wanted) for w in c.words]
    assert sel == [w for w in first if w in wanted]


@pytest.mark.parametrize(
    "options",
    [ReadOptions(on_bad_line="ignore"), ReadOptions(encoding_errors="latin-1"),
     ReadOptions(limit=-1), ReadOptions(chunk_bytes=0)],
)
def test_bad_options_are_config_errors(options: ReadOptions) -> None:
    for name in ("test_glove.txt", "euclidean_vectors.bin"):
        with pytest.raises(ConfigError):
            open_source(DATA / name, options=options)
