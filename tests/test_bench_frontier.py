"""The pure parts of benchmarks/bench_frontier.py: scoring, timing, the table (no training)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_frontier.py"
_spec = importlib.util.spec_from_file_location("bench_frontier", _PATH)
assert _spec is not None and _spec.loader is not None
frontier = importlib.util.module_from_spec(_spec)
sys.modules["bench_frontier"] = frontier
_spec.loader.exec_module(frontier)


def test_accuracy_and_macro_f1() -> None:
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "a"]
    assert frontier.accuracy(gold, pred) == pytest.approx(0.6)
    # a: P 1/2 R 1/2 F 1/2; b: P 2/3 R 1 F 0.8; c: F 0
    assert frontier.macro_f1(gold, pred) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    # a label only predicted counts too (as scikit-learn's average="macro")
    assert frontier.macro_f1(["a", "a"], ["a", "z"]) == pytest.approx((2 / 3 + 0) / 2)
    with pytest.raises(ValueError):
        frontier.accuracy(["a"], [])


def test_macro_f1_matches_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics",
                                  reason="scikit-learn (the dev extra) is not installed")
    import random

    rng = random.Random(0)
    gold = [rng.choice("abcde") for _ in range(200)]
    pred = [g if rng.random() < 0.6 else rng.choice("abcdef") for g in gold]
    assert frontier.macro_f1(gold, pred) == pytest.approx(
        metrics.f1_score(gold, pred, average="macro"))


def test_simple_tokens_and_chunks() -> None:
    assert frontier.simple_tokens("Python 3 bindings for libFOO (C++)") == \
        "python 3 bindings for libfoo ( c + + )"
    assert [list(c) for c in frontier.chunks(["a", "b", "c"], 2)] == [["a", "b"], ["c"]]


def test_time_passes_and_best_speed() -> None:
    calls = []
    times = frontier.time_passes(lambda: calls.append(1), min_passes=3, min_time=0.0)
    assert len(times) == 3 and len(calls) == 4  # one warm-up call
    speed = frontier.best_speed(100, lambda b: (lambda: None), [8, 64], min_passes=2,
                                min_time=0.0)
    assert speed["batch_size"] in (8, 64) and set(speed["by_batch"]) == {"8", "64"}
    assert speed["sentences_per_s"] == max(speed["by_batch"].values())


def test_rows_and_markdown() -> None:
    res = frontier.SystemResult("fasttext", note="picked on dev: 20 x2")
    res.runs = [{"seed": 0, "accuracy": 0.70, "macro_f1": 0.60, "train_s": 2.0,
                 "train_texts": 1000},
                {"seed": 1, "accuracy": 0.80, "macro_f1": 0.70, "train_s": 4.0,
                 "train_texts": 1000}]
    res.speed = {"sentences_per_s": 12345.6, "batch_size": 256}
    res.size_bytes = 2_500_000
    row = res.row()
    assert row["accuracy_mean"] == 75.0 and row["accuracy_sd"] == pytest.approx(7.07, abs=0.01)
    assert row["train_texts_per_s"] == 375.0  # (1000/2 + 1000/4) / 2: the seeds' mean rate
    mine = frontier.SystemResult("metaprep fast", runs=[{**res.runs[0], "train_s": 8.0}],
                                 size_bytes=1_000_000, run_bytes=3_400_000).row()
    skipped = frontier.SystemResult("model2vec+logreg", skipped="not installed").row()
    old = {"system": "tfidf+linear", "accuracy_mean": 79.0, "accuracy_sd": 0.0,
           "macro_f1_mean": 70.0, "macro_f1_sd": 0.0, "train_s_mean": 170.0}  # an earlier row
    table = frontier.markdown_table([row, mine, skipped, old])
    assert "| fasttext | 75.0 +- 7.1 | 65.0 +- 7.1 | 12,346 (256) | 2.5 | - | 3 | 375 |" in table
    assert "| metaprep fast | 70.0 +- 0.0 | 60.0 +- 0.0 | - | 1.0 | 3.4 | 8 | 125 |" in table
    assert "| model2vec+logreg | skipped: not installed | | | | | | |" in table
    assert "| tfidf+linear | 79.0 +- 0.0 | 70.0 +- 0.0 | - | - | - | 170 | - |" in table
    assert frontier.tally([20, 20, 5]) == "20 x2, 5"


def test_earlier_rows_are_carried_marked_and_never_replace_this_runs() -> None:
    now = {"rows": [{"system": "metaprep fast", "accuracy_mean": 80.0}],
           "runs": {"metaprep fast": []}, "speed": {"metaprep fast": None}}
    earlier = {"date": "2026-12-02T05:22:27+00:00", "commit": "f1afbad",
               "rows": [{"system": "metaprep fast", "accuracy_mean": 1.0},
                        {"system": "tfidf+linear", "accuracy_mean": 78.5, "note": "picked"},
                        {"system": "model2vec+logreg", "accuracy_mean": 66.9,
                         "note": "earlier run (2026-11-30 at abc; speed not from this run)"}],
               "runs": {"tfidf+linear": [{"seed": 0}]},
               "speed": {"tfidf+linear": {"sentences_per_s": 7}}}
    ran = {**now, "rows": list(now["rows"]), "runs": dict(now["runs"]),
           "speed": dict(now["speed"]), "align_s": 3.0, "jobs": 2}
    frontier.carry_earlier(ran, {**earlier, "align_s": 9.0, "jobs": 1})
    assert ran["align_s"] == 3.0 and ran["jobs"] == 2  # metaprep ran now: its own store
    frontier.carry_earlier(now, {**earlier, "align_s": 9.0, "jobs": 1})
    assert now["align_s"] == 9.0 and now["jobs"] == 1  # the carried metaprep rows' store
    rows = {r["system"]: r for r in now["rows"]}
    assert rows["metaprep fast"]["accuracy_mean"] == 80.0  # this run's row stays
    assert rows["tfidf+linear"]["note"] == ("earlier run (2026-12-02 at f1afbad; speed not from "
                                            "this run); picked")
    assert rows["model2vec+logreg"]["note"].startswith("earlier run (2026-11-30")  # its own date
    assert now["runs"]["tfidf+linear"] == [{"seed": 0}]
    assert now["speed"]["tfidf+linear"] == {"sentences_per_s": 7}


def test_a_preset_that_sets_its_epochs_keeps_them_unless_told_otherwise() -> None:
    from metaprep.learn.config import PRESETS

    assert frontier.epoch_args("metaprep sum+pool", 6, own=True) == ["--epochs", "6"]
    for system in ("metaprep fast", "metaprep accurate"):
        sets_epochs = "epochs" in PRESETS[system.split()[1]]
        assert frontier.epoch_args(system, 6, own=True) == ([] if sets_epochs
                                                            else ["--epochs", "6"])
        assert frontier.epoch_args(system, 6, own=False) == ["--epochs", "6"]


def test_the_fast_runs_share_the_accurate_runs_as_teachers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Only while `fast` would train exactly the `accurate` ensemble of its seed (today's
    `fast` trains no teacher: nothing is shared)."""
    from metaprep.learn import config

    both = ["metaprep fast", "metaprep accurate"]
    assert frontier.shared_teachers(both, [0, 2], Path("w")) == {}
    accurate = config.PRESETS["accurate"]
    taught = {k: v for k, v in accurate.items() if k != "members"}
    taught.update(teacher_members=accurate["members"], teacher_weight=1.0,
                  teacher_temperature=2.0)
    monkeypatch.setattr(config, "PRESETS", {**config.PRESETS, "fast": taught})
    got = frontier.shared_teachers(both, [0, 2], Path("w"))
    assert got == {0: Path("w/runs/accurate-seed0"), 2: Path("w/runs/accurate-seed2")}
    assert frontier.shared_teachers(["metaprep fast"], [0], Path("w")) == {}
    other = {**config.PRESETS, "accurate": {**accurate, "proj_dim": 32}}
    monkeypatch.setattr(config, "PRESETS", other)
    assert frontier.shared_teachers(both, [0], Path("w")) == {}


