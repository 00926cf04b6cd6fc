"""Headers are checked against the file's size, and lines against a length bound, before a
reader allocates or loops by them: each case is a FormatError naming the file and the line or
byte, raised at once."""

from __future__ import annotations

import gzip
import json
import os
import re
import struct
from pathlib import Path

import gensim
import numpy as np
import pytest
from click.testing import CliRunner
from readkit import TEXT_ROUTES, on_route, read_all

from metaprep.cli import cli
from metaprep.errors import FormatError
from metaprep.prep.readers import ReadOptions, open_source

DATA = Path(os.path.dirname(gensim.__file__)) / "test" / "test_data"
QUIET = ReadOptions(progress=False)
ROWS = [f"w{i} " + " ".join(["0.5"] * 10) for i in range(300)]


def _text(path: Path, lines: list[str] | list[bytes], *, gz: bool = False) -> Path:
    data = b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n"
    path.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)
    return path


# --- text: line length ---------------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [8 << 20, 1 << 16])  # the line within a chunk, or longer
@pytest.mark.parametrize("route", TEXT_ROUTES)
def test_a_line_longer_than_the_bound_names_its_line(
    tmp_path: Path, route: str, chunk: int
) -> None:
    long = b"huge " + b"0.25 " * 300_000 + b" ".join([b"0.5"] * 10)  # 1.5 MB > the 1 MiB floor
    path = _text(tmp_path / "t.txt", [*ROWS, long, *ROWS])
    src = on_route(path, route, chunk_bytes=chunk)
    with pytest.raises(FormatError, match=r"t\.txt:301: the line is longer than 1,048,576 bytes"):
        list(src.iter_chunks())
    with pytest.raises(FormatError, match=r"t\.txt:301: the line is longer"):
        list(src.iter_words())


def test_a_long_word_without_spaces_is_caught_on_the_fast_path(tmp_path: Path) -> None:
    path = _text(tmp_path / "t.txt", [*ROWS, "x" * (2 << 20) + " 1" * 10, *ROWS])
    with pytest.raises(FormatError, match=r"t\.txt:301: the line is longer"):
        read_all(path)


def test_bound_grows_with_the_usual_line(tmp_path: Path) -> None:
    # rows of 2000 numbers (~8 KB): 64 x the median allows a 0.6 MB word with spaces
    rows = [f"w{i} " + " ".join(["0.1"] * 2000) for i in range(50)]
    odd = "a " * 150_000 + " ".join(["0.1"] * 2000)
    _, words, _ = read_all(_text(tmp_path / "t.txt", [*rows, odd]))
    assert len(words) == 51 and len(words[-1]) == 299_999


def test_gzip_bomb_without_newlines_fails_in_the_sniff(tmp_path: Path) -> None:
    path = tmp_path / "bomb.txt.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        for _ in range(24):
            f.write(b"a" * (1 << 20))
    assert path.stat().st_size < 200_000
    with pytest.raises(FormatError, match=r"bomb\.txt\.gz:1: the line is longer than 1,048,576"):
        open_source(path, options=QUIET)


def test_gzip_bomb_after_good_rows_fails_with_bounded_reads(tmp_path: Path) -> None:
    path = tmp_path / "bomb.txt.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(("\n".join(ROWS) + "\n").encode())
        for _ in range(24):
            f.write(b"a" * (1 << 20))
    with pytest.raises(FormatError, match=r"bomb\.txt\.gz:301: the line is longer"):
        read_all(path, chunk_bytes=1 << 16)


# --- text: headers -------------------------------------------------------------------------------
def test_absurd_text_dimensions(tmp_path: Path) -> None:
    path = _text(tmp_path / "h.vec", ["2 1000000", *ROWS[:2]])
    with pytest.raises(FormatError, match=r"h\.vec:1: the header declares 1000000 dimensions "
                                          r"\(more than 100,000\)"):
        open_source(path, options=QUIET)
    wide = _text(tmp_path / "g.txt", ["w " + " ".join(["0"] * 100_001)] * 2)
    with pytest.raises(FormatError, match=r"g\.txt:1: the rows have 100001 dimensions"):
        open_source(wide, options=QUIET)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(("header", "rows", "message"), [
    # the header of the issue: words without numbers "fit" 0 dimensions; the store divided by 0
    ("5 0", ["a", "b", "c", "d", "e"], r"the header declares 0 dimensions \(a vector has at "
                                       r"least 1\)"),
    ("5 -10", ROWS[:5], r"the header declares -10 dimensions"),
    ("-5 10", ROWS[:5], r"the header declares -5 rows \(a count cannot be negative\)"),
    ("5 " + "9" * 5000, ROWS[:5], r"the header declares 10000000000000000000 dimensions"),
    ("300 11", ROWS, r"the header declares 11 dimensions but the rows have 10 numbers"),
])
def test_bad_text_headers_name_line_1(tmp_path: Path, header: str, rows: list[str],
                                      message: str, gz: bool) -> None:
    path = _text(tmp_path / ("h.vec.gz" if gz else "h.vec"), [header, *rows], gz=gz)
    result = CliRunner().invoke(cli, ["align", f"h={path}", "-o", str(tmp_path / "s.h5"), "-q"])
    assert isinstance(result.exception, FormatError), result.output
    assert re.match(re.escape(str(path)) + ":1: " + message, str(result.exception))
    assert not (tmp_path / "s.h5").exists()


