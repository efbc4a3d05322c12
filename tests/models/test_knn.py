"""ItemKNN, UserKNN and EASE against dense reference computations (the shared contract covers the rest)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from _support import checkerboard

from fusionrec.data import graph
from fusionrec.data.graph import knn_cosine
from fusionrec.data.splits import split_dataset
from fusionrec.errors import ConfigError
from fusionrec.evaluation import evaluate
from fusionrec.models.knn import EASE, ItemKNN, UserKNN, bm25_weight, single_support_share


def pruned_cosine(x: sp.csr_matrix, k: int, shrink: float) -> sp.csr_matrix:
    """What the neighbourhood models ask the shared kNN builder for."""
    return knn_cosine(x, k, include_self=False, shrink=shrink, positive_only=True)


def random_binary(n_rows: int, n_cols: int, density: float = 0.3, seed: int = 0) -> sp.csr_matrix:
    m = sp.random(n_rows, n_cols, density=density, format="csr", random_state=seed, dtype=np.float32)
    m.data[:] = 1.0
    return m


def dense_pruned_cosine(x: np.ndarray, k: int, shrink: float = 0.0) -> np.ndarray:
    """Reference: full cosine with shrink, zero diagonal, keep each row's k largest positive entries."""
    norms = np.linalg.norm(x, axis=1)
    denom = np.outer(norms, norms) + shrink
    sim = np.divide(x @ x.T, denom, out=np.zeros((len(x), len(x))), where=denom > 0)
    np.fill_diagonal(sim, 0.0)
    out = np.zeros_like(sim)
    for r in range(len(sim)):
        top = np.argsort(-sim[r], kind="stable")[:k]
        out[r, top] = sim[r, top]
    return np.maximum(out, 0.0)


def test_bm25_weight_matches_the_formula_by_hand():
    docs = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 1]], np.float32))
    w = bm25_weight(docs, k1=1.2, b=0.75).toarray()
    # term 0 is in 3 of 4 documents: idf = log 4 − log 4 = 0, so its column vanishes
    assert np.allclose(w[:, 0], 0.0)
    lengths, avg = np.array([2, 1, 3, 1.0]), 7 / 4
    idf1 = np.log(4) - np.log(3)  # term 1 in 2 documents
    expect = 2.2 / (1 + 1.2 * (0.25 + 0.75 * lengths[0] / avg)) * idf1
    assert w[0, 1] == pytest.approx(expect, rel=1e-6)
    assert w[2, 1] < w[0, 1]  # the longer document gets less weight for the same term


@pytest.mark.parametrize("k, shrink", [(3, 0.0), (5, 2.0), (100, 0.0)])
def test_pruned_cosine_equals_dense_reference(k, shrink, monkeypatch):
    x = random_binary(25, 12, seed=1)
    expect = dense_pruned_cosine(x.toarray().astype(np.float64), k, shrink)
    got = pruned_cosine(x, k, shrink)
    assert got.shape == (25, 25) and np.diff(got.indptr).max() <= min(k, 24)
    np.testing.assert_allclose(got.toarray(), expect, rtol=1e-5, atol=1e-6)
    # several row blocks, and a sparse right-hand factor (large catalogues), give the same matrix
    monkeypatch.setattr(graph, "_BLOCK_ENTRIES", 60)
    np.testing.assert_allclose(pruned_cosine(x, k, shrink).toarray(), got.toarray(), rtol=0, atol=0)
    monkeypatch.setattr(graph, "_DENSE_RHS_ENTRIES", 0)
    np.testing.assert_allclose(pruned_cosine(x, k, shrink).toarray(), got.toarray(), rtol=1e-6, atol=1e-7)


def test_itemknn_scores_are_history_times_neighbour_similarities():
    x = random_binary(30, 15, seed=2)
    model = ItemKNN(neighbors=4, similarity="cosine", shrink=1.0, popularity=0.0).fit(x)
    sim = dense_pruned_cosine(x.toarray().T.astype(np.float64), 4, 1.0)  # row j: neighbours of item j
    np.testing.assert_allclose(model.score(np.arange(30)), x.toarray() @ sim.T, rtol=1e-5, atol=1e-6)
    # popularity β: item j's similarities times deg_j^β (the neighbours kept are the same)
    degree = x.toarray().sum(axis=0)
    model = ItemKNN(neighbors=4, similarity="cosine", shrink=1.0, popularity=0.7).fit(x)
    want = x.toarray() @ (sim * degree[:, None] ** 0.7).T
    np.testing.assert_allclose(model.score(np.arange(30)), want, rtol=1e-5, atol=1e-6)


