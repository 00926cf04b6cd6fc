"""Training and evaluating multi-label runs through the library: resume, errors, weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from crashkit import SimulatedCrash, crash_after
from test_data import NEG, NEUTRAL, POS, make_store
from test_train import comparable

from metaprep.errors import ConfigError, DataError
from metaprep.learn.config import RunConfig
from metaprep.learn.evaluate import evaluate_run
from metaprep.learn.rundir import Run
from metaprep.learn.train import train

TINY = {"proj_dim": 8, "hidden": 8, "mlp_hidden": 8, "batch_size": 8, "lr": 0.01, "epochs": 3,
        "encoder": "pool", "task": "multilabel",
        "method": "concat", "source_norm": "none"}  # the front end the thresholds were set with


def rows(n: int, seed: int) -> list[tuple[str, str]]:
    """Tags ``pos`` / ``neg`` by the cue words present: both, one, or none."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = list(rng.choice(NEUTRAL, size=rng.integers(2, 6)))
        tags = []
        for tag, cues in (("neg", NEG), ("pos", POS)):
            if rng.random() < 0.5:
                words.insert(int(rng.integers(0, len(words))), str(rng.choice(cues)))
                tags.append(tag)
        out.append((" ".join(words), ",".join(tags)))
    return out


def write(path: Path, data: list[tuple[str, str]]) -> Path:
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in data))
    return path


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("mltrain")
    return {"store": make_store(tmp / "store.h5"),
            "train": write(tmp / "train.tsv", rows(64, 1)),
            "dev": write(tmp / "dev.tsv", rows(24, 2)),
            "test": write(tmp / "test.tsv", rows(24, 3))}


def _train(task: dict[str, Path], out: Path, **kw: Any) -> dict[str, Any]:
    return train(RunConfig(**{**TINY, **kw}), store=task["store"], train_data=task["train"],
                 dev=task["dev"], test=task["test"], out=out, progress=False)


def test_a_killed_multilabel_run_resumes_to_the_same_result(
        task: dict[str, Path], tmp_path: Path) -> None:
    whole = _train(task, tmp_path / "whole", pos_weight=2.0)
    with crash_after(11), pytest.raises(SimulatedCrash):
        _train(task, tmp_path / "r", pos_weight=2.0)
    resumed = train(None, out=tmp_path / "r", resume=True, progress=False)
    assert comparable(resumed) == comparable(whole)
    a, b = Run.open(tmp_path / "whole"), Run.open(tmp_path / "r")
    assert a.thresholds() == b.thresholds() is not None
    wa, wb = a.load_best(), b.load_best()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert whole["dev"]["mean_auc"] > 0.8  # the cue words are learnt
    with pytest.raises(ConfigError, match="task is 'single' here but 'multilabel'"):
        train(None, out=tmp_path / "r", resume=True, progress=False, overrides={"task": "single"})


def test_positive_weights_change_the_training(task: dict[str, Path], tmp_path: Path) -> None:
    plain = _train(task, tmp_path / "plain", epochs=1)
    weighted = _train(task, tmp_path / "weighted", epochs=1, pos_weight=5.0)
    assert plain["epochs"][0]["train_loss"] != weighted["epochs"][0]["train_loss"]


def test_evaluate_refuses_a_label_the_run_never_saw(task: dict[str, Path],
                                                    tmp_path: Path) -> None:
    _train(task, tmp_path / "run", epochs=1)
    bad = write(tmp_path / "bad.tsv", [("good film", "pos,neutral")])
    with pytest.raises(DataError, match="label 'neutral' does not occur") as info:
        evaluate_run(tmp_path / "run", bad, progress=False)
    assert info.value.line == 2
    m = evaluate_run(tmp_path / "run", task["test"], progress=False)
    assert m["task"] == "multilabel" and m["labels"] == ["neg", "pos"]


def test_a_hand_edited_thresholds_file_is_refused(task: dict[str, Path], tmp_path: Path) -> None:
    from metaprep.errors import ModelError

    _train(task, tmp_path / "run", epochs=1)
    (tmp_path / "run" / "thresholds.json").write_text('{"global": 0.5, "per_label": {"pos": 2}}')
    with pytest.raises(ModelError, match="every label of labels.json"):
        Run.open(tmp_path / "run").thresholds()


def test_a_multilabel_run_with_the_learned_source(task: dict[str, Path], tmp_path: Path) -> None:
    metrics = _train(task, tmp_path / "r", learned_dim=4, learned_buckets=7)
    assert metrics["dev"]["mean_auc"] > 0.8
    best = Run.open(tmp_path / "r").load_best()
    assert best["front.learned.seen"].any() and best["front.learned.bigrams"].abs().sum() > 0
