from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from test_data import make_task

from metaprep.cli import cli
from metaprep.errors import ConfigError, ModelError
from metaprep.ids import PAD_ID, UNK_ID
from metaprep.learn.config import RunConfig
from metaprep.learn.levers import (
    SourceNorm,
    drop_sources,
    feature_count,
    frequency_bins,
    mix_entropy,
    rank_bins,
    word_features,
)
from metaprep.learn.model import MetaEmbeddingClassifier

V = 30
DIMS = [5, 7]
WORDS = [f"w{i}" for i in range(V - 4)] + ["a", "co-op", "42", "it's"]
LEVERS: list[dict[str, Any]] = [
    {"source_norm": "center"}, {"source_norm": "scale"}, {"source_norm": "layernorm"},
    {"word_features": True}, {"source_dropout": 0.5}, {"mix_entropy": 0.1},
    {"source_norm": "scale", "word_features": True, "gating": "sigmoid"},
]


def make_model(method: str = "dme", **kw: Any) -> MetaEmbeddingClassifier:
    torch.manual_seed(0)
    cfg = RunConfig(method=method, sources=["a", "b"], source_dims=DIMS, vocab_size=V,
                    proj_dim=8, hidden=8, mlp_hidden=8, num_labels=3, **kw)
    g = torch.Generator().manual_seed(1)
    tables = [torch.randn(V + 2, d, generator=g) * (1 + 9 * k) + 3 for k, d in enumerate(DIMS)]
    for t in tables:
        t[:2] = 0
    present = torch.rand(V + 2, 2, generator=g) > 0.3
    present[:2] = False
    present[5] = False
    model = MetaEmbeddingClassifier(cfg, tables, present, WORDS)
    with torch.no_grad():  # word-feature weights start at zero: make them matter here
        for name, p in model.named_parameters():
            if "feature_scorer" in name:
                p.copy_(torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize(("method", "kw"), list(itertools.product(["dme", "cdme"], LEVERS))
                         + [("sum", {"source_norm": "layernorm"}),
                            ("concat", {"source_norm": "scale"})])
def test_levers_keep_padding_invariance(method: str, kw: dict[str, Any]) -> None:
    model = make_model(method, **kw)
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(2, V + 2, (3, 8), generator=g)
    lengths = torch.tensor([8, 3, 1])
    ids[1, 1] = UNK_ID
    with torch.no_grad():
        full = model(ids, lengths)
        for i, n in enumerate(lengths.tolist()):
            alone = model(ids[i : i + 1, :n], lengths[i : i + 1])
            assert (alone[0] - full[i]).abs().max().item() <= 1e-5
        noisy = ids.clone()
        noisy[1, 3:] = PAD_ID
        noisy[2, 1:] = 9
        assert torch.allclose(model(noisy, lengths), full, atol=1e-6)


def test_source_norm_centres_and_scales_on_present_rows() -> None:
    table = torch.randn(50, 4) * 7 + 5
    have = torch.rand(50) > 0.2
    out = SourceNorm("scale", table, have)(table)[have]
    assert out.mean(0).abs().max().item() < 1e-5
    assert math.isclose(out.norm(dim=-1).mean().item(), 1.0, rel_tol=1e-5)
    centred = SourceNorm("center", table, have)(table)[have]
    assert centred.mean(0).abs().max().item() < 1e-4
    assert torch.equal(SourceNorm("none", table, have)(table), table)


def test_word_features_encode_presence_frequency_length_and_shape() -> None:
    present = torch.zeros(len(WORDS) + 2, 2, dtype=torch.bool)
    present[2:, 0] = True
    present[-1, 1] = True
    counts = torch.zeros(len(WORDS) + 2, dtype=torch.int64)
    counts[2], counts[3], counts[-1] = 1, 5, 1000
    feats = word_features(WORDS, present, frequency_bins(counts))
    assert feats.shape == (len(WORDS) + 2, feature_count(2))
    assert feats[:2].abs().sum() == 0  # padding and UNK
    last = feats[-1]  # "it's", row V-1, seen 1000 times
    assert last[:2].tolist() == [1.0, 1.0]
    assert last[2:10].argmax().item() == 7  # 1000 -> the last bin (64+)
    assert last[10:16].argmax().item() == 3  # length 4 -> the (3, 5] bin
    assert last[16:].tolist() == [0.0, 0.0, 0.0, 1.0]  # apostrophe: other punctuation
    assert feats[-3, 16:].tolist() == [0.0, 0.0, 1.0, 0.0]  # co-op
    assert feats[-2, 16:].tolist() == [0.0, 1.0, 0.0, 0.0]  # 42
    assert [feats[i, 2:10].argmax().item() for i in (2, 3, 4)] == [1, 3, 0]  # 1, 4-7, unseen
    # runs saved before train counts existed: the bin of the row rank
    ranked = word_features(WORDS, present, rank_bins(len(WORDS) + 2))
    assert ranked[-1, 2:10].argmax().item() == 4  # log2(30) -> bin 4
    assert ranked[2, 2].item() == 1.0  # row 0: rank bin 0
    assert ranked[:2].abs().sum() == 0


def test_frequency_bins_come_from_the_train_split_and_survive_a_reload() -> None:
    model = make_model("dme", word_features=True)
    front = model.front
    train = torch.tensor([2, 2, 2, 5, 7, 7])
    front.start_learned(train)
    assert front.train_counts[2].item() == 3 and front.train_counts[3].item() == 0
    assert front.features[2, 2:10].argmax().item() == 2  # 3 -> 2-3
    assert front.features[3, 2:10].argmax().item() == 0  # unseen in train
    again = make_model("dme", word_features=True)
    again.load_state_dict(model.state_dict(), strict=True)
    assert torch.equal(again.front.features, front.features)


def test_word_features_change_the_weights_and_need_words() -> None:
    ids = torch.arange(2, V + 2).reshape(2, -1)
    lengths = torch.tensor([15, 15])
    plain, feats = make_model("dme"), make_model("dme", word_features=True)
    with torch.no_grad():
        w0 = plain.encode(ids, lengths).weights
        w1 = feats.encode(ids, lengths).weights
    assert w0 is not None and w1 is not None and not torch.allclose(w0, w1)
    cfg = RunConfig(method="dme", sources=["a"], source_dims=[3], vocab_size=2,
                    word_features=True)
    with pytest.raises(ModelError, match="word features"):
        MetaEmbeddingClassifier(cfg, [torch.zeros(4, 3)], torch.ones(4, 1, dtype=torch.bool))


def test_source_dropout_keeps_a_source_and_is_off_in_eval() -> None:
    use = torch.rand(64, 20, 3) > 0.3
    torch.manual_seed(0)
    dropped = drop_sources(use, 0.6, training=True)
    assert not (dropped & ~use).any()  # never adds a source
    assert torch.equal(dropped.any(-1), use.any(-1))  # a token keeps some source
    assert dropped.sum() < use.sum()
    assert torch.equal(drop_sources(use, 0.6, training=False), use)


def test_mix_entropy_term() -> None:
    w = torch.tensor([[[0.5, 0.5], [1.0, 0.0]]])
    valid = torch.tensor([[1.0, 1.0]])
    assert math.isclose(mix_entropy(w, valid).item(), math.log(2) / 2, rel_tol=1e-6)
    model = make_model("dme", mix_entropy=0.1).train()
    model(torch.tensor([[3, 4, 6]]), torch.tensor([3]))
    assert model.front.entropy is not None and model.front.entropy.requires_grad


@pytest.mark.parametrize(("key", "value"), [("source_norm", "l2"), ("source_dropout", 1.0),
                                            ("mix_entropy", float("nan"))])
def test_lever_keys_are_validated(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        RunConfig(**{key: value})  # type: ignore[arg-type]


def test_cli_levers_reach_the_run_config(tmp_path: Path) -> None:
    task = make_task(tmp_path / "task")
    out = tmp_path / "r"
    result = CliRunner().invoke(cli, [
        "train", "--store", str(task["store"]), "--train", str(task["train"]), "--dev",
        str(task["dev"]), "--method", "dme", "--encoder", "pool", "--proj-dim", "8",
        "--hidden", "8", "--mlp-hidden", "8", "--epochs", "1", "--quiet", "--source-norm",
        "layernorm", "--word-features", "--source-dropout", "0.2", "--mix-entropy", "0.05",
        "-o", str(out)])
    assert result.exit_code == 0, result.output
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["source_norm"], cfg["word_features"], cfg["source_dropout"],
            cfg["mix_entropy"]) == ("layernorm", True, 0.2, 0.05)
    assert (out / "analysis.json").is_file()


def test_a_config_saved_before_source_norm_existed_means_none() -> None:
    cfg = RunConfig(method="dme", sources=["a"], source_dims=[3], vocab_size=4,
                    source_norm="layernorm")
    old = {k: v for k, v in cfg.to_dict().items() if k != "source_norm"}
    assert RunConfig.from_dict(old).source_norm == "none"
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_a_config_saved_before_train_counts_existed_keeps_the_rank_bins() -> None:
    new = make_model("dme", word_features=True).front.cfg
    old = {k: v for k, v in new.to_dict().items() if k != "feature_freq"}
    assert new.feature_freq == "train" and RunConfig.from_dict(old).feature_freq == "rank"
    ranked = make_model("dme", word_features=True, feature_freq="rank")
    assert "front.train_counts" not in ranked.state_dict()  # old weights load as they are
    with pytest.raises(ConfigError, match="feature_freq"):
        RunConfig(method="dme", sources=["a"], source_dims=[3], vocab_size=4,
                  feature_freq="corpus")
