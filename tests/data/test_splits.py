"""Split methods: sizes, disjointness, determinism, bad options."""

import numpy as np
import pytest

from fusionrec.data.dataset import Dataset, IdMap
from fusionrec.data.splits import split_dataset
from fusionrec.errors import ConfigError, DataError


def _toy(n_users=20, per_user=15, n_items=60, seed=0):
    rng = np.random.RandomState(seed)
    users, items, ts = [], [], []
    for u in range(n_users):
        its = rng.choice(n_items, per_user + u % 5, replace=False)
        users += [u] * len(its)
        items += list(its)
        ts += list(rng.randint(0, 10**6, len(its)))
    return Dataset(
        np.array(users),
        np.array(items),
        IdMap(range(n_users)),
        IdMap(range(n_items)),
        timestamps=np.array(ts),
    )


@pytest.mark.parametrize("method", ["ratio", "temporal", "global-temporal", "loo"])
def test_parts_are_disjoint_and_complete(method):
    ds = _toy()
    s = split_dataset(ds, method, seed=3)
    total = s.train + s.valid + s.test
    assert total.nnz == ds.n_interactions and total.max() == 1
    assert s.test.nnz > 0


def test_ratio_is_deterministic_and_per_user():
    ds = _toy()
    a, b = split_dataset(ds, "ratio", seed=1), split_dataset(ds, "ratio", seed=1)
    assert (a.test != b.test).nnz == 0
    per_user = np.diff(a.test.indptr) + np.diff(a.valid.indptr)
    n = np.diff(ds.matrix().indptr)
    assert np.array_equal(per_user, (0.2 * n + 1e-9).astype(int))


def test_temporal_puts_latest_in_test():
    ds = _toy()
    s = split_dataset(ds, "temporal")
    m = ds.matrix()
    for u in range(ds.n_users):
        rows = np.flatnonzero(ds.users == u)
        test_items = set(s.test[u].indices)
        train_items = set(s.train[u].indices)
        t_test = min(ds.timestamps[r] for r in rows if ds.items[r] in test_items)
        t_train = max(ds.timestamps[r] for r in rows if ds.items[r] in train_items)
        assert t_test >= t_train
    assert m.nnz == ds.n_interactions


def test_cold_items_have_no_train_interactions():
    ds = _toy()
    s = split_dataset(ds, "cold-items", cold_fraction=0.25)
    assert s.cold_items is not None
    assert s.train[:, s.cold_items].nnz == 0
    assert set(s.test.indices) | set(s.valid.indices) <= set(s.cold_items)


def test_bad_options():
    ds = _toy()
    with pytest.raises(ConfigError, match="unknown split"):
        split_dataset(ds, "random")
    with pytest.raises(ConfigError, match="sum to 1"):
        split_dataset(ds, "ratio", ratios=(0.5, 0.1, 0.1))
    no_time = Dataset(ds.users, ds.items, ds.user_ids, ds.item_ids)
    with pytest.raises(DataError, match="timestamps"):
        split_dataset(no_time, "temporal")


def _rated(ds, seed=0):
    ratings = np.random.RandomState(seed).randint(1, 11, ds.n_interactions) / 2.0
    return Dataset(ds.users, ds.items, ds.user_ids, ds.item_ids, ratings=ratings, timestamps=ds.timestamps)


@pytest.mark.parametrize("method", ["ratio", "temporal", "loo", "cold-items"])
def test_rating_task_keeps_values_on_the_same_rows(method):
    ds = _rated(_toy())
    ranked = split_dataset(ds, method, seed=4)
    rated = split_dataset(ds, method, seed=4, task="rating")
    assert rated.task == "rating" and ranked.task == "ranking"
    truth = {(u, i): r for u, i, r in zip(ds.users, ds.items, ds.ratings, strict=True)}
    for part in ("train", "valid", "test"):
        a, b = getattr(ranked, part), getattr(rated, part)
        assert (a != b.astype(bool).astype(np.float32)).nnz == 0  # same cells
        coo = b.tocoo()
        assert [truth[(u, i)] for u, i in zip(coo.row, coo.col, strict=True)] == coo.data.tolist()
        assert set(np.unique(a.data)) <= {1.0}


def test_rating_task_needs_usable_ratings():
    ds = _toy()
    with pytest.raises(DataError, match="needs ratings"):
        split_dataset(ds, "ratio", task="rating")
    zero = Dataset(ds.users, ds.items, ds.user_ids, ds.item_ids, ratings=np.zeros(ds.n_interactions))
    with pytest.raises(DataError, match="shift the scale"):
        split_dataset(zero, "ratio", task="rating")
    with pytest.raises(ConfigError, match="unknown task"):
        split_dataset(_rated(ds), "ratio", task="stars")


def test_rating_matrix_keeps_the_last_rating_of_a_repeated_pair():
    # summing duplicates (right for 1.0 counts) would turn ratings 2 and 5 into 7
    ds = Dataset(
        np.array([0, 0, 1]),
        np.array([1, 1, 0]),
        IdMap(range(2)),
        IdMap(range(2)),
        ratings=np.array([2, 5, 3]),
    )
    m = ds.matrix(task="rating")
    assert m.toarray().tolist() == [[0.0, 5.0], [3.0, 0.0]]
    assert ds.matrix().toarray().tolist() == [[0.0, 1.0], [1.0, 0.0]]
