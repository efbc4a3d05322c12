"""The shared ranking kernels: top-k rules, masking, ridge fold-in."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from fusionrec.errors import ConfigError
from fusionrec.ranking import mask_rows, ridge_fold_in, top_k, top_k_items


def test_ties_at_the_cut_go_to_the_lower_index():
    # two identical items used to swap places at the edge of the list, depending on the partition
    rng = np.random.default_rng(1)
    for _ in range(50):
        scores = rng.choice([0.1, 0.5, 0.9], size=40).astype(np.float32)
        got, _ = top_k_items(scores, 7, exclude=np.array([3]))
        want = np.lexsort((np.arange(40), -np.where(np.arange(40) == 3, -np.inf, scores)))[:7]
        assert list(got) == list(want)


def test_padding_and_bad_k():
    idx, val = top_k(np.array([[1.0, -np.inf, 2.0]], np.float32), 5)
    assert idx.tolist() == [[2, 0, -1, -1, -1]] and np.isneginf(val[0, 2:]).all()
    items, scores = top_k_items(np.array([1.0, -np.inf, 2.0]), 5)
    assert items.tolist() == [2, 0] and scores.tolist() == [2.0, 1.0]
    with pytest.raises(ConfigError, match="positive"):
        top_k(np.zeros((1, 3)), 0)


def test_mask_rows_hides_each_users_items():
    s = np.zeros((2, 4), np.float32)
    mask_rows(
        s, sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1]], np.float32)), np.array([0, 2])
    )
    assert np.isneginf(s).tolist() == [[False, True, False, False], [True, False, False, True]]


def test_ridge_fold_in_solves_the_normal_equations():
    rng = np.random.default_rng(0)
    V = rng.normal(size=(30, 4)).astype(np.float32)
    items = np.array([1, 5, 9])
    u = ridge_fold_in(V, items, 0.5)
    Vi = V[items].astype(np.float64)
    want = np.linalg.solve(Vi.T @ Vi + 1.5 * np.eye(4), Vi.sum(axis=0))
    np.testing.assert_allclose(u, want, rtol=1e-5)
    assert not ridge_fold_in(V, np.array([], np.int64), 0.5).any()
