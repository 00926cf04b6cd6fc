"""A multi-label task end to end: split -> align -> train -> export -> evaluate -> predict, from
the command line and from a pipeline; thresholds from the run through the manifest to the
runtime."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from metaprep.cli import cli
from metaprep.errors import ModelError

GLOVE = "pkg:gensim/test/test_data/test_glove.txt"
RULES = {"person": ("he", "she", "his", "her"), "time": ("year", "first", "after", "new"),
         "talk": ("said", "people", "about")}
FILLER = ["the", "and", "of", "for", "that", "on", "is", "was", "with", "as", "it", "by", "at",
          "from", "an", "be", "has", "are", "have", "but", "were", "not", "this", "who"]


def _tags(words: list[str]) -> list[str]:
    return sorted(t for t, cue in RULES.items() if any(w in cue for w in words))


def write_task(path: Path, n: int = 160, seed: int = 0) -> Path:
    """JSONL with label lists: some examples have none."""
    rng = random.Random(seed)
    cues = [w for ws in RULES.values() for w in ws]
    lines = []
    for _ in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 8))]
        for _ in range(rng.randint(0, 2)):
            words.insert(rng.randrange(len(words)), rng.choice(cues))
        lines.append(json.dumps({"text": " ".join(words), "label": _tags(words)}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _ok(args: list[str]) -> Any:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import gensim

    glove = Path(gensim.__file__).parent / "test" / "test_data" / "test_glove.txt"
    tmp = tmp_path_factory.mktemp("ml")
    data = write_task(tmp / "tags.jsonl")
    split = _ok(["split", str(data), "-o", str(tmp / "sp"), "--dev", "0.2", "--test", "0.2"])
    _ok(["align", f"glove={glove}", "--vocab", str(tmp / "sp" / "train.tsv"), "--quiet",
         "-o", str(tmp / "store.h5")])
    train = _ok(["train", "--store", str(tmp / "store.h5"), "--train", str(tmp / "sp/train.tsv"),
                 "--dev", str(tmp / "sp/dev.tsv"), "--test", str(tmp / "sp/test.tsv"),
                 "--encoder", "pool", "--set", "mlp_hidden=32", "--epochs", "6", "--lr", "0.01",
                 "--set", "pos_weight=3", "--set", "select_metric=macro_f1", "-o",
                 str(tmp / "run")])
    export = _ok(["export-onnx", str(tmp / "run"), "-o", str(tmp / "model"), "-q"])
    evaluate = _ok(["evaluate", str(tmp / "run"), str(tmp / "sp/test.tsv"), "--json", "-q"])
    predict = _ok(["predict", str(tmp / "model"), str(tmp / "sp/test.tsv"), "-q"])
    return {"tmp": tmp, "split": split.output, "train": train.output, "export": export.output,
            "evaluation": json.loads(evaluate.output), "predict": predict.output}


def test_split_and_train_detect_the_task_and_say_so(cli_run: dict[str, Any]) -> None:
    assert "multi-label task detected (line 1 gives its labels as a list)" in cli_run["split"]
    assert "example(s) have no label" in cli_run["split"]
    header, first = (cli_run["tmp"] / "sp" / "train.tsv").read_text().splitlines()[:2]
    assert header == "text\tlabel"
    assert "multi-label task detected" in cli_run["train"]
    assert "micro-F1" in cli_run["train"] and "mean AUC" in cli_run["train"]
    config = json.loads((cli_run["tmp"] / "run" / "config.json").read_text())
    assert (config["task"], config["pos_weight"], config["select_metric"]) == (
        "multilabel", 3.0, "macro_f1")


def test_the_run_learns_and_evaluate_reports_every_figure(cli_run: dict[str, Any]) -> None:
    m = cli_run["evaluation"]
    assert m["task"] == "multilabel" and m["labels"] == ["person", "talk", "time"]
    for key in ("micro_f1", "macro_f1", "mean_auc", "subset_accuracy", "hamming_loss"):
        assert 0.0 <= m[key] <= 1.0
    assert m["mean_auc"] > 0.7  # the cue words decide the labels: well above chance (0.5)
    assert set(m["per_label"]["time"]) == {"precision", "recall", "f1", "support", "auc",
                                           "threshold"}
    saved = json.loads((cli_run["tmp"] / "run" / "thresholds.json").read_text())
    assert m["thresholds"] == saved
    metrics = json.loads((cli_run["tmp"] / "run" / "metrics.json").read_text())
    assert metrics["test"]["micro_f1"] == pytest.approx(m["micro_f1"])


def test_thresholds_round_trip_through_the_manifest(cli_run: dict[str, Any]) -> None:
    import onnx

    from metaprep.runtime import Model

    tmp = cli_run["tmp"]
    saved = json.loads((tmp / "run" / "thresholds.json").read_text())
    manifest = json.loads((tmp / "model" / "manifest.json").read_text())
    task = manifest["task"]
    assert task["multilabel"] is True
    assert task["thresholds"] == {"global": saved["global"],
                                  "per_label": [saved["per_label"][k] for k in task["labels"]]}
    assert manifest["checks"]["accuracy"]["metric"] == "micro_f1"
    graph = onnx.load(str(tmp / "model" / "model.onnx"), load_external_data=False)
    assert "Sigmoid" in {n.op_type for n in graph.graph.node}
    model = Model(tmp / "model")
    assert model.multilabel
    assert model.thresholds is not None
    assert model.thresholds.tolist() == pytest.approx(task["thresholds"]["per_label"])


def test_runtime_predict_returns_the_labels_over_threshold(cli_run: dict[str, Any]) -> None:
    from metaprep.runtime import Model

    model = Model(cli_run["tmp"] / "model")
    texts = ["he said the year", "the and of", "she was first"]
    probs = model.predict_proba(texts)
    assert probs.shape == (3, 3) and ((probs > 0) & (probs < 1)).all()
    assert model.thresholds is not None
    over = probs >= model.thresholds[None, :]
    assert (model.predict_ids(texts) == over).all()
    for (labels, shown), row, flags in zip(model.predict(texts), probs, over, strict=True):
        assert sorted(labels) == [lab for lab, f in zip(model.labels, flags, strict=True) if f]
        assert list(shown) == labels  # most probable first, with their probabilities
        assert [shown[lab] for lab in labels] == sorted(shown.values(), reverse=True)
        for lab in labels:
            assert shown[lab] == pytest.approx(float(row[model.labels.index(lab)]))


def test_predict_writes_labels_and_all_probabilities(cli_run: dict[str, Any]) -> None:
    from metaprep.runtime import Model

    records = [json.loads(line) for line in cli_run["predict"].splitlines()]
    test_rows = (cli_run["tmp"] / "sp" / "test.tsv").read_text().splitlines()[1:]
    assert len(records) == len(test_rows)
    model = Model(cli_run["tmp"] / "model")
    assert model.thresholds is not None
    probs = model.predict_proba([r.split("\t")[0] for r in test_rows])
    for rec, row in zip(records, probs, strict=True):
        assert set(rec) == {"record", "line", "labels", "probabilities"}
        assert list(rec["probabilities"]) == model.labels
        want = {lab for lab, p, t in zip(model.labels, row, model.thresholds, strict=True)
                if p >= t}
        assert set(rec["labels"]) == want


def test_top_k_caps_the_labels_in_every_output(cli_run: dict[str, Any]) -> None:
    """--top-k 1 on a multi-label model: one label at most and its probability, in the CLI's
    stream as in Model.predict (the stream listed every label over its threshold)."""
    from metaprep.runtime import Model

    test = cli_run["tmp"] / "sp" / "test.tsv"
    out = _ok(["predict", str(cli_run["tmp"] / "model"), str(test), "--top-k", "1", "-q"])
    records = [json.loads(line) for line in out.output.splitlines()]
    texts = [r.split("\t")[0] for r in test.read_text().splitlines()[1:]]
    picked = Model(cli_run["tmp"] / "model").predict(texts, top_k=1)
    assert any(len(r["labels"]) > 0 for r in records)
    for rec, (labels, _) in zip(records, picked, strict=True):
        assert len(rec["labels"]) <= 1 and len(rec["probabilities"]) == 1
        assert rec["labels"] == labels


@pytest.mark.parametrize("edit, message", [
    (lambda t: t["thresholds"]["per_label"].pop(), "one per label"),
    (lambda t: t["thresholds"]["per_label"].__setitem__(0, 1.5), "numbers in \\[0, 1\\]"),
    (lambda t: t["thresholds"].__setitem__("global", "x"), "task.thresholds.global"),
    (lambda t: t.pop("thresholds"), "lacks key\\(s\\) thresholds"),
    (lambda t: t.__setitem__("multilabel", False), "multi-label models only"),
])
def test_bad_thresholds_in_the_manifest_are_refused(cli_run: dict[str, Any], tmp_path: Path,
                                                    edit: Any, message: str) -> None:
    from metaprep.runtime.modeldir import read_manifest

    model = tmp_path / "model"
    shutil.copytree(cli_run["tmp"] / "model", model)
    path = model / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest["task"])
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=message):
        read_manifest(model)


def test_a_multilabel_pipeline_runs_every_stage(tmp_path: Path) -> None:
    from metaprep.pipeline import run_pipeline

    write_task(tmp_path / "tags.jsonl", n=120, seed=1)
    toml = tmp_path / "tags.toml"
    toml.write_text(
        '[pipeline]\nname = "tags"\n'
        '[split]\ndata = "tags.jsonl"\ndev = 0.2\ntest = 0.2\n'
        '[align]\nvocab = "{split}/train.tsv"\nquiet = true\n'
        f'[align.sources]\nglove = "{GLOVE}"\n'
        '[train]\ntask = "multilabel"\nencoder = "pool"\nmlp_hidden = 16\nepochs = 2\n'
        'select_metric = "mean_auc"\nquiet = true\n'
        '[export]\nquantize = "int8"\nquiet = true\n[evaluate]\nquiet = true\n[predict]\n')
    result = run_pipeline(toml, artifacts=tmp_path / "art", echo=lambda s: None)
    assert [s.action for s in result.stages] == ["run"] * 6
    figures = {s.name: s.figures for s in result.stages}
    assert 0 <= figures["train"]["dev_micro_f1"] <= 1 and "dev_mean_auc" in figures["train"]
    assert "onnx_dev_micro_f1" in figures["export"] and "mean_auc" in figures["evaluate"]
    out = tmp_path / "art" / "tags"
    n_test = len((out / "split" / "test.tsv").read_text().splitlines()) - 1
    evaluation = json.loads((out / "evaluate" / "evaluation.json").read_text())
    assert evaluation["task"] == "multilabel" and evaluation["n"] == n_test > 0
    manifest = json.loads((out / "export" / "model" / "manifest.json").read_text())
    assert manifest["export"]["quantize"] == "int8"
    assert manifest["checks"]["accuracy"]["metric"] == "micro_f1"
    preds = [json.loads(x) for x in (out / "predict" / "predictions.jsonl").read_text().split("\n")
             if x]
    assert len(preds) == n_test and all(isinstance(p["labels"], list) for p in preds)
    assert np.all([len(p["probabilities"]) == 3 for p in preds])


def test_the_triton_python_backend_refuses_a_multilabel_model(cli_run: dict[str, Any],
                                                               tmp_path: Path) -> None:
    from metaprep.errors import ConfigError
    from metaprep.exporter.triton_python import write_python_model
    from metaprep.stages import TritonOptions

    with pytest.raises(ConfigError, match="single-label models only"):
        write_python_model(cli_run["tmp"] / "model", tmp_path / "repo", TritonOptions())
    assert not (tmp_path / "repo").exists()
