"""Implicit feedback: the rating threshold and k-core filter every loader's output goes through."""

from __future__ import annotations

import numpy as np

from fusionrec.data.dataset import Dataset, IdMap
from fusionrec.data.loaders.base import LoadOptions
from fusionrec.errors import DataError


def apply_implicit(ds: Dataset, options: LoadOptions) -> Dataset:
    """Keep rows with rating >= threshold, then iterative k-core; re-index users and items compactly."""
    keep = np.ones(ds.n_interactions, dtype=bool)
    if options.rating_threshold is not None:
        if ds.ratings is None:
            raise DataError("--min-rating needs ratings, but this data set has none")
        keep &= ds.ratings >= options.rating_threshold
    if options.kcore > 1:
        keep = kcore_mask(ds.users, ds.items, ds.n_users, ds.n_items, options.kcore, keep)
    if keep.all():
        return ds
    if not keep.any():
        raise DataError("no interaction is left after the rating threshold / k-core filter; loosen them")
    return subset_interactions(ds, keep)


def kcore_mask(
    users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, k: int, keep: np.ndarray
) -> np.ndarray:
    keep = keep.copy()
    while True:
        ud = np.bincount(users[keep], minlength=n_users)
        idg = np.bincount(items[keep], minlength=n_items)
        bad = keep & ((ud[users] < k) | (idg[items] < k))
        if not bad.any():
            return keep
        keep &= ~bad


def subset_interactions(ds: Dataset, keep: np.ndarray) -> Dataset:
    """Dataset with only the kept rows; users and items that lose every row are dropped and re-indexed."""
    u_keep = np.unique(ds.users[keep])
    i_keep = np.unique(ds.items[keep])
    u_new = np.full(ds.n_users, -1, np.int64)
    u_new[u_keep] = np.arange(len(u_keep))
    i_new = np.full(ds.n_items, -1, np.int64)
    i_new[i_keep] = np.arange(len(i_keep))
    pick = lambda a: None if a is None else a[keep]  # noqa: E731
    return Dataset(
        u_new[ds.users[keep]],
        i_new[ds.items[keep]],
        IdMap(ds.user_ids.raw_ids[u_keep]),
        IdMap(ds.item_ids.raw_ids[i_keep]),
        ratings=pick(ds.ratings),
        timestamps=pick(ds.timestamps),
        labels=pick(ds.labels),
        content=None if ds.content is None else ds.content.subset(i_keep),
        features=ds.features.subset(i_keep) if len(ds.features) else None,
        name=ds.name,
    )
