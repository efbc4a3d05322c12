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


# Taste groups of sparse_groups / taste_features (user and item index modulo GROUPS).
GROUPS = 6


def sparse_groups(n_users: int = 60, n_items: int = 60, per_user: int = 1, seed: int = 0):
    """Six taste groups (user and item index modulo 6); each user has only ``per_user`` train item of its
    group and two more held out, so interactions alone hardly relate any two items."""
    rng = np.random.RandomState(seed)
    rows, cols, vrows, vcols = [], [], [], []
    for u in range(n_users):
        own = [i for i in range(n_items) if i % GROUPS == u % GROUPS]
        picked = rng.choice(own, per_user + 2, replace=False)
        rows += [u] * per_user
        cols += list(picked[:per_user])
        vrows += [u] * 2
        vcols += list(picked[per_user:])
    shape = (n_users, n_items)
    train = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    held = sp.csr_matrix((np.ones(len(vrows), np.float32), (vrows, vcols)), shape=shape)
    return train, held


def taste_features(n_items: int, seed: int = 0) -> Features:
    """``signal`` encodes the item group; ``noise`` is pure noise."""
    rng = np.random.RandomState(seed)
    signal = rng.normal(0.0, 0.3, (n_items, 8)).astype(np.float32)
    signal[np.arange(n_items), np.arange(n_items) % GROUPS] += 1.0
    return Features({"signal": signal, "noise": rng.normal(size=(n_items, 16)).astype(np.float32)})


def own_group_share(scores: np.ndarray, train: sp.csr_matrix, k: int = 5) -> float:
    """Share of each user's top ``k`` (train items masked) that lies in the user's own taste group."""
    scores = scores.copy()
    scores[train.nonzero()] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(((top % GROUPS) == (np.arange(len(scores))[:, None] % GROUPS)).mean())
