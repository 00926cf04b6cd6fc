from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metaprep.errors import ConfigError, VocabError
from metaprep.prep.oov import (
    OovSpec,
    RowStats,
    fill_constant,
    fill_map,
    fill_random,
    fill_subword,
    l2_rows,
    parse_oov,
    present_stats,
    source_rng,
)
from metaprep.prep.store import Store, StoreWriter

RNG = np.random.default_rng(1)


def _writer(tmp_path: Path, data: dict[str, np.ndarray], v: int) -> StoreWriter:
    w = StoreWriter(tmp_path / "s.h5", [f"w{i}" for i in range(v)])
    for name, x in data.items():
        w.add_source(name, x.shape[1])
        w.write_block(name, 0, x)
    return w


def test_parse_oov() -> None:
    assert parse_oov("mean") == OovSpec("mean")
    assert parse_oov("map:glove") == OovSpec("map", "glove")
    assert str(parse_oov("map:glove")) == "map:glove"
    for bad in ("nope", "mean:x", "map:", "zero:"):
        with pytest.raises(ConfigError, match="unknown OOV strategy"):
            parse_oov(bad)


def test_row_stats_and_l2() -> None:
    x = RNG.normal(3.0, 2.0, size=(500, 4))
    st = RowStats(4)
    st.update(x[:123])
    st.update(x[123:])
    assert st.count == 500
    np.testing.assert_allclose(st.mean, x.mean(axis=0))
    np.testing.assert_allclose(st.std, x.std(axis=0))
    y = l2_rows(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32))
    np.testing.assert_allclose(y, [[0.6, 0.8], [0.0, 0.0]])


def test_mean_fill_equals_mean_of_present_rows(tmp_path: Path) -> None:
    x = RNG.normal(size=(3000, 6)).astype(np.float32)
    present = RNG.random(3000) < 0.7
    x[~present] = 0
    with _writer(tmp_path, {"a": x}, 3000) as w:
        st = present_stats(w, "a", present)
        assert fill_constant(w, "a", present, st.mean) == int((~present).sum())
    got = Store(tmp_path / "s.h5").read_vectors("a")
    want = np.broadcast_to(x[present].mean(0), got[~present].shape)
    np.testing.assert_allclose(got[~present], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got[present], x[present])


def test_random_fill_has_source_statistics_and_is_seeded(tmp_path: Path) -> None:
    x = (RNG.normal(size=(20000, 3)) * [1.0, 5.0, 0.1] + [10.0, -2.0, 0.0]).astype(np.float32)
    present = np.zeros(20000, dtype=bool)
    present[:8000] = True
    x[~present] = 0
    outs = []
    for run in range(2):
        d = tmp_path / str(run)
        d.mkdir()
        with _writer(d, {"a": x}, 20000) as w:
            st = present_stats(w, "a", present)
            fill_random(w, "a", present, st, source_rng(7, "a"))
        outs.append(Store(d / "s.h5").read_vectors("a"))
    np.testing.assert_array_equal(outs[0], outs[1])
    filled = outs[0][~present]
    np.testing.assert_allclose(filled.mean(0), x[present].mean(0), atol=0.1)
    np.testing.assert_allclose(filled.std(0), x[present].std(0), rtol=0.05)
    assert not np.array_equal(source_rng(7, "a").random(3), source_rng(8, "a").random(3))
    assert not np.array_equal(source_rng(7, "a").random(3), source_rng(7, "b").random(3))


def test_map_perfectly_linear_pair(tmp_path: Path) -> None:
    v = 4000
    a = RNG.normal(size=(v, 5)).astype(np.float32)
    m = RNG.normal(size=(5, 3))
    b = (a @ m + [1.0, 2.0, 3.0]).astype(np.float32)
    pa, pb = np.ones(v, bool), RNG.random(v) < 0.6
    truth = b.copy()
    b[~pb] = 0
    with _writer(tmp_path, {"a": a, "b": b}, v) as w:
        fit = fill_map(w, "b", ["a"], {"a": pa, "b": pb})
    assert fit["r2"] > 0.9999 and fit["cosine"] > 0.9999
    assert fit["filled"] == int((~pb).sum()) and fit["unmapped"] == 0
    assert fit["heldout_words"] + fit["train_words"] == int(pb.sum())
    assert 0.05 < fit["heldout_words"] / pb.sum() < 0.15
    got = Store(tmp_path / "s.h5").read_vectors("b")
    np.testing.assert_allclose(got, truth, atol=1e-3)


def test_map_from_concatenation_and_unmapped_rows(tmp_path: Path) -> None:
    v = 3000
    a, c = RNG.normal(size=(v, 2)), RNG.normal(size=(v, 2))
    b = (a @ [[1.0], [2.0]] - c @ [[3.0], [0.5]]).astype(np.float32)
    pa = np.ones(v, bool)
    pc = np.ones(v, bool)
    pc[:100] = False  # these rows cannot be mapped (a predictor is missing)
    pb = np.zeros(v, bool)
    pb[1000:] = True
    with _writer(tmp_path, {"a": a.astype(np.float32), "b": b * pb[:, None],
                            "c": c.astype(np.float32)}, v) as w:
        fit = fill_map(w, "b", ["a", "c"], {"a": pa, "b": pb, "c": pc})
    assert fit["from"] == ["a", "c"] and fit["r2"] > 0.9999
    assert fit["unmapped"] == 100 and fit["filled"] == 900
    got = Store(tmp_path / "s.h5").read_vectors("b")
    assert not got[:100].any()
    np.testing.assert_allclose(got[100:], b[100:], atol=1e-3)


def test_map_needs_enough_shared_words(tmp_path: Path) -> None:
    v = 50
    a, b = RNG.normal(size=(v, 20)).astype(np.float32), RNG.normal(size=(v, 3)).astype(np.float32)
    pb = np.zeros(v, bool)
    pb[:10] = True
    with pytest.raises(VocabError, match="needs at least 21 shared words"):
        with _writer(tmp_path, {"a": a, "b": b}, v) as w:
            fill_map(w, "b", ["a"], {"a": np.ones(v, bool), "b": pb})
    assert not (tmp_path / "s.h5").exists()


def test_subword_fill_and_normalisation(tmp_path: Path) -> None:
    class FakeSubwords:
        def subword_vectors(self, words: list[str]) -> np.ndarray:
            return np.array([[len(w), 0.0] if w != "w7" else [0.0, 0.0] for w in words])

    x = np.zeros((10, 2), np.float32)
    present = np.zeros(10, bool)
    present[:5] = True
    x[:5] = 1.0
    vocab = [f"w{i}" for i in range(10)]
    with _writer(tmp_path, {"a": x}, 10) as w:
        filled, zero = fill_subword(w, "a", present, vocab, FakeSubwords(),
                                    normalize=lambda r: r * 2)
    assert (filled, zero) == (5, 1)
    got = Store(tmp_path / "s.h5").read_vectors("a")
    np.testing.assert_array_equal(got[5:], [[4, 0], [4, 0], [0, 0], [4, 0], [4, 0]])
    np.testing.assert_array_equal(got[:5], 1.0)
