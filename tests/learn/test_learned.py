"""The learned source (metaprep/learn/learned.py) inside the meta-embedding mix, and training with
it (the presets' override rule is in tests/test_presets.py)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from crashkit import SimulatedCrash, crash_after
from safetensors.torch import load_file
from test_data import VOCAB, make_task
from test_model import batch  # the same padded batch, its words in 2..V+1 (V = 30 there too)

from metaprep.errors import ConfigError
from metaprep.ids import BIGRAM_MULT, PAD_ID, UNK_ID
from metaprep.learn.config import RunConfig
from metaprep.learn.learned import bigram_rows
from metaprep.learn.model import MetaEmbeddingClassifier
from metaprep.learn.rundir import Run
from metaprep.learn.subwords import fnv1a, subword_rows
from metaprep.learn.train import train

V = 30
DIMS = [5, 3]
METHODS = ["dme", "cdme", "concat", "sum"]


# the store's words for the n-gram tests: overlapping spellings, one non-ASCII, one too short
WORDS = [f"{stem}{end}" for stem in ("walk", "talk", "jump", "été", "x")
         for end in ("", "s", "ed", "ing", "er", "est")]


def make_model(method: str = "sum", encoder: str = "pool", *, buckets: int = 11,
               **kw: object) -> MetaEmbeddingClassifier:
    torch.manual_seed(0)
    cfg = RunConfig(method=method, sources=["a", "b"], source_dims=DIMS, vocab_size=V,
                    proj_dim=6, hidden=4, mlp_hidden=6, num_labels=3, encoder=encoder,
                    learned_dim=4, learned_buckets=buckets, **kw)  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(1)
    tables = [torch.randn(V + 2, d, generator=g) for d in DIMS]
    present = torch.rand(V + 2, 2, generator=g) > 0.4
    present[:2] = False
    present[5] = False  # id 5: no pretrained source has it
    model = MetaEmbeddingClassifier(cfg, tables, present, WORDS)
    model.front.start_learned(torch.arange(2, 20))  # ids 2..19 seen in training
    learned = model.front.learned
    assert learned is not None
    with torch.no_grad():
        if learned.bigrams is not None:
            learned.bigrams.normal_(generator=g)  # rows that matter (they start at zero)
        if learned.subwords is not None:
            learned.subwords.normal_(generator=g)  # as lively as the word rows
    return model.eval()


@pytest.mark.parametrize(("method", "encoder", "buckets"),
                         list(itertools.product(METHODS, ["pool", "bilstm"], [0, 11])))
def test_padding_invariance_with_the_learned_source(method: str, encoder: str,
                                                    buckets: int) -> None:
    _assert_padding_invariant(make_model(method, encoder, buckets=buckets), exact=True)


def _assert_padding_invariant(model: torch.nn.Module, *, exact: bool) -> None:
    """Each sentence alone gives what it gives in the padded batch, and real word ids after
    each length change nothing (never read, no bigram with them): bit for bit if ``exact``."""
    ids, lengths = batch()
    with torch.no_grad():
        full = model(ids, lengths)
        for i, n in enumerate(lengths.tolist()):
            alone = model(ids[i : i + 1, :n], lengths[i : i + 1])
            assert (alone[0] - full[i]).abs().max().item() <= 1e-6
        noisy = ids.clone()
        for i, n in enumerate(lengths.tolist()):
            noisy[i, n:] = torch.randint(2, V + 2, (ids.shape[1] - n,))
        got = model(noisy, lengths)
        assert torch.equal(got, full) if exact else torch.allclose(got, full, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("method", "encoder"), [("sum", "pool"), ("dme", "bilstm"),
                                               ("cdme", "pool"), ("concat", "cnn")])
def test_padding_invariance_with_subwords(method: str, encoder: str) -> None:
    _assert_padding_invariant(make_model(method, encoder, learned_subwords=23), exact=False)


def _fnv(data: bytes) -> int:  # written out again here, apart from the module's
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) % 2**32
    return h


def test_fnv1a_gives_the_published_values() -> None:
    assert fnv1a(b"") == 0x811C9DC5  # the FNV offset basis
    assert fnv1a(b"a") == 0xE40C292C
    assert fnv1a(b"foobar") == 0xBF9CF968
    assert fnv1a("été".encode()) == _fnv(b"\xc3\xa9t\xc3\xa9")


def test_subword_rows_are_fasttexts_ngrams_shortest_first() -> None:
    rows = subword_rows(["where", "été", "", "a"], 1000)
    # "<where>": 5 trigrams, 4 4-grams, 3 5-grams, 2 6-grams, in that order
    grams = ["<wh", "whe", "her", "ere", "re>", "<whe", "wher", "here", "ere>",
             "<wher", "where", "here>", "<where", "where>"]
    assert rows.shape == (4, 14) and rows.dtype.name == "int32"
    assert rows[0].tolist() == [_fnv(g.encode()) % 1000 for g in grams]
    # characters, not bytes: "<été>" is 5 characters (7 bytes)
    ete = ["<ét", "été", "té>", "<été", "été>", "<été>"]
    assert rows[1].tolist()[:6] == [_fnv(g.encode()) % 1000 for g in ete]
    assert (rows[1, 6:] == -1).all() and (rows[2] == -1).all()
    assert rows[3].tolist()[:1] == [_fnv(b"<a>") % 1000] and (rows[3, 1:] == -1).all()
    capped = subword_rows(["where"], 1000, cap=6)  # the shortest n-grams are kept
    assert capped.tolist() == [rows[0, :6].tolist()]
    assert subword_rows(["where"] * 3, 7).tolist() == [[_fnv(g.encode()) % 7 for g in grams]] * 3


def test_unseen_words_get_vectors_from_their_ngrams() -> None:
    front = make_model("dme", learned_subwords=23).front
    learned = front.learned
    assert learned is not None and learned.subwords is not None
    ids = torch.tensor([[2, 19, 20, 31, UNK_ID, PAD_ID]])  # 2, 19 seen; 20, 31 not
    assert front.presence(ids)[..., -1].tolist() == [[True, True, True, True, False, False]]
    with torch.no_grad():
        vec = learned.vectors(ids)[0]  # (6,d)
        for t, i in enumerate(ids[0].tolist()):
            grams = learned.ngrams[i][learned.ngrams[i] >= 0].long()
            own = [learned.words[i]] if i in (2, 19) else []
            parts = own + list(learned.subwords[grams]) if len(grams) else [learned.words[UNK_ID]]
            assert torch.allclose(vec[t], torch.stack(parts).mean(0), atol=1e-6)
        assert not torch.allclose(vec[2], learned.words[UNK_ID])
        # the table export folds is these vectors, id by id
        table, present = learned.table(block=7)
        assert torch.allclose(table[ids[0]], vec, atol=1e-6)
        assert torch.equal(present, learned.presence(torch.arange(V + 2)))
        assert present[2:].all() and not present[:2].any()
    _, weights = front(ids[:, :4], torch.tensor([4]))  # dme: the unseen words get weight too
    assert weights is not None and (weights[0, :, -1] > 0).all()


def test_subword_rows_train_sparsely_and_only_the_batchs() -> None:
    model = make_model("sum", learned_subwords=23).train()
    ids, lengths = torch.tensor([[20, 21, 0]]), torch.tensor([2])  # two unseen words
    model(ids, lengths).sum().backward()
    learned = model.front.learned
    assert learned is not None and learned.subwords is not None
    assert learned.subwords.grad is not None and learned.subwords.grad.is_sparse
    moved = set(learned.subwords.grad.coalesce().indices()[0].tolist())
    used = {int(r) for i in (20, 21) for r in learned.ngrams[i] if r >= 0}
    assert moved == used
    assert learned.words.grad is not None
    assert learned.words.grad.to_dense()[20:22].abs().sum() == 0  # unseen: no row of their own
    keys = set(model.state_dict())
    assert "front.learned.subwords" in keys and "front.learned.ngrams" not in keys


def test_unseen_words_share_the_unk_row_and_count_as_absent() -> None:
    front = make_model("dme").front
    learned = front.learned
    assert learned is not None
    ids = torch.tensor([[2, 19, 20, 31, UNK_ID, PAD_ID]])
    assert learned.word_rows(ids).tolist() == [[2, 19, UNK_ID, UNK_ID, UNK_ID, UNK_ID]]
    assert front.presence(ids)[..., -1].tolist() == [[True, True, False, False, False, False]]
    assert front.source_names == ["a", "b", "learned"]
    # dme: the learned source gets weight where it is present, none where it is not
    _, weights = front(ids[:, :4], torch.tensor([4]))
    assert weights is not None
    assert (weights[0, :2, -1] > 0).all() and (weights[0, 2:, -1] == 0).all()


def test_bigram_hash_matches_the_integer_formula() -> None:
    ids = torch.tensor([[2, 9, 31, 4], [7, 7, 0, 0]])
    want = [[(a * BIGRAM_MULT + b) % 13 for a, b in itertools.pairwise(row)]
            for row in ids.tolist()]
    assert bigram_rows(ids, 13).tolist() == want


def test_bigrams_only_pair_real_tokens() -> None:
    model = make_model("concat", buckets=5)
    learned = model.front.learned
    assert learned is not None
    ids, lengths = torch.tensor([[3, 4, 6, 0]]), torch.tensor([3])
    valid = torch.tensor([[True, True, True, False]])
    vec = learned.pair_vectors(ids, valid)  # (1,4,d)
    rows = bigram_rows(ids, 5)[0]
    assert torch.equal(vec[0, 0], learned.bigrams[rows[0]])  # type: ignore[index]
    assert torch.equal(vec[0, 1], learned.bigrams[rows[1]])  # type: ignore[index]
    assert (vec[0, 2:] == 0).all()  # (6, pad) and the last step carry nothing
    # concat: the pair vectors land in the learned source's own (last) columns only
    meta, _ = model.front(ids, lengths)
    alone = MetaEmbeddingClassifier(model.cfg, [model.front.table(k) for k in range(2)],
                                    model.front.present)
    alone.load_state_dict(model.state_dict())
    with torch.no_grad():
        alone.front.learned.bigrams.zero_()  # type: ignore[union-attr]
    base, _ = alone.eval().front(ids, lengths)
    diff = (meta - base)[0]
    assert (diff[:, : sum(DIMS)] == 0).all() and torch.allclose(diff[:2, sum(DIMS):], vec[0, :2])


def test_learned_tables_train_and_the_pretrained_ones_do_not() -> None:
    model = make_model("sum").train()
    ids, lengths = batch()
    model(ids, lengths).sum().backward()
    learned = model.front.learned
    assert learned is not None and learned.words.grad is not None
    assert learned.bigrams is not None and learned.bigrams.grad is not None
    assert learned.words.grad.is_sparse  # a step touches the batch's rows only
    grad = learned.words.grad.to_dense()
    assert grad[2:20].abs().sum() > 0  # seen words in the batch move
    assert grad[20:].abs().sum() == 0  # unseen ones have no row of their own
    assert not model.front.table(0).requires_grad
    keys = set(model.state_dict())
    assert {"front.learned.words", "front.learned.bigrams", "front.learned.seen"} <= keys
    assert not any(k.startswith("front.table") for k in keys)


@pytest.mark.parametrize(("kw", "match"), [
    ({"learned_buckets": 10}, "set learned_dim"),
    ({"learned_subwords": 10}, "set learned_dim"),
    ({"learned_dim": 4, "learned_subwords": -1}, "learned_subwords"),
    ({"learned_dim": -1}, "learned_dim"),
    ({"learned_dim": 4, "learned_dropout": 1.0}, "learned_dropout"),
])
def test_bad_learned_settings_are_config_errors(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RunConfig(**kw)


def test_a_run_with_the_learned_source_trains_saves_and_reloads(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    cfg = RunConfig(method="dme", encoder="pool", proj_dim=8, mlp_hidden=8, batch_size=8,
                    lr=0.01, epochs=2, learned_dim=6, learned_buckets=17, learned_dropout=0.1)
    metrics = train(cfg, store=task["store"], train_data=task["train"], dev=task["dev"],
                    test=task["test"], out=tmp_path / "r", progress=False)
    assert metrics["test_accuracy"] > 0.5
    best = load_file(str(tmp_path / "r" / "best.safetensors"))
    assert best["front.learned.bigrams"].shape == (17, 6)
    seen = best["front.learned.seen"]
    assert seen.dtype == torch.bool and 0 < int(seen.sum()) <= len(VOCAB)
    with Run.open(tmp_path / "r") as run:
        model = run.load_model()
        assert torch.equal(model.front.learned.seen, seen)  # type: ignore[union-attr]
    analysis = json.loads((tmp_path / "r" / "analysis.json").read_text(encoding="utf-8"))
    assert analysis["sources"] == ["a", "b", "learned"]


def test_a_run_with_subwords_trains_and_reloads_the_same_model(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    cfg = RunConfig(method="sum", encoder="pool", proj_dim=8, mlp_hidden=8, batch_size=8,
                    lr=0.01, epochs=2, learned_dim=6, learned_subwords=37)
    metrics = train(cfg, store=task["store"], train_data=task["train"], dev=task["dev"],
                    test=task["test"], out=tmp_path / "r", progress=False)
    assert metrics["test_accuracy"] > 0.5
    best = load_file(str(tmp_path / "r" / "best.safetensors"))
    assert best["front.learned.subwords"].shape == (37, 6)
    assert "front.learned.ngrams" not in best  # rebuilt from the store's words
    with Run.open(tmp_path / "r") as run:
        model = run.load_model()
        assert json.loads((tmp_path / "r" / "config.json").read_text())["learned_subwords"] == 37
    learned = model.front.learned
    assert learned is not None and learned.subwords is not None
    assert torch.equal(learned.subwords.detach(), best["front.learned.subwords"])
    assert learned.presence(torch.arange(2, len(VOCAB) + 2)).all()  # every word has n-grams


@pytest.mark.parametrize("subwords", [0, 31])
def test_resume_with_the_learned_source_matches_the_uninterrupted_run(
        tmp_path: Path, subwords: int) -> None:
    task = make_task(tmp_path)
    cfg = RunConfig(method="sum", encoder="pool", proj_dim=8, mlp_hidden=8, batch_size=8,
                    lr=0.01, epochs=2, learned_dim=4, learned_buckets=9,
                    learned_subwords=subwords)

    def go(out: str, **kw: object) -> dict:
        return train(cfg, store=task["store"], train_data=task["train"], dev=task["dev"],
                     out=tmp_path / out, progress=False, **kw)  # type: ignore[arg-type]

    whole = go("whole")
    with crash_after(8), pytest.raises(SimulatedCrash):  # 6 steps an epoch: inside epoch 2
        go("broken")
    resumed = go("broken", resume=True)
    assert resumed["dev"] == whole["dev"]
    wa = load_file(str(tmp_path / "whole" / "best.safetensors"))
    wb = load_file(str(tmp_path / "broken" / "best.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
