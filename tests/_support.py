"""Small synthetic interaction sets shared by tests (imported as ``from _support import ...``)."""

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Features


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


def planted_ratings_csv(path, n_users=60, n_items=40, seed=0):
    """A generic interactions table of ratings 1-5 from two taste groups (user and item parity)."""
    rng = np.random.RandomState(seed)
    lines = ["user_id,item_id,rating"]
    for u in range(n_users):
        for i in rng.choice(n_items, 20, replace=False):
            base = 4.5 if u % 2 == i % 2 else 1.5
            lines.append(f"u{u},m{i},{min(5.0, max(1.0, round(base + rng.normal(0, 0.5))))}")
    path.write_text("\n".join(lines) + "\n")
    return path


def group_features(n_items: int, names=("poster", "blurb", "audio"), seed: int = 0) -> Features:
    """Modalities with arbitrary names whose first column encodes the item group (i % 2), as the checkerboard's."""
    rng = np.random.RandomState(seed)
    out = {}
    for j, name in enumerate(names):
        x = rng.normal(0, 0.2, (n_items, 4 + j)).astype(np.float32)
        x[:, 0] += np.where(np.arange(n_items) % 2 == 0, 1.0, -1.0)
        out[name] = x
    return Features(out)


def quiet(model):
    """The model with its progress bars off."""
    model.show_progress = False
    return model
