from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from metaprep.errors import StoreError
from metaprep.prep.align import AlignOptions, SourceSpec, align
from metaprep.prep.readers.memory import MemorySource
from metaprep.prep.store import FORMAT_VERSION, Store, StoreWriter, file_sha256

DOC = Path(__file__).resolve().parents[2] / "docs" / "store.md"
RNG = np.random.default_rng(4)


def _store(tmp_path: Path) -> Path:
    """A store using every optional feature: word list vocab, map and subword OOV."""
    (tmp_path / "words.txt").write_text("\n".join(f"w{i}" for i in range(300)) + "\nextra\n")
    a = RNG.normal(size=(300, 4)).astype(np.float32)
    data = {"a": ([f"w{i}" for i in range(300)], a),
            "b": ([f"w{i}" for i in range(0, 300, 2)], a[::2] @ RNG.normal(size=(4, 3))),
            "c": (["w1", "w1"], np.ones((2, 2)))}

    def opener(spec: SourceSpec, options: Any) -> MemorySource:
        words, vecs = data[spec.name]
        compose = (lambda ws: np.ones((len(ws), 2))) if spec.name == "c" else None
        return MemorySource(words, vecs, path=spec.path, options=options, subwords=compose)

    specs = []
    for name, oov in (("a", "zero"), ("b", "map:a"), ("c", "subword")):
        (tmp_path / f"{name}.vec").write_text(name)
        specs.append(SourceSpec(name, tmp_path / f"{name}.vec", oov=oov))
    return align(specs, tmp_path / "s.h5", AlignOptions(vocab=(str(tmp_path / "words.txt"),),
                                                        progress=False), opener=opener)


def _documented(section: str) -> dict[str, str]:
    """attribute -> type from the table under ``### <section>`` in docs/store.md."""
    text = DOC.read_text().split(f"### {section}")[1].split("\n#")[0]
    rows = re.findall(r"^\| `(\w+)` \| ([\w?]+) \|", text, flags=re.M)
    assert rows, f"no attribute table under {section}"
    return dict(rows)


def _check_attr(obj: h5py.HLObject, key: str, kind: str, where: str) -> None:
    optional = kind.endswith("?")
    kind = kind.rstrip("?")
    if key not in obj.attrs:
        assert optional, f"{where}: documented attribute {key} is missing"
        return
    value = obj.attrs[key]
    json_keys = json.loads(obj.attrs["_json_keys"])
    if kind == "JSON":
        assert key in json_keys or key == "_json_keys", f"{where}: {key} not listed in _json_keys"
        json.loads(value)
    elif kind == "str":
        assert isinstance(value, str), f"{where}: {key} is {type(value)}"
    elif kind == "int":
        assert isinstance(value, (int, np.integer)), f"{where}: {key} is {type(value)}"
    else:
        raise AssertionError(f"unknown documented type {kind}")


def test_schema_matches_the_documentation(tmp_path: Path) -> None:
    path = _store(tmp_path)
    root_doc, source_doc = _documented("Root"), _documented("Per source")
    with h5py.File(path, "r") as f:
        assert set(f.keys()) == {"vocab", "sources"}
        v = f["vocab"].shape[0]
        assert v == 301 and h5py.check_string_dtype(f["vocab"].dtype).encoding == "utf-8"
        for key, kind in root_doc.items():
            _check_attr(f, key, kind, "root")
        assert set(f.attrs) <= set(root_doc), "undocumented root attributes"
        assert json.loads(f.attrs["sources"]) == ["a", "b", "c"] == list(f["sources"])
        for name, g in f["sources"].items():
            # derived: only for sources filled by subword or map (b maps, c composes)
            expected = {"vectors", "present"} | ({"derived"} if name in ("b", "c") else set())
            assert set(g.keys()) == expected
            if "derived" in g:
                derived = g["derived"][...]
                assert derived.dtype == bool and not (derived & g["present"][...]).any()
                assert g.attrs["derived_count"] == derived.sum()
            vec, present = g["vectors"], g["present"]
            assert vec.shape == (v, g.attrs["dim"]) and vec.dtype == np.float32
            assert vec.chunks is not None and vec.chunks[1] == g.attrs["dim"]
            assert present.shape == (v,) and present.dtype == bool
            for key, kind in source_doc.items():
                _check_attr(g, key, kind, name)
            assert set(g.attrs) <= set(source_doc), f"undocumented attributes in {name}"
            assert g.attrs["present_count"] == present[...].sum()
        assert "map_fit" in f["sources"]["b"].attrs
        assert "subword_all_zero" in f["sources"]["c"].attrs
        assert f["sources"]["c"].attrs["duplicates"] == 1


def test_plain_h5py_snippet_from_the_docs(tmp_path: Path) -> None:
    path = _store(tmp_path)
    snippet = DOC.read_text().split("```python\n")[1].split("```")[0]
    assert len(snippet.strip().splitlines()) <= 14
    program = (f"STORE = {str(path)!r}\n{snippet}\nimport sys\n"
               "assert not any(m.startswith('metaprep') for m in sys.modules)\n"
               "print(json.dumps({'vocab': list(vocab), 'vectors': vectors.tolist(), "
               "'present': present.tolist(), 'case_steps': case_steps}))\n")
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    with Store(path) as s:
        assert got["vocab"] == s.vocab
        np.testing.assert_array_equal(np.array(got["vectors"], dtype=np.float32),
                                      s.read_vectors("a"))
        assert got["present"] == s.present("a").tolist()
        assert got["case_steps"] == s.source_attrs("a")["case_steps"]


