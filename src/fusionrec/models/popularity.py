"""Non-personalised baselines: most popular and random."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Features
from fusionrec.models.base import Recommender


class MostPopular(Recommender):
    """Ranks items by their number of training interactions (the same list for everyone)."""

    name = "most-popular"

    def __init__(self) -> None:
        pass

    def _fit(
        self, user_items: sp.csr_matrix, features: Features | None, *, valid: sp.csr_matrix | None
    ) -> None:
        counts = np.asarray(user_items.sum(axis=0)).ravel().astype(np.float32)
        self.item_popularity_ = counts

    def score(self, users: np.ndarray) -> np.ndarray:
        self.check_fitted()
        users = np.atleast_1d(users)
        return np.broadcast_to(self.item_popularity_, (len(users), len(self.item_popularity_))).copy()

    def fold_in_user(self, item_idx: np.ndarray) -> np.ndarray:
        return self.item_popularity_.copy()


class RandomModel(Recommender):
    """Uniformly random scores, fixed per (user, item) by ``random_state`` (a floor for every metric)."""

    name = "random"

    def __init__(self, *, random_state: int = 0) -> None:
        self.random_state = random_state

    def _fit(
        self, user_items: sp.csr_matrix, features: Features | None, *, valid: sp.csr_matrix | None
    ) -> None:
        self.seed_ = int(self.random_state)

    def score(self, users: np.ndarray) -> np.ndarray:
        self.check_fitted()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        out = np.empty((len(users), self.n_items_), np.float32)
        for r, u in enumerate(users):  # per-user stream keeps batch == single-user
            out[r] = np.random.default_rng([self.seed_, int(u)]).random(self.n_items_, dtype=np.float32)
        return out

    def fold_in_user(self, item_idx: np.ndarray) -> np.ndarray:
        return np.random.default_rng(self.seed_).random(self.n_items_, dtype=np.float32)