def test_single_support_share_counts_pairs_resting_on_one_user():
    # items 0-1 share users 0 and 1; items 2-3 share user 2 only; items 0-4 share user 0 only
    x = sp.csr_matrix(np.array([[1, 1, 0, 0, 1], [1, 1, 0, 0, 0], [0, 0, 1, 1, 0]], np.float32))
    pairs = sp.csr_matrix(([0.9, 0.5, 0.4], ([0, 2, 0], [1, 3, 4])), shape=(5, 5))
    assert single_support_share(x.T.tocsr(), pairs) == pytest.approx(2 / 3)
    assert single_support_share(x.T.tocsr(), pairs, max_pairs=2) in (0.5, 1.0)  # a sample of the pairs


@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
def test_default_popularity_follows_how_sparse_the_data_is(cls):
    # dense data: neighbours share many users (β ≈ 0, plain cosine); a few interactions per user: nearly
    # every similarity rests on one shared user or item, and β approaches 1
    dense = random_binary(80, 40, density=0.5, seed=8)
    rng = np.random.RandomState(9)
    rows = np.repeat(np.arange(300), 2)
    cols = rng.randint(0, 400, size=600)
    sparse = sp.csr_matrix((np.ones(600, np.float32), (rows, cols)), shape=(300, 400))
    sparse.data[:] = 1.0
    assert cls().fit(dense).popularity_ < 0.05
    assert cls().fit(sparse).popularity_ > 0.8
    assert cls(popularity=0.3).fit(sparse).popularity_ == 0.3


def test_itemknn_bm25_discounts_heavy_users():
    # users of very different activity: BM25's idf changes which items look alike, plain cosine does not
    x = sp.vstack([random_binary(10, 20, density=0.9, seed=6), random_binary(30, 20, density=0.15, seed=7)])
    cos = ItemKNN(neighbors=5, similarity="cosine").fit(x).score(np.arange(40))
    bm = ItemKNN(neighbors=5, similarity="bm25").fit(x).score(np.arange(40))
    assert not np.allclose(cos, bm)
    x = checkerboard(40, 30, seed=0)
    bm = ItemKNN(neighbors=10, similarity="bm25").fit(x).score(np.arange(40))
    same_group = (np.arange(40)[:, None] % 2) == (np.arange(30)[None, :] % 2)
    assert bm[same_group].min() > bm[~same_group].max()


def test_userknn_scores_are_neighbour_similarities_times_rows():
    x = random_binary(20, 25, seed=3)
    model = UserKNN(neighbors=5, popularity=0.0).fit(x)
    sim = dense_pruned_cosine(x.toarray().astype(np.float64), 5)
    np.testing.assert_allclose(model.score(np.arange(20)), sim @ x.toarray(), rtol=1e-5, atol=1e-6)
    degree = x.toarray().sum(axis=0)
    model = UserKNN(neighbors=5, popularity=0.5).fit(x)
    want = sim @ x.toarray() * degree[None, :] ** 0.5
    np.testing.assert_allclose(model.score(np.arange(20)), want, rtol=1e-5, atol=1e-6)
    plain = UserKNN(neighbors=5, popularity=0.0).fit(x).fold_in_user(x[3].indices)
    np.testing.assert_allclose(model.fold_in_user(x[3].indices), plain * degree**0.5, rtol=1e-5, atol=1e-6)


def test_userknn_fold_in_finds_the_users_like_a_training_user():
    x = checkerboard(40, 30, seed=0)
    model = UserKNN(neighbors=5, similarity="bm25").fit(x)
    s = model.fold_in_user(x[4].indices)  # a group-0 user's items
    unseen = np.setdiff1d(np.arange(30), x[4].indices)
    assert s[unseen[unseen % 2 == 0]].min() > s[unseen[unseen % 2 == 1]].max()