def test_interleaved_rates_time_every_call_in_every_round() -> None:
    order: list[str] = []
    calls = {k: (lambda k=k: order.append(k)) for k in ("a", "b", "c")}
    rates = frontier.interleaved_rates(10, calls, rounds=3, min_passes=3, min_time=0.0)
    assert set(rates) == {"a", "b", "c"} and all(r > 0 for r in rates.values())
    # each round: a warm-up call and one timed pass of each, forward, backward, forward
    assert order == ["a"] * 2 + ["b"] * 2 + ["c"] * 2 + ["c"] * 2 + ["b"] * 2 + ["a"] * 2 \
        + ["a"] * 2 + ["b"] * 2 + ["c"] * 2


def test_every_task_is_known_and_the_report_says_what_train_time_counts() -> None:
    assert frontier.TASKS == ("fortunes", "debian", "debian-long", "pypi-long")
    assert set(frontier.EPOCHS) == set(frontier.TASKS)
    result = {"task": "debian-long", "quick": True, "date": "2026-12-07T00:00:00+00:00",
              "finished": "2026-12-07T00:10:00+00:00", "commit": "abc", "machine_before": "m",
              "machine_after": "m", "threads": 2, "seeds": [0], "metaprep_epochs": 1,
              "metaprep_lr": 1e-3, "jobs": 2, "align_s": 12.0, "labels": 37,
              "sizes": {"train": 1500, "dev": 300, "test": 300},
              "rows": [{"system": "metaprep fast", "accuracy_mean": 1.0, "accuracy_sd": 0.0,
                        "macro_f1_mean": 1.0, "macro_f1_sd": 0.0, "train_s_mean": 1.0},
                       {"system": "fasttext", "skipped": "fasttext not installed"}]}
    text = frontier.report(result)
    assert "- metaprep: the `metaprep train` command" in text and "(12 s here)" in text
    assert "- fasttext:" not in text  # skipped: nothing to explain
    for system in frontier.SYSTEMS:  # every system is explained
        key = "metaprep" if system.startswith("metaprep ") else system
        assert key in frontier.train_counts(result)


