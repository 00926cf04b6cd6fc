from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gensim
import numpy as np
import pytest
from click.testing import CliRunner
from gensim.models import KeyedVectors

from metaprep.cli import cli
from metaprep.errors import ConfigError, StoreError
from metaprep.prep.align import AlignOptions, SourceSpec, align
from metaprep.prep.exportvec import export_vectors
from metaprep.prep.readers.memory import MemorySource
from metaprep.prep.store import Store

GENSIM_DATA = Path(os.path.dirname(gensim.__file__)) / "test" / "test_data"
RNG = np.random.default_rng(3)


def _store(tmp_path: Path, dtype: str = "float32") -> Path:
    data = {"a": (["the", "Ünïcode", "two words", "x"], RNG.normal(size=(4, 3)) * 1e-3),
            "b": (["x", "y"], RNG.normal(size=(2, 2)) * 1e3)}
    specs = []
    for name in data:
        (tmp_path / f"{name}.vec").write_text(name)
        specs.append(SourceSpec(name, tmp_path / f"{name}.vec", oov="mean"))

    def opener(spec: SourceSpec, options: Any) -> MemorySource:
        words, vecs = data[spec.name]
        return MemorySource(words, vecs, path=spec.path, options=options)

    return align(specs, tmp_path / "s.h5", AlignOptions(dtype=dtype, progress=False),
                 opener=opener)


@pytest.mark.parametrize("binary", [False, True])
def test_round_trip_through_gensim(tmp_path: Path, binary: bool) -> None:
    path = _store(tmp_path)
    out = tmp_path / ("a.bin" if binary else "a.txt")
    r = export_vectors(path, out, source="a", binary=binary)
    assert r["rows"] == 4 and r["skipped_whitespace"] == 1
    assert r["skipped_examples"] == ["two words"]
    kv = KeyedVectors.load_word2vec_format(out, binary=binary)
    with Store(path) as s:
        vecs, vocab = s.read_vectors("a"), s.vocab
    assert kv.index_to_key == [w for w in vocab if w != "two words"]
    for i, w in enumerate(vocab):
        if w != "two words":
            np.testing.assert_array_equal(kv[w], vecs[i])  # exact float32 values


def test_concat_and_only_present(tmp_path: Path) -> None:
    path = _store(tmp_path, dtype="float16")
    out = tmp_path / "c.txt"
    r = export_vectors(path, out, concat=True, only_present=True)
    assert (r["rows"], r["dim"], r["sources"]) == (1, 5, ["a", "b"])  # only "x" is in both
    kv = KeyedVectors.load_word2vec_format(out)
    with Store(path) as s:
        i = s.vocab.index("x")
        want = np.concatenate([s.read_vectors("a")[i], s.read_vectors("b")[i]])
    np.testing.assert_array_equal(kv["x"], want)
    r = export_vectors(path, out, source="b", only_present=True)
    assert r["rows"] == 2


def test_errors_and_atomicity(tmp_path: Path) -> None:
    path = _store(tmp_path)
    out = tmp_path / "o.txt"
    with pytest.raises(ConfigError, match="one source or"):
        export_vectors(path, out)
    with pytest.raises(ConfigError, match="one source or"):
        export_vectors(path, out, source="a", concat=True)
    with pytest.raises(StoreError, match="no source named 'zz'"):
        export_vectors(path, out, source="zz")
    with pytest.raises(StoreError, match="cannot write"):
        export_vectors(path, tmp_path / "no_dir" / "o.txt", source="a")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_the_output_is_never_the_store(tmp_path: Path) -> None:
    path = _store(tmp_path)
    before = path.read_bytes()
    (tmp_path / "link.txt").symlink_to(path)
    for out in (path, tmp_path / "link.txt"):  # -o STORE STORE used to replace the store
        with pytest.raises(ConfigError, match="the output .output. is the input store"):
            export_vectors(path, out, source="a")
    assert path.read_bytes() == before
    with pytest.raises(ConfigError, match="a device, pipe or socket"):
        export_vectors(path, os.devnull, source="a")


def test_cli_on_aligned_real_files(tmp_path: Path) -> None:
    store, out = tmp_path / "s.h5", tmp_path / "ft.bin"
    runner = CliRunner()
    res = runner.invoke(cli, ["align", f"ft={GENSIM_DATA / 'lee_fasttext.vec'}",
                              f"g={GENSIM_DATA / 'test_glove.txt'}", "-q", "-o", str(store)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["export-vectors", str(store), "ft", "--binary", "--only-present",
                              "-q", "-o", str(out)])
    assert res.exit_code == 0 and "wrote 1,762 vectors of dim 10" in res.output
    ours = KeyedVectors.load_word2vec_format(out, binary=True)
    original = KeyedVectors.load_word2vec_format(GENSIM_DATA / "lee_fasttext.vec")
    assert ours.index_to_key == original.index_to_key
    np.testing.assert_array_equal(ours.vectors, original.vectors)