@pytest.mark.parametrize("cls", [ItemKNN, EASE])
def test_fold_in_of_a_training_users_items_equals_their_scores(cls):
    x = random_binary(30, 15, seed=4)
    model = cls().fit(x)
    np.testing.assert_allclose(model.fold_in_user(x[7].indices), model.score(np.array([7]))[0], rtol=1e-5)


def test_ease_columns_are_ridge_regressions_on_the_other_items():
    x = random_binary(60, 10, density=0.4, seed=5)
    reg = 3.0
    model = EASE(reg=reg, bias_reg=None).fit(x)
    assert np.allclose(np.diag(model.weights_), 0.0) and not model.item_bias_.any()
    xd = x.toarray().astype(np.float64)
    for j in (0, 4, 9):
        others = np.delete(np.arange(10), j)
        a = xd[:, others]
        coef = np.linalg.solve(a.T @ a + reg * np.eye(9), a.T @ xd[:, j])
        np.testing.assert_allclose(model.weights_[others, j], coef, rtol=1e-4, atol=1e-5)


def test_ease_item_bias_is_a_column_of_ones_regressed_with_the_items():
    x = random_binary(60, 10, density=0.4, seed=5)
    reg, bias_reg = 3.0, 2.0
    model = EASE(reg=reg, bias_reg=bias_reg).fit(x)
    xd = x.toarray().astype(np.float64)
    for j in (0, 4, 9):
        others = np.delete(np.arange(10), j)
        a = np.hstack([xd[:, others], np.ones((60, 1))])
        penalty = np.diag(np.r_[np.full(9, reg), bias_reg * 60])  # the ones column: bias_reg × its diagonal
        coef = np.linalg.solve(a.T @ a + penalty, a.T @ xd[:, j])
        np.testing.assert_allclose(model.weights_[others, j], coef[:-1], rtol=1e-4, atol=1e-5)
        assert model.item_bias_[j] == pytest.approx(coef[-1], rel=1e-4, abs=1e-5)
    np.testing.assert_allclose(model.score(np.arange(60)), xd @ model.weights_ + model.item_bias_, rtol=1e-5)


def test_ease_refuses_catalogues_too_large_for_a_dense_matrix():
    model = EASE()
    model.max_items = 5
    with pytest.raises(ConfigError, match="too large"):
        model.fit(random_binary(10, 6))


@pytest.mark.parametrize(
    "cls, params",
    [
        (ItemKNN, {"similarity": "jaccard"}),
        (UserKNN, {"neighbors": 0}),
        (EASE, {"reg": 0.0}),
        (EASE, {"bias_reg": 0.0}),
        (ItemKNN, {"popularity": -1.0}),
    ],
)
def test_bad_values_say_what_is_allowed(cls, params):
    with pytest.raises(ConfigError):
        cls(**params).fit(random_binary(10, 6))


def test_neighbourhood_models_on_the_benchmark(benchmark_dir):
    from fusionrec.data.loaders import load_dataset

    split = split_dataset(load_dataset(benchmark_dir))
    # MostPopular reaches 0.113 test R@20 here; neighbourhood CF roughly doubles it.
    for model in (ItemKNN(similarity="bm25"), UserKNN(), EASE()):
        res = evaluate(model.fit(split.train), split, on="test", masking="train").metrics
        assert res["recall@20"] > 0.22, (model.name, res)


@pytest.mark.parametrize("name", ["itemknn", "userknn", "ease"])
def test_forgetting_a_user_removes_its_history(name):
    # kNN models keep training rows to score; a forgotten user's row must leave the model (privacy)
    from fusionrec.artifacts import Artifact, forget_user
    from fusionrec.data.dataset import IdMap
    from fusionrec.models import create_model

    X = checkerboard()
    model = create_model(name).fit(X)
    art = Artifact(model=model, user_ids=IdMap(range(X.shape[0])), item_ids=IdMap(range(X.shape[1])), train=X)
    new = forget_user(art, 0).model
    assert (new._history_matrix() != X[1:]).nnz == 0
    assert new.score(np.arange(X.shape[0] - 1)).shape == (X.shape[0] - 1, X.shape[1])
    if name == "userknn":
        assert new._sim.shape == (X.shape[0] - 1, X.shape[0] - 1)
