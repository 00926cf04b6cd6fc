from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from metaprep.errors import ConfigError, ModelError, StoreError
from metaprep.ids import PAD_ID, UNK_ID
from metaprep.learn.config import RunConfig
from metaprep.learn.model import MetaEmbeddingClassifier, build_model, load_tables
from metaprep.prep.store import Store, StoreWriter

V = 30  # words; ids run 0..V+1
DIMS = [5, 7, 3]
METHODS = ["dme", "cdme", "concat", "sum", "single"]
ENCODERS = ["bilstm", "pool", "cnn"]


def make_model(method: str = "dme", encoder: str = "bilstm", *, seed: int = 0,
               **kw: object) -> MetaEmbeddingClassifier:
    torch.manual_seed(seed)
    n = 1 if method == "single" else len(DIMS)
    names, dims = ["a", "b", "c"][:n], DIMS[:n]
    kw = {"cnn_filters": 6, "cnn_widths": [1, 2, 3], **kw}
    cfg = RunConfig(method=method, sources=names, source_dims=dims, vocab_size=V, proj_dim=8,
                    context_hidden=2, hidden=8, mlp_hidden=8, num_labels=3, encoder=encoder,
                    **kw)  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(123)
    tables = [torch.randn(V + 2, d, generator=g) for d in dims]
    for t in tables:
        t[:2] = 0
    present = torch.rand(V + 2, n, generator=g) > 0.35
    present[:2] = False
    present[5] = False  # id 5: a word no source has
    return MetaEmbeddingClassifier(cfg, tables, present).eval()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(2, V + 2, (4, 9), generator=g)
    lengths = torch.tensor([9, 4, 1, 6])
    ids[1, 2] = UNK_ID
    ids[3, 0] = 5
    for i, n in enumerate(lengths.tolist()):
        ids[i, n:] = PAD_ID
    return ids, lengths


@pytest.mark.parametrize(("method", "encoder"), list(itertools.product(METHODS, ENCODERS)))
def test_sentence_alone_equals_sentence_in_padded_batch(method: str, encoder: str) -> None:
    model = make_model(method, encoder)
    ids, lengths = batch()
    with torch.no_grad():
        full = model(ids, lengths)
        for i, n in enumerate(lengths.tolist()):
            alone = model(ids[i : i + 1, :n], lengths[i : i + 1])
            assert (alone[0] - full[i]).abs().max().item() <= 1e-6
        # whatever sits in the padding (ids or the padding row of the tables) is never read
        noisy = ids.clone()
        for i, n in enumerate(lengths.tolist()):
            noisy[i, n:] = torch.randint(2, V + 2, (ids.shape[1] - n,))
        assert torch.equal(model(noisy, lengths), full)
        for k in range(model.front.num_sources):
            model.front.table(k)[PAD_ID] = 100.0
        assert torch.equal(model(ids, lengths), full)


@pytest.mark.parametrize("widths", [[1, 2, 3], [4], [2, 5]])
def test_cnn_random_padding_short_and_empty_texts(widths: list[int]) -> None:
    """Texts shorter than the widest filter (1 token against width 5) and empty texts: a
    sentence alone equals its row in a batch padded to a random length with random ids."""
    model = make_model("sum", "cnn", cnn_widths=widths)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for _ in range(20):
            lengths = torch.randint(0, 7, (5,), generator=g)
            lengths[0] = 1  # shorter than any width above 1
            lengths[1] = 0  # an empty text: read as one padding token, as the other encoders do
            T = int(lengths.max()) + int(torch.randint(0, 6, (1,), generator=g))
            ids = torch.randint(1, V + 2, (5, max(T, 1)), generator=g)
            for i, n in enumerate(lengths.tolist()):
                ids[i, n:] = PAD_ID if i % 2 else ids[i, n:]  # padding ids or leftover garbage
            full = model(ids, lengths)
            for i, n in enumerate(lengths.tolist()):
                alone = model(ids[i : i + 1, : max(n, 1)], lengths[i : i + 1])
                assert (alone[0] - full[i]).abs().max().item() <= 1e-6
        empty = model(torch.zeros(1, 1, dtype=torch.int64), torch.tensor([0]))
        assert torch.isfinite(empty).all()
        # an empty text is a text of one padding token, whatever the encoder
        assert torch.equal(empty, model(torch.zeros(1, 4, dtype=torch.int64), torch.tensor([0])))


