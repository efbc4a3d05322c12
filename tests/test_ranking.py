"""The shared ranking kernels: top-k rules, masking, ridge fold-in."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from fusionrec.errors import ConfigError
from fusionrec.ranking import (
    mask_rows,
    reserve_slots,
    reserved_slots,
    ridge_fold_in,
    top_k,
    top_k_items,
)


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


# ---------------------------------------------------------------------------------------------- exploration


def test_reserved_slots_are_the_floor_of_share_times_k():
    assert [reserved_slots(k, 0.1) for k in (5, 10, 19, 20, 100)] == [0, 1, 1, 2, 10]
    assert reserved_slots(10, 0.0) == 0 and reserved_slots(10, 1.0) == 10
    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError, match="new-item share"):
            reserved_slots(10, bad)


def test_reserve_slots_fills_the_quota_from_the_pool_and_keeps_the_order():
    items = np.array([4, 7, 1, 9, 3])
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0], np.float32)
    pool, pool_scores = np.array([20, 21, 22]), np.array([2.5, 0.5, 0.1], np.float32)
    out, vals = reserve_slots(items, scores, pool, pool_scores, 2)
    # the two lowest warm entries (9, 3) give way to the pool's best two; still sorted by score
    assert out.tolist() == [4, 7, 1, 20, 21]
    assert vals.tolist() == [5.0, 4.0, 3.0, 2.5, 0.5]
    # a pool item already in the list counts towards the quota
    out, _ = reserve_slots(np.array([4, 20, 7]), np.array([5, 4, 3], np.float32), pool, pool_scores, 1)
    assert out.tolist() == [4, 20, 7]
    out, _ = reserve_slots(np.array([4, 20, 7]), np.array([5, 4, 3], np.float32), pool, pool_scores, 2)
    assert out.tolist() == [4, 20, 21]
    # no quota, an empty pool, or a pool smaller than the quota
    assert reserve_slots(items, scores, pool, pool_scores, 0)[0].tolist() == items.tolist()
    assert reserve_slots(items, scores, pool[:0], pool_scores[:0], 2)[0].tolist() == items.tolist()
    assert reserve_slots(items, scores, pool[:1], pool_scores[:1], 3)[0].tolist() == [4, 7, 1, 20, 9]
