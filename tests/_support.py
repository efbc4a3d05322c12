"""Small synthetic interaction sets shared by tests (imported as ``from _support import ...``)."""

import numpy as np
import scipy.sparse as sp


def checkerboard(n_users: int = 40, n_items: int = 30, seed: int = 0) -> sp.csr_matrix:
    """Two user groups × two item groups: group-0 users like group-0 items, group-1 users group-1 items."""
    rng = np.random.RandomState(seed)
    rows, cols = [], []
    for u in range(n_users):
        g = u % 2
        items = [i for i in range(n_items) if i % 2 == g]
        chosen = rng.choice(items, size=int(len(items) * 0.7), replace=False)
        rows += [u] * len(chosen)
        cols += list(chosen)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