def test_cnn_windows_see_each_ngram() -> None:
    """The wide convolution reads every word at every tap: a bigram filter tells "a b" from
    "b a" (pooling cannot), and a one-token text still fills a width-3 window."""
    model = make_model("sum", "cnn", cnn_widths=[2])
    pool = make_model("sum", "pool")
    ab, ba, n = torch.tensor([[7, 9]]), torch.tensor([[9, 7]]), torch.tensor([2])
    with torch.no_grad():
        assert not torch.allclose(model(ab, n), model(ba, n))
        assert torch.allclose(pool(ab, n), pool(ba, n))
        wide = make_model("sum", "cnn", cnn_widths=[3])
        one = wide.encode(torch.tensor([[7]]), torch.tensor([1])).sentence
        assert one.shape == (1, 6) and (one > 0).any()


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("method", METHODS)
def test_pairs_padding_invariant(method: str, encoder: str) -> None:
    model = make_model(method, encoder, pair=True)
    ids, lengths = batch()
    ids_b, lengths_b = ids.flip(0), lengths.flip(0)
    with torch.no_grad():
        full = model(ids, lengths, ids_b, lengths_b)
        for i in range(4):
            n, m = int(lengths[i]), int(lengths_b[i])
            alone = model(ids[i : i + 1, :n], lengths[i : i + 1], ids_b[i : i + 1, :m],
                          lengths_b[i : i + 1])
            assert (alone[0] - full[i]).abs().max().item() <= 1e-6
    with pytest.raises(ModelError):
        model(ids, lengths)


@pytest.mark.parametrize("method", ["dme", "cdme"])
def test_softmax_weights_are_a_distribution_over_present_sources(method: str) -> None:
    model = make_model(method)
    ids, lengths = batch()
    with torch.no_grad():
        enc = model.encode(ids, lengths)
    assert enc.weights is not None
    w = enc.weights  # (B,T,S)
    present = model.front.present[ids]
    valid = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
    covered = valid & present.any(-1)
    assert (w >= 0).all()
    assert torch.allclose(w.sum(-1)[covered], torch.ones(int(covered.sum())), atol=1e-6)
    assert (w[~present] == 0).all()  # absent sources, padding, UNK: exactly zero
    assert (w[~valid] == 0).all()
    assert (w[covered & (present.sum(-1) == 1)].max(-1).values == 1).all()


def test_without_mask_missing_absent_sources_share_the_weight() -> None:
    model = make_model("dme", mask_missing=False)
    ids, lengths = batch()
    with torch.no_grad():
        w = model.encode(ids, lengths).weights
    assert w is not None
    valid = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
    absent = ~model.front.present[ids] & valid[..., None]
    assert (w[absent] > 0).any()
    assert torch.allclose(w.sum(-1)[valid], torch.ones(int(valid.sum())), atol=1e-6)


def test_sigmoid_gating_zero_on_absent() -> None:
    model = make_model("cdme", gating="sigmoid")
    ids, lengths = batch()
    with torch.no_grad():
        w = model.encode(ids, lengths).weights
    assert w is not None
    present = model.front.present[ids]
    assert ((w >= 0) & (w <= 1)).all()
    assert (w[~present] == 0).all() and (w[present] > 0).all()


