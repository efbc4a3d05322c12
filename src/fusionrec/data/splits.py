"""Train / valid / test splits: per-user ratio, per-user temporal, global temporal, leave-one-out, cold items."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import TASKS, Dataset, Split
from fusionrec.data.methods import SPLITS
from fusionrec.errors import ConfigError, DataError

log = logging.getLogger("fusionrec")


def split_dataset(
    ds: Dataset,
    method: str | None = None,
    *,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 2026,
    cold_fraction: float = 0.2,
    task: str = "ranking",
) -> Split:
    """Split ``ds``. With ``method=None`` a split present in the data (``labels``) is used as is, else ``ratio``.

    ``task="rating"`` keeps the rating values in the three matrices (``Dataset.matrix``); the rows that go
    to each part are the same as for ``task="ranking"``.
    """
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if task == "rating":
        ds.rating_values()  # fail before splitting when the data has no usable ratings
    if method is None:
        method = "given" if ds.labels is not None else "ratio"
    if method not in SPLITS:
        raise ConfigError(f"unknown split {method!r}; choose one of {', '.join(SPLITS)}")
    if not np.isclose(sum(ratios), 1.0) or min(ratios) < 0:
        raise ConfigError(f"split ratios must be non-negative and sum to 1; got {ratios}")
    if method == "given":
        if ds.labels is None:
            raise DataError("split 'given' needs x_label in the data; choose ratio, temporal, ... instead")
        labels = ds.labels
    elif method == "ratio":
        labels = _per_user_labels(ds, np.random.RandomState(seed).permutation(ds.n_interactions), ratios)
    elif method == "temporal":
        labels = _per_user_labels(ds, _time_order(ds), ratios)
    elif method == "loo":
        labels = _leave_one_out(
            ds,
            _time_order(ds)
            if ds.timestamps is not None
            else np.random.RandomState(seed).permutation(ds.n_interactions),
        )
    elif method == "global-temporal":
        order = _time_order(ds)
        labels = np.zeros(ds.n_interactions, np.int8)
        n = ds.n_interactions
        n_train, n_valid = int(round(ratios[0] * n)), int(round(ratios[1] * n))
        labels[order[n_train : n_train + n_valid]] = 1
        labels[order[n_train + n_valid :]] = 2
    else:  # cold-items
        return _cold_item_split(ds, seed, cold_fraction, task)
    split = _from_labels(ds, labels, method, task)
    _warn_empty(split)
    return split


def _time_order(ds: Dataset) -> np.ndarray:
    if ds.timestamps is None:
        raise DataError("a temporal split needs timestamps, but this data set has none; use --split ratio")
    return np.lexsort((np.arange(ds.n_interactions), ds.timestamps))


def _per_user_labels(ds: Dataset, order: np.ndarray, ratios: tuple[float, float, float]) -> np.ndarray:
    """MMRec's rule on rows taken in ``order`` per user: n<10 → n-2/1/1; else vt=int(0.2n) (scaled by ratios)."""
    order = order[np.argsort(ds.users[order], kind="stable")]
    users = ds.users[order]
    counts = np.bincount(users, minlength=ds.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(order)) - starts[users]
    n = counts[users]
    held = ratios[1] + ratios[2]
    vt = np.floor(held * n + 1e-9).astype(np.int64)
    n_valid = np.floor(vt * (ratios[1] / held) + 1e-9).astype(np.int64) if held > 0 else np.zeros_like(vt)
    n_test = vt - n_valid
    small = n < 10
    n_valid = np.where(small, np.minimum(1, np.maximum(n - 2, 0)), n_valid)
    n_test = np.where(small, np.minimum(1, np.maximum(n - 1, 0)), n_test)
    n_train = n - n_valid - n_test
    lab = np.zeros(len(order), np.int8)
    lab[rank >= n_train] = 1
    lab[rank >= n_train + n_valid] = 2
    labels = np.empty(ds.n_interactions, np.int8)
    labels[order] = lab
    return labels


