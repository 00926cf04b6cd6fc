"""The sha256 align records: hashed alongside the parse, always of the whole file on disk."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import gensim
import numpy as np
import pytest

from metaprep import checksum
from metaprep.errors import FormatError
from metaprep.prep import sourcehash
from metaprep.prep.align import AlignOptions, SourceSpec, align
from metaprep.prep.sourcehash import SourceHashes
from metaprep.prep.store import Store

GENSIM_DATA = Path(os.path.dirname(gensim.__file__)) / "test" / "test_data"


@pytest.fixture(autouse=True)
def _no_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test hashes for real (the per-process memo would hide a wrong digest)."""
    monkeypatch.setattr(checksum, "_MEMO", {})


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sources(tmp_path: Path) -> list[SourceSpec]:
    """One source per format, the text ones also gzipped."""
    gz = tmp_path / "glove.txt.gz"
    gz.write_bytes(gzip.compress((GENSIM_DATA / "test_glove.txt").read_bytes()))
    words = (GENSIM_DATA / "test_glove.txt").read_text().split("\n")[:20]
    vocab = tmp_path / "words.list"
    vocab.write_text("\n".join(w.split(" ")[0] for w in words) + "\n")
    np.save(tmp_path / "m.npy", np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32))
    from safetensors.numpy import save_file

    save_file({"emb": np.ones((20, 2), np.float32)}, str(tmp_path / "t.safetensors"))
    return [
        SourceSpec("glove", GENSIM_DATA / "test_glove.txt"),
        SourceSpec("vec", GENSIM_DATA / "lee_fasttext.vec"),
        SourceSpec("gz", gz),
        SourceSpec("w2v", GENSIM_DATA / "euclidean_vectors.bin"),
        SourceSpec("ft", GENSIM_DATA / "lee_fasttext.bin"),
        SourceSpec("npy", tmp_path / "m.npy", vocab_file=vocab),
        SourceSpec("st", tmp_path / "t.safetensors", vocab_file=vocab),
    ]


@pytest.mark.parametrize(("vocab", "limit"), [
    (("union",), None),  # every row read
    (("union",), 2),  # the readers stop after two rows
    (("intersection",), None),  # a words pass first, then the vectors: still hashed once
    ("words", None),  # a target vocabulary: readers skip unwanted rows
])
def test_recorded_sha256_is_the_whole_files(tmp_path: Path, vocab: object, limit: int | None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    specs = _sources(tmp_path)
    hashed: list[Path] = []

    def counted(path: Path, **kw: object) -> str:
        hashed.append(path)
        return checksum.file_sha256(path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(sourcehash, "file_sha256", counted)
    if vocab == "words":
        (tmp_path / "target.txt").write_text("the\nof\n")
        vocab = (str(tmp_path / "target.txt"),)
    out = align(specs, tmp_path / "s.h5",
                AlignOptions(vocab=vocab, limit=limit, progress=False))  # type: ignore[arg-type]
    with Store(out) as store:
        for s in specs:
            attrs = store.source_attrs(s.name)
            assert attrs["sha256"] == _sha(s.path), s.name
            if limit is not None:
                assert attrs["rows_read"] == limit
    assert sorted(hashed) == sorted(s.path for s in specs)  # each file hashed once
    # gzip: the digest is of the compressed file, as sha256sum would give
    assert _sha(specs[2].path) != hashlib.sha256(gzip.decompress(specs[2].path.read_bytes())
                                                 ).hexdigest()


def test_hashes_in_order_and_a_path_given_twice(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"x" * 5_000_000)
    b.write_bytes(b"")
    with SourceHashes([a, b, a]) as hashes:
        assert hashes.digest(b) == _sha(b)
        assert hashes.digest(a) == _sha(a)
        with pytest.raises(KeyError):
            hashes.digest(tmp_path / "c")


def test_unreadable_source_is_a_format_error(tmp_path: Path) -> None:
    missing = tmp_path / "gone.txt"
    with SourceHashes([missing]) as hashes, pytest.raises(FormatError, match="gone.txt") as info:
        hashes.digest(missing)
    assert "cannot read to hash it" in str(info.value)


def test_close_stops_the_thread_and_digest_does_not_hang(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"\0" * (64 << 20))
    hashes = SourceHashes([big, big.with_name("other")])
    hashes.close()
    assert not hashes._thread.is_alive()
    # stopped before it got there, or (on a fast machine) it got there and found no file
    with pytest.raises((RuntimeError, FormatError)):
        hashes.digest(big.with_name("other"))