def test_row_sink_any_order_last_write_wins(tmp_path: Path) -> None:
    v, dim = 5000, 7
    truth = RNG.normal(size=(v, dim)).astype(np.float32)
    with StoreWriter(tmp_path / "s.h5", [str(i) for i in range(v)]) as w:
        w.add_source("a", dim, dtype="float16")
        sink = w.row_sink("a")
        sink.write(np.arange(0, 1000), truth[:1000])  # a run from row 0: written directly
        rest = RNG.permutation(np.arange(1000, v))
        for part in np.array_split(rest, 13):
            sink.write(part, truth[part])
        sink.write(np.array([3, 4500]), np.zeros((2, dim)))  # rewrites: the latest counts
        truth[[3, 4500]] = 0
        sink.finish()
        assert not list(tmp_path.glob("*.stage"))
    with Store(tmp_path / "s.h5") as s:
        np.testing.assert_allclose(s.read_vectors("a"), truth, rtol=1e-3, atol=1e-3)
        rows = np.array([4999, 3, 3, 17])
        np.testing.assert_allclose(s.read_vectors("a", rows), truth[rows], rtol=1e-3, atol=1e-3)


def test_growing_vocabulary(tmp_path: Path) -> None:
    """vocab=None: sources grow with the vocabulary; a source added late starts at the current
    size; rows never written read as zeros and not present."""
    a = RNG.normal(size=(10, 3)).astype(np.float32)
    with StoreWriter(tmp_path / "s.h5", None, attrs={"seed": 1}) as w:
        w.add_source("a", 3)
        sink = w.row_sink("a")
        for start in (0, 4):  # rows 0..3, then 4..9: each a direct write past the end
            w.grow(start + 4 if start == 0 else 10)
            sink.write(np.arange(start, w.vocab_size), a[start : w.vocab_size])
        sink.finish()
        w.add_source("b", 2, dtype="float16")
        w.grow(12)
        sink = w.row_sink("b")
        sink.write(np.array([11]), np.ones((1, 2)))  # staged: not a run from row 0
        sink.finish()
        with pytest.raises(ValueError, match="11 words for 12 rows"):
            w.set_vocab([str(i) for i in range(11)])
        w.set_vocab([f"w{i}" for i in range(13)])
        w.set_present("a", np.arange(13) < 10)
    with Store(tmp_path / "s.h5") as s:
        assert s.vocab == [f"w{i}" for i in range(13)] and s.attrs["vocab_size"] == 13
        np.testing.assert_array_equal(s.read_vectors("a")[:10], a)
        assert not s.read_vectors("a")[10:].any() and s.present("a").sum() == 10
        assert s.read_vectors("b").shape == (13, 2) and s.read_vectors("b")[11].tolist() == [1, 1]
        assert s.attrs["seed"] == 1


def test_growing_store_closed_without_vocab_leaves_nothing(tmp_path: Path) -> None:
    w = StoreWriter(tmp_path / "s.h5", None)
    w.add_source("a", 2)
    with pytest.raises(ValueError, match="before set_vocab"):
        w.close()
    assert list(tmp_path.iterdir()) == []
    with StoreWriter(tmp_path / "f.h5", ["x"]) as fixed, pytest.raises(ValueError):
        fixed.grow(2)


def test_abort_removes_temp_and_staging_files(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with StoreWriter(tmp_path / "s.h5", ["a", "b"]) as w:
            w.add_source("x", 2)
            w.row_sink("x").write(np.array([1]), np.ones((1, 2)))
            raise RuntimeError("midway")
    assert list(tmp_path.iterdir()) == []


def test_store_rejects_foreign_files_and_versions(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["x"] = 1
    with pytest.raises(StoreError, match="not a metaprep store"):
        Store(tmp_path / "other.h5")
    with StoreWriter(tmp_path / "s.h5", ["a"]) as w:
        w.set_attrs({"format_version": FORMAT_VERSION + 1})
    with pytest.raises(StoreError, match="re-run `metaprep align`"):
        Store(tmp_path / "s.h5")


def test_file_sha256(tmp_path: Path) -> None:
    p = tmp_path / "f.bin"
    p.write_bytes(RNG.bytes(10_000))
    assert file_sha256(p, block=999) == hashlib.sha256(p.read_bytes()).hexdigest()


def test_derived_mask_defaults_to_none_and_round_trips(tmp_path) -> None:
    import numpy as np

    from metaprep.prep.store import Store, StoreWriter

    path = tmp_path / "d.h5"
    with StoreWriter(path, ["a", "b", "c"]) as w:
        w.add_source("x", 2)
        w.add_source("y", 2)
        w.set_derived("y", np.array([False, True, False]))
    with Store(path) as s:
        assert s.derived("x").tolist() == [False, False, False]
        assert s.derived("y").tolist() == [False, True, False]


def test_file_sha256_is_remembered_until_the_file_changes(tmp_path) -> None:
    import hashlib
    import os

    from metaprep.checksum import file_sha256

    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    assert file_sha256(f) == hashlib.sha256(b"abc").hexdigest()
    f.write_bytes(b"abcd")
    os.utime(f, ns=(1, 10**18))  # a new mtime, whatever the clock's resolution
    assert file_sha256(f) == hashlib.sha256(b"abcd").hexdigest()
