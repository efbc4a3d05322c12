"""The batched evaluator against a per-user reference computation."""

import numpy as np
import pytest
import scipy.sparse as sp

from fusionrec.data.dataset import Split
from fusionrec.evaluation import evaluate, evaluate_scores
from fusionrec.evaluation.metrics import ndcg, recall
from fusionrec.models.popularity import MostPopular


def _reference_recall_ndcg(scores, train, test, k):
    rs, ns = [], []
    for u in range(scores.shape[0]):
        t = set(test[u].indices)
        if not t:
            continue
        s = scores[u].copy()
        s[train[u].indices] = -np.inf
        top = np.argsort(-s, kind="stable")[:k]
        hits = np.array([[i in t for i in top]])
        rs.append(recall(hits, np.array([len(t)]), k)[0])
        ns.append(ndcg(hits, np.array([len(t)]), k)[0])
    return np.mean(rs), np.mean(ns)


def test_batched_matches_reference_and_masks_train():
    rng = np.random.RandomState(0)
    n_users, n_items = 57, 40
    scores = rng.rand(n_users, n_items).astype(np.float32)
    train = sp.csr_matrix((rng.rand(n_users, n_items) < 0.2).astype(np.float32))
    test = sp.csr_matrix((rng.rand(n_users, n_items) < 0.1).astype(np.float32))
    test = sp.csr_matrix(test - test.multiply(train))
    res = evaluate_scores(lambda u: scores[u], test, train, metrics=["recall@5", "ndcg@5"], batch_size=8)
    r, n = _reference_recall_ndcg(scores, train, test, 5)
    assert np.isclose(res.metrics["recall@5"], r)
    assert np.isclose(res.metrics["ndcg@5"], n)
    # only users with a test item are averaged
    assert len(res.users) == int((np.diff(test.indptr) > 0).sum())


def test_masking_conventions_differ_only_by_valid_items():
    # one user; the valid item scores highest: masked under train+valid, a miss under train-only masking
    train = sp.csr_matrix(np.array([[1, 0, 0, 0, 0]], np.float32))
    valid = sp.csr_matrix(np.array([[0, 1, 0, 0, 0]], np.float32))
    test = sp.csr_matrix(np.array([[0, 0, 1, 0, 0]], np.float32))

    class Fixed(MostPopular):
        def score(self, users):
            return np.tile(np.array([5, 4, 3, 2, 1], np.float32), (len(users), 1))

    m = Fixed().fit(train)
    split = Split(train=train, valid=valid, test=test)
    both = evaluate(m, split, metrics=["recall@1"], masking="train+valid")
    only_train = evaluate(m, split, metrics=["recall@1"], masking="train")
    assert both.metrics["recall@1"] == 1.0
    assert only_train.metrics["recall@1"] == 0.0


def test_activity_buckets_cover_all_users():
    rng = np.random.RandomState(1)
    train = sp.csr_matrix((rng.rand(30, 80) < rng.rand(30, 1) * 0.9).astype(np.float32))
    test = sp.csr_matrix((rng.rand(30, 80) < 0.05).astype(np.float32))
    split = Split(train=train, valid=sp.csr_matrix(train.shape, dtype=np.float32), test=test)
    res = evaluate(MostPopular().fit(train), split, by_activity=True)
    assert sum(b["users"] for b in res.by_activity.values()) == len(res.users)


class _FixedRatings:
    """Predicts ``table[u, i]`` (a dense array standing in for a rating model)."""

    def __init__(self, table):
        self.table = np.asarray(table, np.float32)

    def predict(self, users, items):
        return self.table[users, items]


def test_rating_evaluator_hand_computed_with_clipping_and_activity():
    from fusionrec.evaluation import evaluate_ratings

    # user 0 has 3 training ratings, user 1 has 1; item 2 is never rated in train
    train = sp.csr_matrix(np.array([[4, 2, 0, 3], [5, 0, 0, 0]], np.float32))
    test = sp.csr_matrix(np.array([[0, 0, 4, 0], [0, 1, 3, 0]], np.float32))
    table = np.array([[0, 0, 6.0, 0], [0, 2.0, 2.5, 0]])  # 6.0 is clipped to the train maximum, 5
    res = evaluate_ratings(_FixedRatings(table), test, train=train)
    # errors after clipping: +1 (u0,i2), +1 (u1,i1), -0.5 (u1,i2)
    assert res.n == 3
    assert res.metrics["rmse"] == pytest.approx(np.sqrt((1 + 1 + 0.25) / 3))
    assert res.metrics["mae"] == pytest.approx(2.5 / 3)
    users, items = res.by_activity["users"], res.by_activity["items"]
    assert users["1-4"] == {
        "ratings": 3,
        "rmse": pytest.approx(np.sqrt(2.25 / 3), abs=1e-6),
        "mae": pytest.approx(2.5 / 3, abs=1e-6),
    }
    # item 2 (0 training ratings) got errors +1 and -0.5; item 1 (1 training rating) +1
    assert items["0"]["ratings"] == 2 and items["0"]["mae"] == pytest.approx(0.75)
    assert items["1-4"] == {"ratings": 1, "rmse": 1.0, "mae": 1.0}
    unclipped = evaluate_ratings(_FixedRatings(table), test)
    assert unclipped.metrics["mae"] == pytest.approx((2 + 1 + 0.5) / 3) and not unclipped.by_activity


def test_catalogue_metrics_at_their_own_cutoff():
    # regression: --metrics coverage@20 was refused though coverage is listed among the metrics
    rng = np.random.RandomState(0)
    scores = rng.rand(30, 50).astype(np.float32)
    target = sp.csr_matrix((rng.rand(30, 50) < 0.1).astype(np.float32))
    res = evaluate_scores(lambda u: scores[u].copy(), target, None, metrics=("recall@10", "coverage@3"))
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    top3 = np.argsort(-scores[users], axis=1)[:, :3]
    assert res.extra["coverage@3"] == pytest.approx(len(np.unique(top3)) / 50)
    assert "coverage@3" not in res.metrics and "recall@10" in res.metrics
    only = evaluate_scores(lambda u: scores[u].copy(), target, None, metrics=("coverage@5",))
    assert only.metrics == {} and 0 < only.extra["coverage@5"] <= 1