@pytest.mark.parametrize("method", METHODS)
def test_unk_vector_padding_zeros_and_shapes(method: str) -> None:
    model = make_model(method)
    ids, lengths = batch()
    with torch.no_grad():
        enc = model.encode(ids, lengths)
    d = sum(DIMS) if method == "concat" else 8
    assert enc.meta.shape == (4, 9, d)
    assert enc.sentence.shape == (4, 16)  # 2 * hidden
    assert torch.equal(enc.meta[1, 2], model.front.unk.detach())  # UNK id 1
    assert torch.equal(enc.meta[3, 0], model.front.unk.detach())  # a word no source has
    valid = torch.arange(9)[None, :] < lengths[:, None]
    assert (enc.meta[~valid] == 0).all()


def test_concat_and_sum_baselines_use_present_sources_only() -> None:
    ids, lengths = batch()
    concat = make_model("concat", source_norm="none")  # raw rows: the mask alone is under test
    with torch.no_grad():
        meta = concat.encode(ids, lengths).meta
    word = int(ids[0, 0])
    expect = torch.cat([concat.front.table(k)[word] * concat.front.present[word, k]
                        for k in range(3)])
    assert torch.allclose(meta[0, 0], expect)
    summed = make_model("sum", source_norm="none")
    with torch.no_grad():
        meta = summed.encode(ids, lengths).meta
        f = summed.front
        expect = sum(f.proj[k](f.table(k)[word]) * f.present[word, k] for k in range(3))
    assert torch.allclose(meta[0, 0], expect, atol=1e-6)


@pytest.mark.parametrize("method", ["dme", "cdme", "concat"])
def test_sources_get_no_gradient_and_unk_is_learned(method: str) -> None:
    model = make_model(method).train()
    tables = [model.front.table(k).clone() for k in range(model.front.num_sources)]
    assert not any(p is model.front.table(0) for p in model.parameters())
    assert all(not model.front.table(k).requires_grad for k in range(model.front.num_sources))
    assert not any(k.startswith("front.table") or k == "front.present"
                   for k in model.state_dict())
    ids, lengths = batch()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    unk_before = model.front.unk.detach().clone()
    loss = torch.nn.functional.cross_entropy(model(ids, lengths), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert model.front.unk.grad is not None and model.front.unk.grad.abs().sum() > 0
    opt.step()
    assert not torch.equal(model.front.unk.detach(), unk_before)
    for k, t in enumerate(tables):
        assert torch.equal(model.front.table(k), t)


def test_empty_sentence_and_dropout_in_training() -> None:
    model = make_model("dme", encoder="pool", learned_dim=4, learned_dropout=0.5)
    model.front.start_learned(torch.arange(2, V + 2))
    ids, lengths = batch()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, dtype=torch.int64), torch.tensor([0, 0]))
    assert torch.isfinite(out).all()
    model.train()
    torch.manual_seed(0)
    a = model.encode(ids, lengths).meta
    torch.manual_seed(1)
    b = model.encode(ids, lengths).meta
    assert not torch.equal(a, b)  # dropout is active in training


def test_run_config_round_trip_and_validation(tmp_path: Path) -> None:
    cfg = RunConfig(method="cdme", sources=["a"], source_dims=[3], vocab_size=4)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown config key.*bogus"):
        RunConfig.from_dict({**cfg.to_dict(), "bogus": 1}, path=tmp_path / "config.json")
    with pytest.raises(ConfigError, match="'hidden': must be a whole number"):
        RunConfig.from_dict({**cfg.to_dict(), "hidden": "big"})
    with pytest.raises(ConfigError, match="method"):
        RunConfig(method="attention")
    with pytest.raises(ConfigError, match="exactly one source"):
        RunConfig(method="single", sources=["a", "b"], source_dims=[1, 2])
    cnn = RunConfig(encoder="cnn", cnn_filters=3, cnn_widths=[2, 4])
    assert RunConfig.from_dict(cnn.to_dict()) == cnn
    for widths in ([], [0], [2, 2], [65], ["3"], [True], [1.5]):
        with pytest.raises(ConfigError, match="cnn_widths"):
            RunConfig.from_dict({**cnn.to_dict(), "cnn_widths": widths})
    with pytest.raises(ConfigError, match="'cnn_widths': must be a list"):
        RunConfig.from_dict({**cnn.to_dict(), "cnn_widths": 3})
    with pytest.raises(ConfigError, match="cnn_filters"):
        RunConfig(encoder="cnn", cnn_filters=0)


