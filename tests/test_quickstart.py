"""The embedded default, end to end: split -> align -> train (DME) -> export-onnx -> evaluate ->
predict with onnxruntime, on the real files inside gensim's wheel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from metaprep.cli import cli
from metaprep.prep.store import Store

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_pipeline_end_to_end(tmp_path: Path) -> None:
    art = tmp_path / "art"
    runner = CliRunner()
    result = runner.invoke(cli, ["run", str(ROOT / "pipelines" / "quickstart.toml"),
                                 "--artifacts", str(art)])
    assert result.exit_code == 0, result.output
    out = art / "quickstart"

    with Store(out / "align" / "store.h5") as store:
        assert store.sources == ["glove", "lee", "euclid", "leebin"]
        assert store.case_policy == "lower"
        attrs = store.source_attrs("leebin")
        assert attrs["format"] == "fasttext-bin" and attrs["oov"] == "subword"
        assert attrs["oov_filled"] == {"subword": attrs["oov_count"]}
        # subword-composed rows are filled but not marked present
        leebin = store.read_vectors("leebin")
        missing = ~store.present("leebin")
        assert missing.any() and np.abs(leebin[missing]).sum(axis=1).min() > 0

    metrics = json.loads((out / "train" / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["best_dev_accuracy"] <= 1.0

    manifest = json.loads((out / "export" / "model" / "manifest.json").read_text())
    parity = manifest["checks"]["parity"]["model"]["max_abs_diff"]["logits"]
    assert parity <= 1e-5

    preds = [json.loads(line) for line in
             (out / "predict" / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 40  # the test split
    assert {p["label"] for p in preds} <= {"pos", "neg"}
    for p in preds:
        assert abs(sum(p["probabilities"].values()) - 1.0) < 1e-5

    evaluation = json.loads((out / "evaluate" / "evaluation.json").read_text())
    assert evaluation["n"] == 40

    assert "stage" in result.output and "parity" in result.output
    again = runner.invoke(cli, ["run", str(ROOT / "pipelines" / "quickstart.toml"),
                                "--artifacts", str(art)])
    assert again.exit_code == 0, again.output
    assert again.output.count("skip (inputs unchanged)") == 6
