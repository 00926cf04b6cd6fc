"""The GloVe / word2vec text reader: real files, round trips, odd tokens, bad input."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from readkit import TEXT_ROUTES, on_route, read_all

from metaprep.errors import FormatError
from metaprep.prep.readers import ReadOptions, open_source
from metaprep.prep.readers.text import TextSource

gensim = pytest.importorskip("gensim")
from gensim.models import KeyedVectors  # noqa: E402

DATA = Path(os.path.dirname(gensim.__file__)) / "test" / "test_data"
QUIET = ReadOptions(progress=False)




def write_lines(path: Path, lines: list[str], *, end: str = "\n", encoding: str = "utf-8") -> Path:
    path.write_bytes((end.join(lines) + end).encode(encoding))
    return path


# --- real files shipped with gensim ---------------------------------------------------------------
@pytest.mark.parametrize("chunk_bytes", [64 << 20, 700])
@pytest.mark.parametrize(
    "name, kwargs",
    [("test_glove.txt", {"no_header": True}), ("lee_fasttext.vec", {}),
     ("crime-and-punishment.vec", {})],
)
def test_matches_gensim_on_bundled_files(name: str, kwargs: dict, chunk_bytes: int) -> None:
    path = DATA / name
    kv = KeyedVectors.load_word2vec_format(path, **kwargs)
    src, words, matrix = read_all(path, chunk_bytes=chunk_bytes)
    assert src.format == ("glove" if kwargs else "word2vec-text")
    assert words == list(kv.index_to_key)
    np.testing.assert_array_equal(matrix, kv.vectors)
    assert src.stats.rows_read == len(kv) and src.stats.duplicates == 0
    assert [w for ws in src.iter_words() for w in ws] == words


def test_latin1_file_strict_and_replace() -> None:
    path = DATA / "pang_lee_polarity_fasttext.vec"
    with pytest.raises(FormatError, match=r"pang_lee_polarity_fasttext\.vec:\d+: .*UTF-8"):
        read_all(path)
    kv = KeyedVectors.load_word2vec_format(path, unicode_errors="replace")
    _, words, matrix = read_all(path, encoding_errors="replace")
    assert words == list(kv.index_to_key)
    np.testing.assert_array_equal(matrix, kv.vectors)


# --- round trips through gensim's writer ----------------------------------------------------------
def _random_kv(n: int = 300, dim: int = 7, seed: int = 0) -> KeyedVectors:
    rng = np.random.default_rng(seed)
    kv = KeyedVectors(dim)
    kv.add_vectors([f"w{i}" for i in range(n)], rng.standard_normal((n, dim)).astype(np.float32))
    return kv


@pytest.mark.parametrize("suffix", [".txt", ".txt.gz"])
def test_round_trip_gensim_text(tmp_path: Path, suffix: str) -> None:
    kv = _random_kv()
    path = tmp_path / f"v{suffix}"
    kv.save_word2vec_format(str(path), binary=False)
    if suffix.endswith(".gz"):
        with gzip.open(path, "rb") as f:  # gensim's smart_open compresses by extension
            assert f.read(2)
    back = KeyedVectors.load_word2vec_format(str(path))
    src, words, matrix = read_all(path, chunk_bytes=512)
    assert src.format == "word2vec-text" and src.declared_count == len(kv)
    assert words == list(kv.index_to_key)
    np.testing.assert_array_equal(matrix, back.vectors)


# --- the tokens and layouts that break naive readers ----------------------------------------------
ODD_WORDS = ["NaN", "null", '"x,', "#x", "NA", "", "1.5", "-", ". . .", "a\u00a0b", "N/A", "'",
             "nan", "inf", "\u00e9t\u00e9", "x y z"]


@pytest.mark.parametrize("chunk_bytes", [64 << 20, 37])
@pytest.mark.parametrize("header", [False, True])
@pytest.mark.parametrize("end", ["\n", "\r\n", " \n", " \r\n"])
def test_odd_tokens_and_layouts(tmp_path: Path, header: bool, end: str, chunk_bytes: int) -> None:
    words = [w for w in ODD_WORDS if w]  # an empty word cannot be told from a bad line
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((len(words), 3)).astype(np.float32)
    lines = [f"{w} " + " ".join(map(repr, v.tolist())) for w, v in zip(words, vecs, strict=True)]
    if header:
        lines.insert(0, f"{len(words)} 3")
    path = write_lines(tmp_path / "odd.txt", lines, end=end)
    src, got, matrix = read_all(path, chunk_bytes=chunk_bytes)
    assert got == words
    np.testing.assert_array_equal(matrix, vecs)
    assert [w for ws in src.iter_words() for w in ws] == words
    want = {"NaN", ". . .", "a\u00a0b", "1.5"}
    _, sel, sub = read_all(path, wanted=want, chunk_bytes=chunk_bytes)
    assert sel == [w for w in words if w in want]
    np.testing.assert_array_equal(sub, vecs[[words.index(w) for w in sel]])


def test_bom_and_no_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfthe 1 2\nof 3 4")
    src, words, matrix = read_all(path)
    assert src.format == "glove" and words == ["the", "of"]
    np.testing.assert_array_equal(matrix, [[1, 2], [3, 4]])


def test_duplicates_first_wins(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.txt", ["a 1 1", "b 2 2", "a 3 3", "c 4 4", "b 5 5"])
    for chunk_bytes in (64 << 20, 8):
        src, words, matrix = read_all(path, chunk_bytes=chunk_bytes)
        assert words == ["a", "b", "c"]
        np.testing.assert_array_equal(matrix[:, 0], [1, 2, 4])
        assert src.stats.duplicates == 2 and src.stats.rows_read == 5
        assert [w for ws in src.iter_words() for w in ws] == ["a", "b", "c"]


def test_limit_and_wanted(tmp_path: Path) -> None:
    lines = [f"w{i} {i} {-i}" for i in range(50)]
    path = write_lines(tmp_path / "l.txt", lines[:10] + [""] + lines[10:])
    for chunk_bytes in (64 << 20, 20):
        src, words, matrix = read_all(path, limit=12, chunk_bytes=chunk_bytes)
        assert words == [f"w{i}" for i in range(12)] and src.stats.rows_read == 12
        src, words, matrix = read_all(path, wanted={"w3", "w40", "zz"}, chunk_bytes=chunk_bytes)
        assert words == ["w3", "w40"]
        np.testing.assert_array_equal(matrix, [[3, -3], [40, -40]])
        assert src.stats.rows_read == 50
        _, words, _ = read_all(path, wanted={"w3", "w40"}, limit=20, chunk_bytes=chunk_bytes)
        assert words == ["w3"]


def test_forced_format(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "h.txt", ["2 1", "x 1", "y 2"])
    assert read_all(path)[1] == ["x", "y"]
    with pytest.raises(FormatError, match="expected a 'count dim' header"):
        TextSource(write_lines(tmp_path / "g.txt", ["x 1 2"]), fmt="word2vec-text", options=QUIET)


# --- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk_bytes", [64 << 20, 16])
@pytest.mark.parametrize(
    "bad, message",
    [
        ("c 1", r"bad\.txt:3: expected a word and 2 numbers .* found 2 field"),
        ("c 1 x", r"bad\.txt:3: value 2 of 2 is not a number: b'x'"),
        ("c 1 nan", r"bad\.txt:3: value 2 of 2 is nan \(not finite\)"),
        ("c inf 1", r"bad\.txt:3: value 1 of 2 is inf \(not finite\)"),
        ("c 1  2", r"bad\.txt:3: value 1 of 2 is not a number: b''"),
        (" 1 2", r"bad\.txt:3: the line has no word"),
        ("c 1_0 2", r"bad\.txt:3: value 1 of 2 is not a number: b'1_0'"),  # float() says 10
        ("c 1 1e39", r"bad\.txt:3: value 2 of 2 is 1e39 \(not finite\)"),  # and no warning
        ("c 1 2\re 3 4", r"bad\.txt:3: the line holds a carriage return \(CR\) before its end"),
        ("c\rx 1 2", r"bad\.txt:3: the line holds a carriage return"),  # a regular-looking row
    ],
)
@pytest.mark.filterwarnings("error")  # the error is the one line: no RuntimeWarning before it
def test_bad_rows(tmp_path: Path, bad: str, message: str, chunk_bytes: int) -> None:
    rows = ["a 1 2", "b 3 4", bad, "d 5 6"]
    path = write_lines(tmp_path / "bad.txt", rows)
    with pytest.raises(FormatError, match=message) as info:
        read_all(path, chunk_bytes=chunk_bytes)
    assert info.value.line == 3 and "on_bad_line='skip'" in str(info.value)
    src, words, matrix = read_all(path, on_bad_line="skip", chunk_bytes=chunk_bytes)
    assert words == ["a", "b", "d"] and src.stats.bad_lines == 1
    assert src.stats.examples[0].startswith("line 3: ") and src.stats.rows_read == 4
    np.testing.assert_array_equal(matrix[-1], [5, 6])


def test_bad_utf8(tmp_path: Path) -> None:
    path = tmp_path / "u.txt"
    path.write_bytes(b"a 1 2\nb\xff 3 4\nc 5 6\n")
    with pytest.raises(FormatError, match=r"u\.txt:2: the word is not valid UTF-8 .*0xff") as info:
        read_all(path)
    assert "encoding_errors='replace'" in str(info.value)
    with pytest.raises(FormatError, match=r"u\.txt:2: .*UTF-8"):
        list(TextSource(path, options=QUIET).iter_words())
    _, words, _ = read_all(path, encoding_errors="replace")
    assert words == ["a", "b\ufffd", "c"]
    src, words, _ = read_all(path, on_bad_line="skip")
    assert words == ["a", "c"] and src.stats.bad_lines == 1


def test_header_disagrees_with_body(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "h.vec", ["3 2", "a 1 2", "b 3 4"])
    with pytest.raises(FormatError, match=r"h\.vec:1: the header declares 3 rows of 2 numbers, "
                                          r"which take at least 18 bytes, but the file has 12"):
        read_all(path)  # refused when opened: 3 rows cannot fit
    long = write_lines(tmp_path / "l.vec", ["3 2", "alpha 1 2", "beta 3 4"])
    with pytest.raises(FormatError, match=r"l\.vec:1: the header declares 3 rows but the file has"):
        read_all(long)  # they could: found out at the end
    src, words, _ = read_all(path, on_bad_line="skip")
    assert words == ["a", "b"] and "declares 3 rows" in src.stats.examples[0]
    assert read_all(path, limit=1)[1] == ["a"]  # a limit reads only part: no count check
    path = write_lines(tmp_path / "d.vec", ["2 3", "a 1 2", "b 3 4"])
    with pytest.raises(FormatError, match=r"d\.vec:1: the header declares 3 dimensions .* 2"):
        open_source(path, options=QUIET)


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b"\n \n", "empty"), (b"5 3\n", "header line but no vectors"),
     (b"\xef\xbb\xbf", "empty"), (b"justwords\nhere\n", "no vectors found")],
)
def test_empty_or_header_only(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "e.txt"
    path.write_bytes(content)
    with pytest.raises(FormatError, match=message):
        TextSource(path, options=QUIET)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"nope\.txt: no such file"):
        open_source(tmp_path / "nope.txt")
    with pytest.raises(FormatError, match="nope.txt: no such file"):
        TextSource(tmp_path / "nope.txt")
    with pytest.raises(FormatError, match="is a directory"):
        open_source(tmp_path)


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "t.txt.gz"
    data = gzip.compress(("\n".join(f"w{i} {i} {i}" for i in range(5000)) + "\n").encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"t\.txt\.gz .*gzip"):
        read_all(path, chunk_bytes=1024)


def test_progress_bar_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_lines(tmp_path / "p.txt", [f"w{i} {i}" for i in range(100)])
    src = open_source(path, options=ReadOptions(progress=True, chunk_bytes=64))
    assert sum(len(c.words) for c in src.iter_chunks()) == 100
    out = capsys.readouterr()
    assert out.out == "" and "p.txt" in out.err


@pytest.mark.parametrize("route", TEXT_ROUTES)
@pytest.mark.parametrize("chunk_bytes", [64 << 20, 20, 9])
def test_line_numbers_survive_blank_lines_and_chunks(
    tmp_path: Path, route: str, chunk_bytes: int
) -> None:
    path = write_lines(tmp_path / "n.txt", ["a 1 2", "", "", "b 3 4", "c 5 6", "", "d 7 x"])
    src = on_route(path, route, chunk_bytes=chunk_bytes)
    with pytest.raises(FormatError, match=r"n\.txt:7: value 2 of 2 is not a number"):
        list(src.iter_chunks())
    with pytest.raises(FormatError, match=r"n\.txt:7: value 2 of 2 is not a number"):
        list(src.iter_chunks(wanted={"d"}))


@pytest.mark.parametrize("chunk_bytes", [64 << 20, 10])
def test_wanted_prefix_of_a_spaced_word(tmp_path: Path, chunk_bytes: int) -> None:
    # "a" is wanted and is also the text before the first space of the word "a b"
    path = write_lines(tmp_path / "s.txt", ["a b 1 2", "x 0 0", "a 3 4", " a 5 6", "b 7 8"])
    for wanted, words, first in [({"a"}, ["a"], [3, 4]), ({"a b"}, ["a b"], [1, 2]),
                                 ({" a", "b"}, [" a", "b"], [5, 6])]:
        _, got, matrix = read_all(path, wanted=wanted, chunk_bytes=chunk_bytes)
        assert got == words
        np.testing.assert_array_equal(matrix[0], first)


# --- the streamed fast path (polars reads the whole file itself) ------------------------------
def _mixed_lines(n: int) -> list[str]:
    """n regular rows with, late in the file, what forces the exact path: blank lines, a word
    with spaces, a duplicate and a non-breaking space."""
    lines = [f"w{i} {i}.5 {-i}" for i in range(n)]
    lines[n - 40 : n - 40] = ["", "", ". . . 1 2", "w3 9 9", "a\u00a0b 3 4", ""]
    return lines


def _read(path: Path, route: str, **opts: object) -> tuple[TextSource, list[str], np.ndarray]:
    src = on_route(path, route, **opts)
    chunks = list(src.iter_chunks())
    return src, [w for c in chunks for w in c.words], np.concatenate([c.vectors for c in chunks])


@pytest.mark.parametrize("chunk_bytes", [64 << 20, 300, 1])
@pytest.mark.parametrize("header", [False, True])
def test_stream_hands_over_to_the_exact_path_at_the_right_line(
    tmp_path: Path, chunk_bytes: int, header: bool
) -> None:
    lines = _mixed_lines(400)
    if header:
        lines.insert(0, f"{sum(1 for x in lines if x.strip())} 2")
    path = write_lines(tmp_path / "m.txt", lines, end="\r\n")
    streamed = _read(path, "stream", chunk_bytes=chunk_bytes)
    assert ". . ." in streamed[1] and "a\u00a0b" in streamed[1]
    assert streamed[0].stats.duplicates == 1 and streamed[0].stats.rows_read == 403
    for route in ("gzip", "limit"):  # the piece path reads the same rows
        pieces = _read(path, route, chunk_bytes=chunk_bytes)
        assert streamed[1] == pieces[1]
        np.testing.assert_array_equal(streamed[2], pieces[2])
        assert streamed[0].stats == pieces[0].stats
    for route in TEXT_ROUTES:  # the words-only pass agrees too
        src = on_route(path, route, chunk_bytes=chunk_bytes)
        assert [w for ws in src.iter_words() for w in ws] == streamed[1]
        assert src.stats.rows_read == 403 and src.stats.duplicates == 1
    wanted = {"w3", "w250", "w399", ". . .", "a\u00a0b", "zz"}
    for route in TEXT_ROUTES:  # (a few wanted words take the piece path on every route)
        src = on_route(path, route, chunk_bytes=chunk_bytes)
        got = [(w, v.tolist()) for c in src.iter_chunks(wanted)
               for w, v in zip(c.words, c.vectors, strict=True)]
        assert [w for w, _ in got] == ["w3", "w250", ". . .", "a\u00a0b", "w399"]
        assert got[0][1] == [3.5, -3.0] and src.stats.rows_read == 403
    # half the rows wanted: the streamed path filters, the piece path finds the words first
    half = {f"w{i}" for i in range(0, 400, 2)} | {". . .", "zz"}
    subsets = [[w for c in on_route(path, route, chunk_bytes=chunk_bytes).iter_chunks(half)
                for w in c.words] for route in TEXT_ROUTES]
    assert subsets[0] == subsets[1] == subsets[2] and len(subsets[0]) == 201


@pytest.mark.parametrize("chunk_bytes", [64 << 20, 200])
def test_stream_errors_name_the_line_deep_in_the_file(tmp_path: Path, chunk_bytes: int) -> None:
    lines = [f"w{i} {i} 1" for i in range(500)]
    lines[300:300] = ["", "bad 1 x"]
    path = write_lines(tmp_path / "d.txt", lines)
    with pytest.raises(FormatError, match=r"d\.txt:302: value 2 of 2 is not a number"):
        _read(path, "stream", chunk_bytes=chunk_bytes)
    src, words, _ = _read(path, "stream", chunk_bytes=chunk_bytes, on_bad_line="skip")
    assert len(words) == 500 and src.stats.bad_lines == 1
    assert src.stats.examples == ["line 302: value 2 of 2 is not a number: b'x'"]


def test_stream_bad_utf8_deep_in_the_file(tmp_path: Path) -> None:
    body = b"".join(f"w{i} {i} 1\n".encode() for i in range(300))
    path = tmp_path / "u.txt"
    path.write_bytes(body + b"caf\xe9 1 2\n" + body.replace(b"w", b"v"))
    with pytest.raises(FormatError, match=r"u\.txt:301: the word is not valid UTF-8"):
        _read(path, "stream", chunk_bytes=100)
    _, words, _ = _read(path, "stream", chunk_bytes=100, encoding_errors="replace")
    assert len(words) == 601 and words[300] == "caf\ufffd"


def test_stream_is_used_for_plain_files_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    from metaprep.prep.readers import text_stream

    calls: list[str] = []
    real = text_stream.polars_rows

    def spy(path: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        calls.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(text_stream, "polars_rows", spy)
    plain = write_lines(tmp_path / "p.txt", [f"w{i} {i} 1" for i in range(50)])
    gz = tmp_path / "p.txt.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    for path in (plain, gz):
        assert len(read_all(path)[1]) == 50
    assert len(read_all(plain, limit=7)[1]) == 7
    assert calls == [str(plain)]


def test_stream_keeps_regular_rows_and_rereads_odd_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metaprep.prep.readers import text

    reread: list[int] = []
    real = TextSource._exact

    def spy(self: TextSource, lines: list[bytes], line_nos: list[int]):  # type: ignore[no-untyped-def]
        reread.extend(line_nos)
        return real(self, lines, line_nos)

    monkeypatch.setattr(text.TextSource, "_exact", spy)
    path = write_lines(tmp_path / "m.txt", _mixed_lines(400))
    _, words, _ = _read(path, "stream")
    assert len(words) == 402 and reread == [361, 362, 363, 366]  # blank lines and ". . ."


def test_line_cursor_reads_lines_forward(tmp_path: Path) -> None:
    from metaprep.prep.readers._io import LineCursor

    lines = [b"hdr"] + [f"w{i} {i}".encode() for i in range(3000)] + [b"", b"x 1\r", b"last 1"]
    path = tmp_path / "o.txt"
    path.write_bytes(b"\n".join(lines))
    cursor = LineCursor(path, 4)
    for k in (0, 1, 1, 2, 700, 2999, 3000, 3001, 3002):
        assert cursor.line(k) == lines[k + 1]
    with pytest.raises(ValueError, match="behind"):
        cursor.line(5)
    cursor.close()


def test_stream_takes_file_names_literally(tmp_path: Path) -> None:
    # as a glob pattern "v[12].txt" would name v1.txt: polars must read the file named
    write_lines(tmp_path / "v1.txt", ["x 9 9"])
    path = write_lines(tmp_path / "v[12].txt", [f"w{i} {i} 1" for i in range(30)])
    _, words, matrix = _read(path, "stream")
    assert words == [f"w{i}" for i in range(30)] and matrix[29].tolist() == [29.0, 1.0]


def test_stream_words_pass_names_a_short_row(tmp_path: Path) -> None:
    lines = [f"w{i} {i} 1" for i in range(500)]
    lines[400:400] = ["", "short 1"]
    path = write_lines(tmp_path / "w.txt", lines)
    src = TextSource(path, options=ReadOptions(progress=False, chunk_bytes=300))
    with pytest.raises(FormatError, match=r"w\.txt:402: expected a word and 2 numbers"):
        list(src.iter_words())
    skip = TextSource(path, options=ReadOptions(progress=False, on_bad_line="skip"))
    assert sum(len(ws) for ws in skip.iter_words()) == 500 and skip.stats.bad_lines == 1