def _store(path: Path, dtype: str = "float32") -> Path:
    words = [f"w{i}" for i in range(V)]
    g = torch.Generator().manual_seed(0)
    with StoreWriter(path, words) as w:
        for name, dim in zip(["a", "b"], DIMS[:2], strict=True):
            w.add_source(name, dim, dtype=dtype)
            w.write_block(name, 0, torch.randn(V, dim, generator=g).numpy().astype(dtype))
            mask = torch.rand(V, generator=g) > 0.3
            w.set_present(name, mask.numpy())
    return path


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_tables_from_store(tmp_path: Path, dtype: str) -> None:
    path = _store(tmp_path / "s.h5", dtype)
    cfg = RunConfig(method="dme", sources=["b", "a"], source_dims=[DIMS[1], DIMS[0]],
                    vocab_size=V, proj_dim=4, hidden=4, mlp_hidden=4)
    with Store(path) as st:
        tables, present = load_tables(st, cfg, progress=False)
        expect = torch.from_numpy(st.read_vectors("b"))
        assert torch.equal(present[2:, 1], torch.from_numpy(st.present("a")))
        model = build_model(st, cfg, progress=False)
    assert tables[0].dtype == getattr(torch, dtype)
    assert torch.allclose(tables[0][2:].float(), expect)
    assert (tables[0][:2] == 0).all() and not present[:2].any()
    ids = torch.tensor([[2, 3, 1, 0]])
    assert model(ids, torch.tensor([3])).dtype == torch.float32


def test_store_mismatches_are_store_errors(tmp_path: Path) -> None:
    path = _store(tmp_path / "s.h5")
    with Store(path) as st:
        cfg = RunConfig(method="dme", sources=["zz"], source_dims=[3], vocab_size=V)
        with pytest.raises(StoreError, match="no source named 'zz'"):
            load_tables(st, cfg, progress=False)
        cfg = RunConfig(method="dme", sources=["a"], source_dims=[99], vocab_size=V)
        with pytest.raises(StoreError, match="dimension 5, the run expects 99"):
            load_tables(st, cfg, progress=False)
        cfg = RunConfig(method="dme", sources=["a"], source_dims=[5], vocab_size=V + 1)
        with pytest.raises(StoreError, match="words but the run expects"):
            load_tables(st, cfg, progress=False)


@pytest.mark.parametrize("use_derived", [True, False])
def test_derived_rows_count_as_present_unless_turned_off(tmp_path: Path, use_derived: bool) -> None:
    path = tmp_path / "d.h5"
    with StoreWriter(path, ["w0", "w1", "w2"]) as w:
        w.add_source("a", 2)
        w.set_present("a", torch.tensor([True, False, False]).numpy())
        w.set_derived("a", torch.tensor([False, True, False]).numpy())  # w1: composed from n-grams
    cfg = RunConfig(method="dme", sources=["a"], source_dims=[2], vocab_size=3,
                    use_derived=use_derived)
    with Store(path) as store:
        _, present = load_tables(store, cfg, progress=False)
    assert present[2:, 0].tolist() == [True, use_derived, False]


@pytest.mark.parametrize("key, value", [("epochs", 0), ("patience", 0), ("lr_decay", 0.0),
                                        ("lr_decay", 1.5), ("checkpoint_steps", -1), ("lr", 0.0)])
def test_training_settings_out_of_range_are_config_errors(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=key):
        RunConfig(**{key: value})  # type: ignore[arg-type]
