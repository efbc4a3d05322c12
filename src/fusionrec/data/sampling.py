"""Vectorised sampling for pairwise training: positive pairs, uniform negatives, shuffled minibatches.

Negatives for a whole epoch are drawn at once with numpy; true positives are rejected by looking up the
sorted ``user * n_items + item`` keys with ``searchsorted`` and redrawing only the rejected entries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from fusionrec.errors import DataError

log = logging.getLogger("fusionrec")


def positive_pairs(user_items: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) int64 arrays of every stored interaction, row by row."""
    m = sp.csr_matrix(user_items)
    users = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    return users, m.indices.astype(np.int64)


class NegativeSampler:
    """Uniform negatives that are not positives of the user, drawn for many users in one call.

    Parameters
    ----------
    user_items : csr_matrix
        Users × items; every stored entry is a positive.
    random_state : int or numpy RandomState
        Seed (or generator) of the draws; equal seeds give equal negatives.
    max_rounds : int
        Redraw rounds before giving up on users who have (almost) every item; leftovers keep their last
        draw and are logged.
    """

    def __init__(
        self, user_items: sp.csr_matrix, random_state: int | np.random.RandomState = 0, max_rounds: int = 50
    ) -> None:
        m = sp.csr_matrix(user_items)
        self.n_users, self.n_items = m.shape
        if self.n_items < 2:
            raise DataError("negative sampling needs at least 2 items")
        users, items = positive_pairs(m)
        self._keys = np.unique(users * self.n_items + items)
        self.rng = (
            random_state
            if isinstance(random_state, np.random.RandomState)
            else np.random.RandomState(random_state)
        )
        self.max_rounds = max_rounds

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean array: ``items[k]`` is a positive of ``users[k]`` (same shape as the inputs)."""
        keys = np.asarray(users, np.int64) * self.n_items + np.asarray(items, np.int64)
        if len(self._keys) == 0:
            return np.zeros(keys.shape, bool)
        pos = np.searchsorted(self._keys, keys)
        pos = np.minimum(pos, len(self._keys) - 1)
        return self._keys[pos] == keys

    def sample(self, users: np.ndarray, n_neg: int = 1) -> np.ndarray:
        """Negatives per user: shape ``(len(users),)`` if ``n_neg == 1`` else ``(len(users), n_neg)``."""
        users = np.asarray(users, np.int64)
        shape = users.shape if n_neg == 1 else (*users.shape, n_neg)
        u = users if n_neg == 1 else np.broadcast_to(users[..., None], shape)
        neg = self.rng.randint(0, self.n_items, size=shape).astype(np.int64)
        bad = np.flatnonzero(self.is_positive(u, neg).ravel())
        flat_u, flat_n = u.ravel(), neg.reshape(-1)  # reshape of a fresh array is a view: edits land in neg
        for _ in range(self.max_rounds):
            if len(bad) == 0:
                break
            flat_n[bad] = self.rng.randint(0, self.n_items, size=len(bad))
            bad = bad[self.is_positive(flat_u[bad], flat_n[bad])]
        if len(bad):
            log.warning(
                "negative sampling: %d draws stayed positives (users with nearly every item)", len(bad)
            )
        return neg


def minibatches(
    n: int, batch_size: int, rng: np.random.RandomState, *, shuffle: bool = True
) -> Iterator[np.ndarray]:
    """Index arrays covering ``range(n)`` in (shuffled) chunks of ``batch_size``; the last may be shorter."""
    if batch_size <= 0:
        raise DataError(f"batch_size must be positive; got {batch_size}")
    order = rng.permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]
