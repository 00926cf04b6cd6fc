"""Corrupted embedding files: reading one either works or raises a metaprep error, never
anything else, and never hangs (each reader checks its header against the file's size before it
allocates or loops, which is what bounds the time of every example here).

Real small files are corrupted at random: bytes flipped, the file cut short, bytes inserted,
huge numbers written over header fields.
"""

from __future__ import annotations

import gzip
import json
import math
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
from metaprep.prep.readers.base import MAX_DIM

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
        assert 1 <= src.dim <= MAX_DIM, src.dim  # a store (and align) needs a width
        for chunk in src.iter_chunks():
            assert chunk.vectors.shape == (len(chunk.words), src.dim)
            assert np.isfinite(chunk.vectors).all()
        for _ in src.iter_words():
            pass
        if src.has_subwords:
            src.subword_vectors(["zzzunseen", "the"])


def _check(tmp_path: Path, name: str, data: bytes, suffix: str = "") -> None:
    _, fmt, filename = BASES[name]
    path = tmp_path / (filename + suffix)
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


# --- every header field, set to every odd value -------------------------------------------------
# Each field of each format's header (counts, dimensions, shapes, offsets, fastText's training
# arguments) is rewritten to zero, negative, huge and off-by-one values: the file reads (and the
# source is sane: at least one dimension, finite vectors) or it is a metaprep error naming it.
ODD = [0, 1, -1, 2, 2**31 - 1, 2**31, -(2**31), 2**63 - 1, 10**12]


def _text_header(name: str, field: int, value: int | bytes) -> bytes:
    head, rest = _base(name).split(b"\n", 1)
    parts = head.split(b" ")
    parts[field] = value if isinstance(value, bytes) else str(value).encode()
    return b" ".join(parts) + b"\n" + rest


def _text_cases() -> list[tuple[str, str, bytes]]:
    cases = []
    for name in ("vec", "w2v-bin", "w2v-bin-detected"):
        declared = [int(x) for x in _base(name).split(b"\n", 1)[0].split()]
        for field, what in enumerate(("count", "dim")):
            values = [*ODD, declared[field] - 1, declared[field] + 1, b"1" * 5000, b"+3",
                      b"-0", b"0" + str(declared[field]).encode()]
            cases += [(name, f"{what}={v!r}"[:40], _text_header(name, field, v)) for v in values]
    return cases


def _npy_header(shape: tuple[int, ...]) -> bytes:
    from io import BytesIO

    data = _base("npy")
    arr = np.load(BytesIO(data))
    buf = BytesIO()
    np.lib.format.write_array_header_2_0(buf, {"descr": "<f4", "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue() + arr.tobytes()


def _safetensors_header(shape: list[int], offsets: list[int]) -> bytes:
    data = _base("safetensors")
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header["emb"].update(shape=shape, data_offsets=offsets)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + n :]


def _matrix_cases() -> list[tuple[str, str, bytes]]:
    cases = []
    for k in range(2):
        for v in [0, 1, 4, 6, 11, 13, 100_001, 2**31, 10**12]:
            shape = [12, 5]
            shape[k] = v
            cases.append(("npy", f"shape={shape}", _npy_header(tuple(shape))))
            cases.append(("safetensors", f"shape={shape}",
                          _safetensors_header(shape, [0, 4 * shape[0] * shape[1]])))
            offsets = [0, 240]
            offsets[k] = v
            cases.append(("safetensors", f"offsets={offsets}",
                          _safetensors_header([12, 5], offsets)))
    return cases


HEADER_CASES = _text_cases() + _matrix_cases()


@pytest.mark.parametrize(("name", "edit", "data"), HEADER_CASES,
                         ids=[f"{n}-{e}" for n, e, _ in HEADER_CASES])
def test_header_fields_at_odd_values(tmp_path: Path, name: str, edit: str, data: bytes) -> None:
    _check(tmp_path, name, data)
    gz = tmp_path / "gz"
    gz.mkdir()
    if name in ("vec", "w2v-bin-detected"):  # the same header inside gzip
        _check(gz, name, gzip.compress(data), suffix=".gz")


def _fasttext_fields(data: bytes) -> list[tuple[str, int, str]]:
    """(name, offset, struct format) of every header field of a new-format fastText model, the
    two matrices' shapes included."""
    names = ["magic", "version", "dim", "ws", "epoch", "min_count", "neg", "word_ngrams", "loss",
             "model", "bucket", "minn", "maxn", "lr_update_rate"]
    fields = [(n, 4 * k, "<i") for k, n in enumerate(names)]
    fields += [("t", 56, "<d"), ("size", 64, "<i"), ("nwords", 68, "<i"), ("nlabels", 72, "<i"),
               ("ntokens", 76, "<q"), ("pruneidx_size", 84, "<q")]
    pos = 92
    for _ in range(struct.unpack_from("<i", data, 64)[0]):
        pos = data.index(b"\0", pos) + 1 + 9
    fields += [("input rows", pos + 1, "<q"), ("input cols", pos + 9, "<q")]
    rows, cols = struct.unpack_from("<2q", data, pos + 1)
    pos += 17 + 4 * rows * cols
    return [*fields, ("output rows", pos + 1, "<q"), ("output cols", pos + 9, "<q")]


def _fasttext_cases() -> list[tuple[str, bytes]]:
    data = (GENSIM_DATA / "lee_fasttext_new.bin").read_bytes()
    cases = []
    for name, at, fmt in _fasttext_fields(data):
        (was,) = struct.unpack_from(fmt, data, at)
        if fmt == "<d":
            values: list[int | float] = [0.0, -1.0, math.nan, math.inf, 1e300]
        else:
            big = 2**31 - 1 if fmt == "<i" else 2**63 - 1
            values = [0, 1, -1, big, -big - 1, was - 1, was + 1]
        for v in values:
            if v != was:
                cases.append((f"{name}={v}", data[:at] + struct.pack(fmt, v)
                              + data[at + struct.calcsize(fmt) :]))
    return cases


@pytest.mark.slow  # the edits that keep a valid layout load through gensim, ~1 s each
@pytest.mark.parametrize(("edit", "data"), _fasttext_cases(),
                         ids=[e for e, _ in _fasttext_cases()])
def test_fasttext_header_fields_at_odd_values(tmp_path: Path, edit: str, data: bytes) -> None:
    _check(tmp_path, "fasttext-bin", data)