def _leave_one_out(ds: Dataset, order: np.ndarray) -> np.ndarray:
    """Last interaction of each user → test, the one before → valid (users with ≥ 3 interactions)."""
    order = order[np.argsort(ds.users[order], kind="stable")]
    users = ds.users[order]
    counts = np.bincount(users, minlength=ds.n_users)
    ends = np.cumsum(counts)
    rank_from_end = ends[users] - 1 - np.arange(len(order))
    ok = counts[users] >= 3
    lab = np.zeros(len(order), np.int8)
    lab[ok & (rank_from_end == 1)] = 1
    lab[ok & (rank_from_end == 0)] = 2
    labels = np.empty(ds.n_interactions, np.int8)
    labels[order] = lab
    return labels


def _from_labels(ds: Dataset, labels: np.ndarray, name: str, task: str = "ranking") -> Split:
    mats = [ds.matrix(np.flatnonzero(labels == k), task=task) for k in (0, 1, 2)]
    return Split(train=mats[0], valid=mats[1], test=mats[2], name=name, task=task)


def _cold_item_split(ds: Dataset, seed: int, fraction: float, task: str = "ranking") -> Split:
    """Hold out a fraction of items with all their interactions; half go to valid, half to test.

    Train holds no interaction of a cold item, so only content can place it.
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"cold-item fraction must be in (0, 1); got {fraction}")
    rng = np.random.RandomState(seed)
    items = rng.permutation(ds.n_items)
    n_cold = max(2, int(round(fraction * ds.n_items)))
    cold = items[:n_cold]
    valid_items, test_items = cold[: n_cold // 2], cold[n_cold // 2 :]
    labels = np.zeros(ds.n_interactions, np.int8)
    labels[np.isin(ds.items, valid_items)] = 1
    labels[np.isin(ds.items, test_items)] = 2
    split = _from_labels(ds, labels, "cold-items", task)
    split.cold_items = np.sort(cold)
    return split


def _warn_empty(split: Split) -> None:
    n_test = np.diff(split.test.indptr)
    n_train = np.diff(split.train.indptr)
    no_test = int(((n_test == 0) & (n_train > 0)).sum())
    if no_test:
        log.info("%d user(s) have no test interaction; they are left out of test metrics", no_test)
    if split.test.nnz == 0:
        raise DataError("the split left no test interactions; use more data or another --split")


def split_summary(split: Split) -> dict[str, int]:
    return {
        "train": int(split.train.nnz),
        "valid": int(split.valid.nnz),
        "test": int(split.test.nnz),
        "users_with_test": int((np.diff(split.test.indptr) > 0).sum()),
    }


def csr_rows_nonempty(m: sp.csr_matrix) -> np.ndarray:
    return np.flatnonzero(np.diff(m.indptr) > 0)


def thin_train(split: Split, per_user: int, seed: int = 0) -> Split:
    """The same split with at most ``per_user`` random training interactions kept per user.

    Valid and test are untouched, so the result measures how a model copes with sparse users (and with items
    left with few or no training interactions) on the same targets.
    """
    if per_user < 1:
        raise ConfigError(f"per_user must be a positive integer; got {per_user}")
    train = sp.csr_matrix(split.train, dtype=np.float32)
    rows = np.repeat(np.arange(train.shape[0]), np.diff(train.indptr))
    # a random key per interaction; keep each user's per_user smallest keys
    keys = np.random.RandomState(seed).random_sample(train.nnz)
    order = np.lexsort((keys, rows))
    rank = np.arange(train.nnz) - train.indptr[rows[order]]
    keep = np.sort(order[rank < per_user])
    thinned = sp.csr_matrix(
        (train.data[keep], (rows[keep], train.indices[keep])), shape=train.shape, dtype=np.float32
    )
    return Split(
        train=thinned,
        valid=split.valid,
        test=split.test,
        name=f"{split.name}-thin{per_user}",
        cold_items=split.cold_items,
    )
