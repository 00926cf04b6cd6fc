"""A store is validated when opened: each test builds a real store, damages one thing with
h5py, and expects one StoreError naming it (never a traceback, never silently wrong values)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from metaprep.cli import cli
from metaprep.errors import StoreError
from metaprep.prep.align import AlignOptions, SourceSpec, align
from metaprep.prep.readers.memory import MemorySource
from metaprep.prep.store import Store
from metaprep.prep.store import reader as store_module

RNG = np.random.default_rng(7)


def _store(tmp_path: Path) -> Path:
    """Two sources: ``a`` (4 dims) and ``b`` (2 dims, subword-filled, so it has /derived)."""
    data = {"a": (["x", "y", "z", "w"], RNG.normal(size=(4, 4))),
            "b": (["y", "q"], RNG.normal(size=(2, 2)))}

    def opener(spec: SourceSpec, options: Any) -> MemorySource:
        words, vecs = data[spec.name]
        compose = (lambda ws: np.ones((len(ws), 2))) if spec.name == "b" else None
        return MemorySource(words, vecs, path=spec.path, options=options, subwords=compose)

    specs = []
    for name, oov in (("a", "zero"), ("b", "subword")):
        (tmp_path / f"{name}.vec").write_text(name)
        specs.append(SourceSpec(name, tmp_path / f"{name}.vec", oov=oov))
    return align(specs, tmp_path / "s.h5", AlignOptions(progress=False), opener=opener)


def _replace(f: h5py.File, name: str, data: Any) -> None:
    del f[name]
    f.create_dataset(name, data=data)


def _nest(f: h5py.File) -> None:
    """Source b moved to /sources/x/b and listed as "x/b": a path inside the file, not a name."""
    f.create_group("sources/x")
    f.move("sources/b", "sources/x/b")
    f.attrs["sources"] = '["a", "x/b"]'


Edit = Callable[[h5py.File], None]
CASES: list[tuple[str, Edit, str]] = [
    ("json_keys", lambda f: f.attrs.__setitem__("_json_keys", "[oops"),
     r"attribute '_json_keys' of the root is not JSON"),
    ("json_attr", lambda f: f.attrs.__setitem__("command", "{not json"),
     r"attribute 'command' of the root is not valid JSON"),
    ("source_json_attr", lambda f: f["sources/a"].attrs.__setitem__("case_steps", "[1,"),
     r"attribute 'case_steps' of /sources/a is not valid JSON"),
    ("no_vocab", lambda f: f.__delitem__("vocab"), r"/vocab dataset is missing"),
    ("numeric_vocab", lambda f: _replace(f, "vocab", np.arange(5)), r"not a list of strings"),
    ("vocab_size", lambda f: f.attrs.__setitem__("vocab_size", 99),
     r"vocab_size attribute \(99\) is not the /vocab length 5"),
    ("sources_not_list", lambda f: f.attrs.__setitem__("sources", '{"a": 1}'),
     r"sources attribute is not a JSON list"),
    ("path_as_name", _nest, r"the sources attribute lists 'x/b', not a source name"),
    ("missing_group", lambda f: f.__delitem__("sources/b"),
     r"/sources/b is missing \(the sources attribute lists it\)"),
    ("no_vectors", lambda f: f.__delitem__("sources/a/vectors"),
     r"/sources/a/vectors is missing"),
    ("short_vectors", lambda f: _replace(f, "sources/a/vectors", np.zeros((4, 4), np.float32)),
     r"/sources/a/vectors has shape \(4, 4\); expected \(5, dim\)"),
    ("int_vectors", lambda f: _replace(f, "sources/a/vectors", np.zeros((5, 4), np.int32)),
     r"/sources/a/vectors has dtype int32"),
    ("short_present", lambda f: _replace(f, "sources/a/present", np.ones(3, bool)),
     r"/sources/a/present is missing or is not 5 booleans"),
    ("int_derived", lambda f: _replace(f, "sources/b/derived", np.ones(5, np.int8)),
     r"/sources/b/derived is missing or is not 5 booleans"),
    ("dim_attr", lambda f: f["sources/a"].attrs.__setitem__("dim", 3),
     r"/sources/a: the dim attribute \(3\) is not the vectors' width 4"),
    ("case_policy", lambda f: f.attrs.__setitem__("case_policy", "shout"),
     r"unknown case_policy 'shout'"),
    ("tokenizer", lambda f: f.attrs.__setitem__("tokenizer", '{"colour": 1}'),
     r"bad tokenizer attribute"),
    # train would tokenize the task data with it: one crafted line would take hours
    ("tokenizer_pattern", lambda f: f.attrs.__setitem__("tokenizer", '{"pattern": "(?:a+)+$"}'),
     r"the tokenizer pattern '\(\?:a\+\)\+\$' has nested repetition"),
    ("nan", lambda f: f["sources/b/vectors"].__setitem__((3, 1), np.nan),
     r"source 'b': row 3 holds a NaN or infinite value"),
    ("inf", lambda f: f["sources/a/vectors"].__setitem__((0, 0), -np.inf),
     r"source 'a': row 0 holds a NaN or infinite value"),
]


@pytest.mark.parametrize(("edit", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_tampered_store_is_one_store_error(tmp_path: Path, edit: Edit, message: str) -> None:
    path = _store(tmp_path)
    with Store(path) as s:  # intact, it opens
        assert s.sources == ["a", "b"] and s.vocab_size == 5
    with h5py.File(path, "r+") as f:
        edit(f)
    with pytest.raises(StoreError, match=message) as info:
        Store(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_large_store_checks_values_block_by_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _store(tmp_path)
    with h5py.File(path, "r+") as f:
        f["sources/a/vectors"][3, 2] = np.nan
    monkeypatch.setattr(store_module, "CHECK_AT_OPEN_BYTES", 0)  # as if it were big
    with Store(path) as s:
        assert s.vectors("a")[0:3].shape == (3, 4)  # clean rows read fine
        assert s.read_vectors("a", np.array([2, 0])).shape == (2, 4)
        with pytest.raises(StoreError, match=r"source 'a': row 3 holds a NaN"):
            s.vectors("a")[2:5]
        with pytest.raises(StoreError, match=r"source 'a': row 3 holds a NaN"):
            s.read_vectors("a", np.array([4, 3]))
        with pytest.raises(StoreError, match=r"source 'a': row 3 holds a NaN"):
            s.read_vectors("a")


@pytest.mark.parametrize("dataset", ["sources/a/vectors", "sources/a/present",
                                     "sources/b/derived"])
def test_damaged_bytes_are_an_error_not_other_numbers(tmp_path: Path, dataset: str) -> None:
    path = _store(tmp_path)
    with h5py.File(path, "r") as f:
        assert f[dataset].fletcher32  # every chunk carries a checksum
        offset = f[dataset].id.get_chunk_info(0).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 1] ^= 0x10  # still a finite float / a valid bool: only the checksum knows
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"cannot read|cannot be read") as info:
        with Store(path) as s:
            s.present("a"), s.derived("b")
    assert "filter returned failure" in str(info.value)  # the checksum did not match


def test_changed_vocab_word_fails_its_checksum(tmp_path: Path) -> None:
    path = _store(tmp_path)
    with h5py.File(path, "r+") as f:
        f["vocab"][2] = "zz"  # a new, distinct word: only the checksum knows
    with Store(path) as s, pytest.raises(StoreError, match="does not match its vocab_sha256"):
        _ = s.vocab
    with h5py.File(path, "r+") as f:
        del f.attrs["vocab_sha256"]  # stores written before it: not checked
    with Store(path) as s:
        assert s.vocab[2] == "zz"


def test_duplicate_vocab_word_is_refused(tmp_path: Path) -> None:
    path = _store(tmp_path)
    with h5py.File(path, "r+") as f:
        words = f["vocab"].asstr()[...].tolist()
        f["vocab"][1] = words[0]
    with Store(path) as s, pytest.raises(StoreError, match="holds a word twice"):
        _ = s.vocab


@pytest.mark.parametrize("command", ["inspect", "export-vectors", "train"])
def test_commands_on_a_tampered_store_fail_with_one_line(tmp_path: Path, command: str) -> None:
    path = _store(tmp_path)
    with h5py.File(path, "r+") as f:
        f["sources/b/vectors"][0, 0] = np.inf
    data = tmp_path / "t.tsv"
    data.write_text("text\tlabel\nx y\t0\nz w\t1\n")
    args = {"inspect": ["inspect", str(path)],
            "export-vectors": ["export-vectors", str(path), "a", "-o", str(tmp_path / "o.vec")],
            "train": ["train", "--store", str(path), "--train", str(data), "--dev", str(data),
                      "-o", str(tmp_path / "run")]}[command]
    res = CliRunner().invoke(cli, args)
    assert isinstance(res.exception, StoreError), res.output
    assert "source 'b': row 0 holds a NaN or infinite value" in str(res.exception)
    assert not (tmp_path / "o.vec").exists() and not (tmp_path / "run" / "model.pt").exists()
