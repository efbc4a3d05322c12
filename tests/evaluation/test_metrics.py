"""Metrics against hand-computed values."""

import numpy as np
import pytest

from fusionrec.evaluation.metrics import (
    average_precision,
    coverage,
    f1,
    hit_rate,
    mrr,
    ndcg,
    parse_metric,
    precision,
    recall,
)

# user 0: hits at ranks 1 and 3 of 4, 3 relevant items; user 1: no hit, 2 relevant
HITS = np.array([[True, False, True, False], [False, False, False, False]])
NREL = np.array([3, 2])


def test_precision_recall_f1():
    assert precision(HITS, NREL, 4).tolist() == [0.5, 0.0]
    assert recall(HITS, NREL, 4) == pytest.approx([2 / 3, 0.0])
    assert f1(HITS, NREL, 4) == pytest.approx([2 * 0.5 * (2 / 3) / (0.5 + 2 / 3), 0.0])
    assert recall(HITS, NREL, 2) == pytest.approx([1 / 3, 0.0])


def test_ndcg_hand_computed():
    dcg = 1 / np.log2(2) + 1 / np.log2(4)
    idcg = 1 / np.log2(2) + 1 / np.log2(3) + 1 / np.log2(4)
    assert ndcg(HITS, NREL, 4) == pytest.approx([dcg / idcg, 0.0])
    # ideal DCG uses min(|relevant|, k) positions: at k=1 a hit at rank 1 is perfect
    assert ndcg(HITS, NREL, 1) == pytest.approx([1.0, 0.0])


def test_map_mrr_hit():
    # AP@4 = (1/1 + 2/3) / min(3, 4)
    assert average_precision(HITS, NREL, 4) == pytest.approx([(1 + 2 / 3) / 3, 0.0])
    assert mrr(np.array([[False, True, True]]), np.array([2]), 3) == pytest.approx([0.5])
    assert hit_rate(HITS, NREL, 4).tolist() == [1.0, 0.0]


def test_coverage_ignores_padding():
    recs = np.array([[0, 1, -1], [1, 2, -1]])
    assert coverage(recs, 10) == pytest.approx(0.3)


def test_parse_metric():
    assert parse_metric("Recall@20") == ("recall", 20)
    assert parse_metric("hr@5") == ("hit", 5)
    with pytest.raises(ValueError, match="NAME@K"):
        parse_metric("recal@20")
    with pytest.raises(ValueError):
        parse_metric("ndcg@0")


def test_rmse_mae_hand_computed():
    from fusionrec.evaluation.metrics import mae, rmse

    pred, true = np.array([3.0, 4.5, 2.0, 5.0]), np.array([4.0, 4.5, 3.0, 3.0])
    # errors -1, 0, -1, 2 → squared 1, 0, 1, 4 (mean 1.5); absolute 1, 0, 1, 2 (mean 1.0)
    assert rmse(pred, true) == pytest.approx(np.sqrt(1.5))
    assert mae(pred, true) == pytest.approx(1.0)
    assert rmse(true, true) == 0.0
    with pytest.raises(ValueError, match="at least one"):
        rmse(np.array([]), np.array([]))
    with pytest.raises(ValueError, match="shape"):
        mae(np.ones(2), np.ones(3))
