"""Corrupted embedding files: reading one either works or raises a metaprep error, never
anything else, and never hangs (each reader checks its header against the file's size before it
allocates or loops, which is what bounds the time of every example here).

Real small files are corrupted at random: bytes flipped, the file cut short, bytes inserted,
huge numbers written over header fields.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
from pathlib import Path

import gensim
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metaprep.errors import MetaprepError
from metaprep.prep.readers import ReadOptions, open_source

GENSIM_DATA = Path(os.path.dirname(gensim.__file__)) / "test" / "test_data"
EXAMPLES = int(os.environ.get("METAPREP_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])
HUGE = [2**31 - 1, 2**31, 2**32 + 7, 2**63 - 1, 2**64 - 1, 10**12, -1, 0]


def _npy() -> bytes:
    from io import BytesIO

    buf = BytesIO()
    np.save(buf, np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32))
    return buf.getvalue()


def _safetensors() -> bytes:
    data = np.random.default_rng(1).normal(size=(12, 5)).astype(np.float32).tobytes()
    header = json.dumps({"emb": {"dtype": "F32", "shape": [12, 5],
                                 "data_offsets": [0, len(data)]},
                         "__metadata__": {"format": "pt"}}).encode()
    return struct.pack("<Q", len(header)) + header + data


def _gensim(name: str, keep: int | None = None) -> bytes:
    data = (GENSIM_DATA / name).read_bytes()
    return data if keep is None else data[:keep]


def _glove_head() -> bytes:
    return b"".join((GENSIM_DATA / "test_glove.txt").read_bytes().splitlines(True)[:40])


def _vec_head() -> bytes:
    lines = (GENSIM_DATA / "lee_fasttext.vec").read_bytes().splitlines(True)[1:41]
    dim = len(lines[0].split()) - 1
    return f"{len(lines)} {dim}\n".encode() + b"".join(lines)


def _w2v_bin_head() -> bytes:
    """The first 30 rows of euclidean_vectors.bin, with its header rewritten to say so."""
    data = _gensim("euclidean_vectors.bin")
    nl = data.index(b"\n")
    dim = int(data[:nl].split()[1])
    pos = nl + 1
    for _ in range(30):
        pos = data.index(b" ", pos) + 1 + 4 * dim
    return f"30 {dim}\n".encode() + data[nl + 1 : pos]


# name -> (file bytes, forced format or None for detection, file name)
BASES = {
    "glove": (_glove_head, None, "g.txt"),
    "glove-gz": (lambda: gzip.compress(_glove_head()), None, "g.txt.gz"),
    "vec": (_vec_head, None, "v.vec"),
    "w2v-bin": (_w2v_bin_head, "word2vec-binary", "w.bin"),
    "w2v-bin-detected": (_w2v_bin_head, None, "w.bin"),
    "fasttext-bin": (lambda: _gensim("lee_fasttext.bin"), "fasttext-bin", "f.bin"),
    "npy": (_npy, "npy", "m.npy"),
    "safetensors": (_safetensors, "safetensors", "m.safetensors"),
}
_CACHE: dict[str, bytes] = {}


def _base(name: str) -> bytes:
    if name not in _CACHE:
        _CACHE[name] = BASES[name][0]()
    return _CACHE[name]


@st.composite
def corruptions(draw: st.DrawFn, size: int) -> list[tuple[str, int, bytes]]:
    """A few edits, each (kind, position, bytes); positions favour the header."""
    pos = st.one_of(st.integers(0, min(size - 1, 64)), st.integers(0, size - 1))
    edit = st.one_of(
        st.tuples(st.just("flip"), pos, st.binary(min_size=1, max_size=1)),
        st.tuples(st.just("cut"), pos, st.just(b"")),
        st.tuples(st.just("insert"), pos, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("number"), pos, st.sampled_from(HUGE).map(_number_bytes)),
    )
    return draw(st.lists(edit, min_size=1, max_size=3))


def _number_bytes(n: int) -> bytes:
    return str(n).encode() if n % 2 else struct.pack("<q" if n < 2**63 else "<Q", n)


def _apply(data: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    for kind, pos, payload in edits:
        if not data:
            break
        pos = min(pos, len(data) - 1)
        if kind == "flip":
            data = data[:pos] + bytes([data[pos] ^ (payload[0] or 0xFF)]) + data[pos + 1 :]
        elif kind == "cut":
            data = data[:pos]
        elif kind == "insert":
            data = data[:pos] + payload + data[pos:]
        else:  # a number written over the bytes at pos
            data = data[:pos] + payload + data[pos + len(payload) :]
    return data


def _read(path: Path, fmt: str | None, vocab: Path | None) -> None:
    options = ReadOptions(progress=False, vocab_file=vocab, chunk_bytes=4096)
    with open_source(path, fmt=fmt, options=options) as src:
        for chunk in src.iter_chunks():
            assert chunk.vectors.shape == (len(chunk.words), src.dim)
            assert np.isfinite(chunk.vectors).all()
        for _ in src.iter_words():
            pass
        if src.has_subwords:
            src.subword_vectors(["zzzunseen", "the"])


def _check(tmp_path: Path, name: str, data: bytes) -> None:
    _, fmt, filename = BASES[name]
    path = tmp_path / filename
    path.write_bytes(data)
    vocab = None
    if fmt in ("npy", "safetensors"):
        vocab = tmp_path / "vocab.txt"
        vocab.write_text("".join(f"t{i}\n" for i in range(12)))
    try:
        _read(path, fmt, vocab)
    except MetaprepError as exc:
        assert str(exc).startswith(str(path)) or str(vocab) in str(exc), str(exc)


@pytest.mark.parametrize("name", list(BASES))
def test_intact_files_read(tmp_path: Path, name: str) -> None:
    _check(tmp_path, name, _base(name))


@pytest.mark.parametrize("name", list(BASES))
def test_corrupted_files_raise_only_metaprep_errors(tmp_path: Path, name: str) -> None:
    data = _base(name)

    @FUZZ
    @given(edits=corruptions(len(data)))
    def run(edits: list[tuple[str, int, bytes]]) -> None:
        _check(tmp_path, name, _apply(data, edits))

    run()
