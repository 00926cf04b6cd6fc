from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_data import make_store, make_task, write_tsv

from metaprep.cli import cli
from metaprep.errors import DataError, ModelError, StoreError
from metaprep.learn.config import RunConfig
from metaprep.learn.evaluate import classification_metrics, evaluate_run, format_report
from metaprep.learn.rundir import Run
from metaprep.learn.train import train


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ev")
    task = make_task(root)
    cfg = RunConfig(method="dme", proj_dim=8, hidden=8, mlp_hidden=8, batch_size=8, epochs=2)
    train(cfg, store=task["store"], train_data=task["train"], dev=task["dev"], test=task["test"],
          out=root / "run", progress=False)
    return {**task, "run": root / "run"}


def test_metrics_by_hand() -> None:
    gold = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    m = classification_metrics(gold, pred, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    # a: P 1, R 2/3, F1 0.8; b: P 1/2, R 1/2, F1 0.5; c: P 1/2, R 1, F1 2/3
    assert m["per_label"]["a"]["f1"] == pytest.approx(0.8)
    assert m["per_label"]["c"]["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    report = format_report(m)
    assert "accuracy  0.6667" in report and "a -> b: 1" in report
    # a label that never occurs in gold or predictions does not drag macro-F1 down
    m2 = classification_metrics(np.array([0, 1]), np.array([0, 1]), ["a", "b", "unused"])
    assert m2["macro_f1"] == 1.0


def test_evaluate_reproduces_the_training_test_metrics(trained: dict[str, Path]) -> None:
    saved = json.loads((trained["run"] / "metrics.json").read_text())
    result = evaluate_run(trained["run"], trained["test"], progress=False)
    assert result["accuracy"] == saved["test"]["accuracy"]
    assert result["confusion"] == saved["test"]["confusion"]
    assert result["n"] == 24


def test_evaluate_cli_text_json_and_output(trained: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["evaluate", str(trained["run"]), str(trained["dev"]), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "accuracy" in res.output and "macro-F1" in res.output
    res = runner.invoke(cli, ["evaluate", str(trained["run"]), str(trained["dev"]), "--json",
                              "--quiet", "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    printed = json.loads(res.output)
    assert printed == json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert set(printed) >= {"accuracy", "macro_f1", "confusion", "per_label"}


def test_evaluate_errors(trained: dict[str, Path], tmp_path: Path) -> None:
    bad = write_tsv(tmp_path / "bad.tsv", [("good film", "pos"), ("bad film", "neutral")])
    with pytest.raises(DataError, match=r"bad\.tsv:3: label 'neutral'"):
        evaluate_run(trained["run"], bad, progress=False)
    other = make_store(tmp_path / "other.h5", seed=5)
    with pytest.raises(StoreError, match="differs from the run's store"):
        evaluate_run(trained["run"], trained["dev"], store_path=other, progress=False)
    # a store moved elsewhere works when named, and verification can be skipped
    moved = shutil.copy(trained["store"], tmp_path / "moved.h5")
    with Run.open(trained["run"], store=moved) as moved_run:
        assert not moved_run.load_model().training and moved_run.config.method == "dme"
    assert evaluate_run(trained["run"], trained["dev"], store_path=other, verify_store=False,
                        progress=False)["n"] == 24
    with pytest.raises(ModelError, match="no such run directory"):
        evaluate_run(tmp_path / "nope", trained["dev"], progress=False)


def test_tampered_run_directory(trained: dict[str, Path], tmp_path: Path) -> None:
    run = shutil.copytree(trained["run"], tmp_path / "run")
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "hidden": 16}))
    with pytest.raises(ModelError, match="weights do not fit the config"):
        Run.open(run).load_model()
    (run / "config.json").write_text(json.dumps({**cfg, "layers": 2}))
    with pytest.raises(ModelError, match=r"config\.json: unknown config key\(s\): layers"):
        Run.open(run)
    (run / "best.safetensors").unlink()
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="missing best.safetensors"):
        Run.open(run).load_model()


def _scaled_weights(run: Path, factor: float) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(run / "best.safetensors"))
    save_file({k: v * factor for k, v in state.items()}, str(run / "best.safetensors"))


def test_nan_logits_are_refused_not_scored(trained: dict[str, Path], tmp_path: Path) -> None:
    """Huge finite weights give NaN logits: evaluate reported them as "accuracy 0.5000"."""
    from metaprep.learn.evaluate import ensemble_scores

    run = shutil.copytree(trained["run"], tmp_path / "run")
    _scaled_weights(run, 1e30)
    with pytest.raises(ModelError, match=r"NaN or infinite scores for \d+ of 24 examples "
                       r"\(the first on line \d+ of .*dev\.tsv\)") as err:
        evaluate_run(run, trained["dev"], progress=False)
    assert str(err.value).startswith(f"{run}: ") and "\n" not in str(err.value)
    result = CliRunner().invoke(cli, ["evaluate", str(run), str(trained["dev"]), "-q"])
    assert isinstance(result.exception, ModelError) and "accuracy" not in result.output
    # an ensemble with such a member: its mean is NaN too (training scores ensembles so)
    from metaprep.learn.data import LabelMap, load_task

    with Run.open(trained["run"]) as good:
        dev, _ = load_task(trained["dev"], good.encoder(), labels=LabelMap(good.labels),
                           progress=False)
    with pytest.raises(ModelError, match="NaN or infinite scores"):
        ensemble_scores([trained["run"], run], {"dev": dev})


def test_metrics_of_many_labels_take_no_labels_squared_memory() -> None:
    """The confusion matrix of 200,000 labels would be 320 GB (a train file with an id as its
    label died so): kept whole up to MAX_CONFUSION labels, else only its largest cells."""
    from metaprep.learn.evaluate import MAX_CONFUSION

    labels = [f"id{i}" for i in range(200_000)]
    gold = np.array([0, 1, 2, 2, 2, 199_999])
    pred = np.array([0, 2, 1, 1, 2, 5])
    m = classification_metrics(gold, pred, labels)
    assert m["confusion"] is None and m["accuracy"] == pytest.approx(2 / 6)
    assert m["confusions"] == [["id2", "id1", 2], ["id1", "id2", 1], ["id199999", "id5", 1]]
    assert m["per_label"]["id2"] == {"precision": 0.5, "recall": pytest.approx(1 / 3),
                                     "f1": pytest.approx(0.4), "support": 3}
    small = classification_metrics(gold % 3, pred % 3, labels[:3])
    assert len(small["confusion"]) == 3 and 3 <= MAX_CONFUSION
    assert "id2 -> id1: 2" in format_report(m)