def test_align_seconds_are_kept_with_the_store_and_epochs_counted_over_members(
        tmp_path: Path) -> None:
    import json

    assert frontier.align_seconds(tmp_path, 0.0) == 0.0  # none measured yet
    assert frontier.align_seconds(tmp_path, 41.5) == 41.5
    assert frontier.align_seconds(tmp_path, 0.0) == 41.5  # a reused store: its build's time
    run = tmp_path / "run"
    for sub, epochs in (("", 3), ("teacher/members/0", 2), ("teacher/members/1", 4)):
        (run / sub).mkdir(parents=True, exist_ok=True)
        (run / sub / "metrics.json").write_text(json.dumps({"epochs": [{}] * epochs}))
    (run / "teacher" / "ensemble.json").write_text("{}")
    (run / "teacher" / "metrics.json").write_text(json.dumps({"epochs": [{}] * 9}))  # skipped
    assert frontier.epochs_run(run) == 9
    assert frontier.epochs_run(tmp_path / "nothing") is None


def test_quick_task_data_keeps_the_long_task_s_labels(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """--quick cuts each split to its first rows; dev and test keep train's labels only."""
    import json

    import realdata

    files = {}
    for split, n in (("train", 40), ("dev", 20), ("test", 20)):
        rows = [(f"text {i} " + "word " * 120, "ab"[i % 2] if split == "train" or i < 15
                 else "c") for i in range(n)]
        files[split] = str(tmp_path / f"debian-long.{split}.tsv")
        realdata.write_tsv(files[split], rows)
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"tasks": {"debian-long": {"files": files}}}))
    monkeypatch.setattr(frontier, "WORK", tmp_path / "work")
    monkeypatch.setattr(frontier, "QUICK_SIZES", {"train": 10, "dev": 30, "test": 30})
    _, quick = frontier.task_data("debian-long", tmp_path, quick=True)
    assert len(frontier.read_task(quick["train"])[0]) == 10
    assert set(frontier.read_task(quick["dev"])[1]) == {"a", "b"}
    assert len(frontier.read_task(quick["test"])[0]) == 15
