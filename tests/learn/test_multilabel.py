"""Multi-label scores against hand-computed values (metaprep.learn.multilabel)."""

from __future__ import annotations

import numpy as np
import pytest

from metaprep.learn.multilabel import (
    Thresholds,
    multilabel_metrics,
    roc_auc,
    select_score,
    tune_thresholds,
)

LABELS = ["a", "b", "c"]
# four dev examples; the third has no label, and label c occurs in none of them
GOLD = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 1, 0]])
PROBS = np.array([[0.9, 0.7, 0.1], [0.6, 0.7, 0.3], [0.4, 0.75, 0.2], [0.3, 0.8, 0.4]])


def test_metrics_match_the_hand_computed_values() -> None:
    m = multilabel_metrics(GOLD, PROBS, LABELS, Thresholds.fixed(3, 0.5))
    # predicted sets at 0.5: {a,b} {a,b} {b} {b}
    # a: tp 2 fp 0 fn 0 -> F1 1;  b: tp 2 fp 2 fn 0 -> P 1/2, R 1, F1 2/3;  c: never seen
    assert m["per_label"]["a"] == pytest.approx(
        {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2, "auc": 1.0, "threshold": 0.5})
    b = m["per_label"]["b"]
    assert (b["precision"], b["recall"], b["f1"], b["support"]) == pytest.approx(
        (0.5, 1.0, 2 / 3, 2))
    # b's AUC: positives 0.7 and 0.8 against negatives 0.7 (a tie: one half) and 0.75
    assert b["auc"] == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    c = m["per_label"]["c"]
    assert c["auc"] is None and c["support"] == 0 and c["f1"] == 0.0
    assert m["micro_f1"] == pytest.approx(2 * 4 / (2 * 4 + 2 + 0))  # tp 4, fp 2, fn 0
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3) / 2)  # c is left out: absent, unpredicted
    assert m["mean_auc"] == pytest.approx((1.0 + 0.625) / 2)  # c has no AUC
    assert m["subset_accuracy"] == m["accuracy"] == pytest.approx(2 / 4)
    assert m["hamming_loss"] == pytest.approx(2 / 12)
    assert m["no_label_examples"] == 1 and m["n"] == 4
    assert m["thresholds"] == {"global": 0.5, "per_label": {"a": 0.5, "b": 0.5, "c": 0.5}}


def test_an_example_with_no_label_predicted_empty_counts_as_right() -> None:
    m = multilabel_metrics(np.array([[0, 0], [1, 0]]), np.array([[0.1, 0.2], [0.9, 0.1]]),
                           ["x", "y"])
    assert m["subset_accuracy"] == 1.0 and m["hamming_loss"] == 0.0
    assert m["micro_f1"] == 1.0 and m["macro_f1"] == 1.0  # y: never in gold nor predicted
    assert m["mean_auc"] == 1.0  # y has no positive: no AUC, left out of the mean


def test_a_predicted_label_absent_from_gold_counts_against_macro_f1() -> None:
    m = multilabel_metrics(np.array([[1, 0]]), np.array([[0.9, 0.6]]), ["x", "y"])
    assert m["macro_f1"] == pytest.approx(0.5)  # y: a false positive, F1 0, counted


def test_roc_auc_known_values_and_ties() -> None:
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5  # all tied
    assert roc_auc(np.array([1, 1]), np.array([0.2, 0.3])) is None
    assert roc_auc(np.array([0, 0]), np.array([0.2, 0.3])) is None


def test_roc_auc_agrees_with_scikit_learn_on_heavy_ties() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        gold = rng.integers(0, 2, 60)
        gold[:2] = [0, 1]
        scores = rng.integers(0, 5, 60) / 4  # five distinct values: many ties
        assert roc_auc(gold, scores) == pytest.approx(roc_auc_score(gold, scores), abs=1e-12)


def test_tuned_thresholds_maximise_f1_and_fall_back_to_the_global_one() -> None:
    gold = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    probs = np.array([[0.9, 0.3], [0.8, 0.2], [0.7, 0.9], [0.1, 0.4]])
    t = tune_thresholds(gold, probs)
    # column 0: taking the top 3 (tp 2, fp 1) gives F1 0.8, the best; the cut is between 0.7
    # and 0.1. Column 1 has no positive: the global threshold
    assert t.per_label[0] == pytest.approx(0.4)
    assert t.per_label[1] == t.global_
    pred = probs[:, 0] >= t.per_label[0]
    assert pred.tolist() == [True, True, True, False]


def test_select_score_counts_a_missing_auc_as_zero() -> None:
    assert select_score({"mean_auc": None}, "mean_auc") == 0.0
    assert select_score({"micro_f1": 0.25}, "micro_f1") == 0.25