def test_a_count_of_5000_digits_is_a_bound_not_a_crash(tmp_path: Path) -> None:
    # int() refuses more than 4,300 digits: the header is read as a huge count, then refused
    path = _text(tmp_path / "h.vec", ["1" * 5000 + " 10", *ROWS])
    with pytest.raises(FormatError, match=r"h\.vec:1: the header declares "
                                          r"10,000,000,000,000,000,000 rows of 10 numbers"):
        open_source(path, options=QUIET)
    with pytest.raises(FormatError, match=r"the header declares -10,000,000,000,000,000,000 rows"):
        open_source(_text(tmp_path / "g.vec", ["-" + "1" * 5000 + " 10", *ROWS]), options=QUIET)


def test_text_row_count_checked_against_the_size(tmp_path: Path) -> None:
    path = _text(tmp_path / "h.vec", ["99999999999 10", *ROWS])
    with pytest.raises(FormatError, match=r"h\.vec:1: the header declares 99,999,999,999 rows of "
                                          r"10 numbers, which take at least"):
        open_source(path, options=QUIET)
    assert len(read_all(path, limit=5)[1]) == 5  # a limit asks only for what it reads
    src, words, _ = read_all(path, on_bad_line="skip")  # skip: noted at the end, as before
    assert len(words) == 300 and "declares 99999999999 rows" in src.stats.examples[0]


# --- word2vec binary -----------------------------------------------------------------------------
def _w2v_bin(path: Path, header: bytes, rows: int = 3, dim: int = 4) -> Path:
    body = b"".join(f"w{i} ".encode() + np.ones(dim, "<f4").tobytes() for i in range(rows))
    path.write_bytes(header + body)
    return path


def test_binary_header_bounds(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"b\.bin:1: the header declares 2000000 dimensions"):
        open_source(_w2v_bin(tmp_path / "b.bin", b"3 2000000\n"), fmt="word2vec-binary",
                    options=QUIET)
    path = _w2v_bin(tmp_path / "c.bin", b"4000000000 4\n")
    with pytest.raises(FormatError, match=r"c\.bin:1: the header declares 4,000,000,000 rows of "
                                          r"4 dimensions, which take at least 72,000,000,000"):
        open_source(path, fmt="word2vec-binary", options=QUIET)
    assert read_all(path, fmt="word2vec-binary", limit=2)[1] == ["w0", "w1"]


@pytest.mark.parametrize(("header", "message"), [
    (b"3 0\n", r"the header declares 0 dimensions"),
    (b"3 -5\n", r"the header declares -5 dimensions"),  # was read as GloVe: "no vectors found"
    (b"-3 4\n", r"the header declares -3 rows"),
])
@pytest.mark.parametrize("fmt", [None, "word2vec-binary"])
def test_bad_binary_headers_name_line_1(tmp_path: Path, header: bytes, message: str,
                                        fmt: str | None) -> None:
    with pytest.raises(FormatError, match=r"b\.bin:1: " + message):
        open_source(_w2v_bin(tmp_path / "b.bin", header), fmt=fmt, options=QUIET)


# --- fastText .bin -------------------------------------------------------------------------------
FT = (DATA / "lee_fasttext_new.bin").read_bytes()  # the new format: magic, version, 12 args, t


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    return data[:offset] + struct.pack(fmt, value) + data[offset + struct.calcsize(fmt) :]


def _matrix_at() -> int:
    """Offset of the input matrix's ``quantized`` flag in FT (after the dictionary)."""
    pos = 92  # 64 bytes of header, then size, nwords, nlabels, ntokens, pruneidx_size
    for _ in range(struct.unpack_from("<i", FT, 64)[0]):
        pos = FT.index(b"\0", pos) + 1 + 9
    return pos


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: _patch(d, 8, "<i", 10**9), r"\(byte 8\): .*the dimension is 1000000000"),
        (lambda d: _patch(d, 40, "<i", -5), r"\(byte 40\): .*the bucket count is -5"),
        (lambda d: _patch(d, 64, "<i", 2**31 - 1), r"\(byte 64\): .*the dictionary size is"),
        (lambda d: d[:20_000], r"inside the count of word 1254"),  # gensim would loop forever
        (lambda d: _patch(d, 68, "<i", 1000), r"holds 1763 entries but 1000 words"),
        (lambda d: _patch(d, _matrix_at() + 1, "<q", 5), r"the input matrix is 5 x 10, expected "
                                                         r"2763 x 10"),
        (lambda d: _patch(d, _matrix_at() + 17 + 40, "<f", float("nan")),
         r"row 1 of the input matrix holds a NaN"),
        (lambda d: _patch(d, _matrix_at(), "<?", True), r"its input matrix is quantized"),
        (lambda d: d + b"\0" * 7, r"7 bytes follow the last matrix"),
        (lambda d: d[:-4], r"the file ends inside the output matrix"),
    ],
)
def test_fasttext_layout_checked_before_gensim(tmp_path: Path, edit, message: str) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(edit(FT))
    with pytest.raises(FormatError, match=r"f\.bin.*" + message):
        open_source(path, fmt="fasttext-bin", options=QUIET)


