"""Similarity and graph builders: normalised adjacency, edge pruning, kNN, fused content cosine."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from fusionrec.data.graph import (
    column_cosine,
    fused_cosine,
    item_item_knn_graph,
    knn_cosine,
    normalised_adjacency,
    prune_edges,
    unit_rows,
)
from fusionrec.errors import ConfigError


def _random_csr(n_users=30, n_items=25, density=0.25, seed=0) -> sp.csr_matrix:
    rng = np.random.RandomState(seed)
    m = sp.random(n_users, n_items, density=density, random_state=rng, format="csr", dtype=np.float32)
    m.data[:] = 1.0
    return m


def test_normalized_adjacency_matches_dense_formula():
    r = _random_csr()
    a = normalised_adjacency(r)
    n_u, n_i = r.shape
    dense = np.zeros((n_u + n_i,) * 2)
    dense[:n_u, n_u:] = r.toarray()
    dense[n_u:, :n_u] = r.toarray().T
    deg = dense.sum(1)
    inv = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1e-12)), 0)
    np.testing.assert_allclose(a.toarray(), inv[:, None] * dense * inv[None, :], rtol=1e-6)
    assert a.dtype == np.float32 and (a != a.T).nnz == 0


def test_prune_edges_keeps_a_subset_of_the_requested_size():
    r = _random_csr(density=0.4)
    p1 = prune_edges(r, 0.7, np.random.RandomState(3))
    p2 = prune_edges(r, 0.7, np.random.RandomState(3))
    assert p1.nnz == round(r.nnz * 0.3)
    assert (p1 != p2).nnz == 0
    assert (p1.multiply(r) != p1).nnz == 0  # only original edges
    assert (prune_edges(r, 0.0, np.random.RandomState(0)) != r).nnz == 0
    with pytest.raises(ConfigError):
        prune_edges(r, 1.0, np.random.RandomState(0))


def test_degree_sensitive_pruning_drops_edges_of_popular_nodes_first():
    # user 0 and item 0 are hubs; edges between low-degree nodes should survive more often
    rows = [0] * 20 + list(range(1, 20)) + list(range(1, 20))
    cols = list(range(20)) + [0] * 19 + list(range(20, 39))
    r = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(20, 39))
    rng = np.random.RandomState(0)
    hub = np.zeros(r.shape, bool)
    hub[0, :] = hub[:, 0] = True
    kept_hub, kept_other = 0, 0
    for _ in range(200):
        p = prune_edges(r, 0.5, rng).toarray() > 0
        kept_hub += (p & hub).sum()
        kept_other += (p & ~hub).sum()
    n_hub = (r.toarray() > 0)[hub].sum()
    n_other = r.nnz - n_hub
    assert kept_other / n_other > 1.3 * kept_hub / n_hub


def test_knn_cosine_matches_brute_force_and_block_size_does_not_matter():
    rng = np.random.RandomState(0)
    x = rng.normal(size=(50, 7)).astype(np.float32)
    g = knn_cosine(x, 4, block=8).toarray()
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = xn @ xn.T
    for i in range(50):
        want = np.argsort(-sim[i])[:4]
        assert set(np.flatnonzero(g[i])) == set(want)
        np.testing.assert_allclose(g[i, want], sim[i, want], rtol=1e-5)
    np.testing.assert_allclose(knn_cosine(x, 4, block=1000).toarray(), g, rtol=1e-6)
    no_self = knn_cosine(x, 4, include_self=False)
    assert no_self.diagonal().sum() == 0 and (np.diff(no_self.indptr) == 4).all()


def test_knn_graph_is_normalised_and_skips_items_without_content():
    rng = np.random.RandomState(1)
    x = rng.normal(size=(30, 5)).astype(np.float32)
    present = np.ones(30, bool)
    present[[3, 17]] = False
    g = item_item_knn_graph(x, 5, present=present)
    assert g.shape == (30, 30) and g.dtype == np.float32 and sp.issparse(g)
    dense = g.toarray()
    assert not dense[[3, 17]].any() and not dense[:, [3, 17]].any()
    # binary kNN edges (5 per row) scaled by D^-1/2 on both sides: every value is 1/5
    np.testing.assert_allclose(dense[dense > 0], 0.2, rtol=1e-6)
    w = item_item_knn_graph(x, 5, weighted=True)
    assert (w.data > 0).all() and not np.allclose(w.data, w.data[0])


def test_knn_cosine_ties_at_the_cut_go_to_the_lower_index():
    # identical rows used to land in the neighbour list in argpartition's order, not a fixed one
    x = np.array([[1.0, 0.0]] * 6 + [[0.0, 1.0]], np.float32)
    g = knn_cosine(x, 3, include_self=False)
    assert list(g[0].indices) == [1, 2, 3] and list(g[5].indices) == [0, 1, 2]


def test_knn_cosine_refuses_shrink_on_dense_features():
    with pytest.raises(ConfigError, match="shrink"):
        knn_cosine(np.eye(3, dtype=np.float32), 2, shrink=1.0)


def test_fused_cosine_averages_over_the_modalities_both_sides_have():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(8, 4)).astype(np.float32), rng.normal(size=(8, 3)).astype(np.float32)
    has_b = np.array([True] * 6 + [False] * 2)
    sims = fused_cosine(
        {"a": a[2], "b": b[2]}, {"a": unit_rows(a), "b": unit_rows(b)}, {"a": np.ones(8, bool), "b": has_b}
    )[0]
    cos = lambda x, y: float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))  # noqa: E731
    assert sims[0] == pytest.approx((cos(a[2], a[0]) + cos(b[2], b[0])) / 2, rel=1e-5)
    assert sims[7] == pytest.approx(cos(a[2], a[7]), rel=1e-5)  # no b content: a alone


def test_column_cosine_is_summed_item_cosine():
    r = _random_csr(density=0.3)
    d = r.toarray().astype(np.float64)
    n = np.linalg.norm(d, axis=0)
    cos = (d.T @ d) / np.maximum(np.outer(n, n), 1e-12)
    items = np.array([0, 4, 7])
    np.testing.assert_allclose(column_cosine(r, items), cos[:, items].sum(axis=1), rtol=1e-4)
