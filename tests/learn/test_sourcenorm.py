"""Each source normalised before its projection (learn/sourcenorm.py): padding invariance holds
with every norm and gating, the statistics come from the rows a source has, and the CLI option
reaches the run."""

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
from metaprep.errors import ConfigError
from metaprep.ids import PAD_ID, UNK_ID
from metaprep.learn.config import RunConfig
from metaprep.learn.model import MetaEmbeddingClassifier
from metaprep.learn.sourcenorm import SourceNorm

V = 30
DIMS = [5, 7]
NORMS: list[dict[str, Any]] = [
    {"source_norm": "center"}, {"source_norm": "scale"}, {"source_norm": "layernorm"},
    {"source_norm": "scale", "gating": "sigmoid"},
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
    return MetaEmbeddingClassifier(cfg, tables, present).eval()


@pytest.mark.parametrize(("method", "kw"), list(itertools.product(["dme", "cdme"], NORMS))
                         + [("sum", {"source_norm": "layernorm"}),
                            ("concat", {"source_norm": "scale"})])
def test_norms_keep_padding_invariance(method: str, kw: dict[str, Any]) -> None:
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


def test_the_statistics_of_a_table_read_in_blocks_are_the_whole_tables() -> None:
    """A multi-million-word table is read in blocks (no float32 copy of it): past one block,
    a float16 table's mean and scale are those of its rows taken at once."""
    table = (torch.randn(70_000, 3) * 4 + 2).half()
    have = torch.rand(70_000) > 0.3
    norm = SourceNorm("scale", table, have)
    rows = table[have].double()
    assert torch.allclose(norm.shift.double(), rows.mean(0), atol=1e-5)
    assert math.isclose(norm.scale.item(), (rows - rows.mean(0)).norm(dim=-1).mean().item(),
                        rel_tol=1e-5)


def test_an_unknown_norm_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="source_norm"):
        RunConfig(source_norm="l2")


def test_the_cli_norm_reaches_the_run_config(tmp_path: Path) -> None:
    task = make_task(tmp_path / "task")
    out = tmp_path / "r"
    result = CliRunner().invoke(cli, [
        "train", "--store", str(task["store"]), "--train", str(task["train"]), "--dev",
        str(task["dev"]), "--method", "dme", "--encoder", "pool", "--proj-dim", "8",
        "--set", "mlp_hidden=8", "--epochs", "1", "--quiet", "--set", "source_norm=scale",
        "--set", "gating=sigmoid", "-o", str(out)])
    assert result.exit_code == 0, result.output
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["source_norm"], cfg["gating"]) == ("scale", "sigmoid")
    assert (out / "analysis.json").is_file()