# --- npy / safetensors ---------------------------------------------------------------------------
def _safetensors(path: Path, header: object, data: bytes = b"\0" * 48,
                 length: int | None = None) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    path.with_name("vocab.txt").write_text("a\nb\nc\n")
    return path


GOOD = {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]}


@pytest.mark.parametrize(
    ("header", "length", "message"),
    [
        ({"t": GOOD}, 2**63, r"header length \(9223372036854775808 bytes\) does not fit"),
        ({"t": GOOD}, 10**6, r"does not fit the file"),
        ({"t": {**GOOD, "data_offsets": [0, 4800]}}, None, r"bytes 0\.\.4800 lie outside"),
        ({"t": {**GOOD, "data_offsets": [40, 8]}}, None, r"bytes 40\.\.8 lie outside"),
        ({"t": {**GOOD, "shape": ["3", 4]}}, None, r"not \{dtype, shape, data_offsets\}"),
        ({"t": {**GOOD, "shape": [-3, 4]}}, None, r"not \{dtype, shape, data_offsets\}"),
        ({"t": {**GOOD, "shape": [True, 4]}}, None, r"not \{dtype, shape, data_offsets\}"),
        ({"t": "F32"}, None, r"not \{dtype, shape, data_offsets\}"),
        ({"t": {**GOOD, "shape": [2**40, 2**40]}}, None, r"byte range does not match its shape"),
        ({"t": {**GOOD, "dtype": "I64"}}, None, r"dtype I64; supported"),
    ],
)
def test_safetensors_header_checked(tmp_path: Path, header: object, length: int | None,
                                    message: str) -> None:
    path = _safetensors(tmp_path / "m.safetensors", header, length=length)
    with pytest.raises(FormatError, match=r"m\.safetensors.*" + message):
        open_source(path, fmt="safetensors", options=QUIET)


def test_safetensors_deeply_nested_header(tmp_path: Path) -> None:
    raw = b"[" * 100_000
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(FormatError, match="header is not JSON"):
        open_source(path, fmt="safetensors", options=QUIET)


@pytest.mark.parametrize("shape", [(3, 0), (0, 4), (0, 0), (3, 100_001)])
@pytest.mark.parametrize("fmt", ["npy", "safetensors"])
def test_a_matrix_without_rows_or_columns(tmp_path: Path, shape: tuple[int, int], fmt: str
                                          ) -> None:
    """A (3, 0) matrix opened as a source of 0 dimensions, and the store divided by 0."""
    data = np.zeros(shape, np.float32)
    path = tmp_path / f"m.{fmt}"
    if fmt == "npy":
        np.save(path, data)
    else:
        entry = {"dtype": "F32", "shape": list(shape), "data_offsets": [0, data.nbytes]}
        _safetensors(path, {"t": entry}, data.tobytes())
    (tmp_path / "vocab.txt").write_text("".join(f"t{i}\n" for i in range(shape[0])))
    with pytest.raises(FormatError, match=re.escape(f"m.{fmt}: the matrix has shape {shape}: "
                                                    "an embedding table needs at least one row")):
        open_source(path, fmt=fmt, options=QUIET)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.replace(b"(3, 4)", b"(3\x82 4)"), "not a readable .npy array"),
        (lambda d: d.replace(b"(3, 4)", b"(9, 9)"), "not a readable .npy array"),
        (lambda d: d.replace(b"'<f4'", b"'|O8'"), "not a readable .npy array"),
        (lambda d: d[:70], "not a readable .npy array"),
    ],
)
def test_npy_header_checked(tmp_path: Path, edit, message: str) -> None:
    from io import BytesIO

    buf = BytesIO()
    np.save(buf, np.ones((3, 4), np.float32))
    path = tmp_path / "m.npy"
    path.write_bytes(edit(buf.getvalue()))
    (tmp_path / "vocab.txt").write_text("a\nb\nc\n")
    with pytest.raises(FormatError, match=r"m\.npy: " + message):
        open_source(path, fmt="npy", options=QUIET)


def test_a_vocab_file_too_large_for_its_matrix_is_not_read(tmp_path: Path) -> None:
    np.save(tmp_path / "m.npy", np.zeros((2, 4), np.float32))
    with open(tmp_path / "vocab.txt", "wb") as f:  # sparse: 200 KB that read as zeros
        f.truncate(2 * (1 << 16) + 2 * 2 + 4)
    with pytest.raises(FormatError, match=r"vocab\.txt: the vocab file is 131,080 bytes, more "
                                          r"than 2 tokens of at most 65,536 bytes can take"):
        open_source(tmp_path / "m.npy", options=QUIET)
