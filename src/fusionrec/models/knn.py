"""Neighbourhood collaborative filtering: item-based and user-based k-NN, and EASE.

Similarities are computed block by block as sparse products and pruned to the top ``neighbors`` per row, so
memory stays ``O(block × n + n × neighbors)`` rather than ``n²``. Scoring is one sparse product per batch of
users. Everything the models score with is stored as CSR parts (numpy arrays) so artifacts are plain data.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Features
from fusionrec.data.graph import knn_cosine
from fusionrec.errors import ConfigError
from fusionrec.models.base import Recommender
from fusionrec.ranking import top_k

log = logging.getLogger("fusionrec")

SIMILARITIES = ("cosine", "bm25")


# ---------------------------------------------------------------------------------------------- helpers


def bm25_weight(docs: sp.csr_matrix, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """Okapi BM25 weights of a documents × terms matrix (rows are documents).

    A term's idf falls with the number of documents it occurs in; each entry is saturated by ``k1`` and
    normalised by its document's length relative to the mean (strength ``b``).
    """
    docs = sp.csr_matrix(docs, dtype=np.float32, copy=True)
    n_docs = docs.shape[0]
    df = np.bincount(docs.indices, minlength=docs.shape[1]).astype(np.float64)
    idf = np.log(max(n_docs, 1)) - np.log1p(df)  # ≥ 0 except for terms in (nearly) every document
    idf = np.maximum(idf, 0.0)
    lengths = np.asarray(docs.sum(axis=1)).ravel().astype(np.float64)
    avg = lengths.mean() if len(lengths) and lengths.mean() > 0 else 1.0
    row_norm = np.repeat(k1 * (1.0 - b + b * lengths / avg), np.diff(docs.indptr))
    tf = docs.data.astype(np.float64)
    docs.data = (tf * (k1 + 1.0) / (tf + row_norm) * idf[docs.indices]).astype(np.float32)
    docs.eliminate_zeros()
    return docs


def _to_parts(m: sp.csr_matrix, with_data: bool = True) -> tuple[np.ndarray, ...]:
    m = sp.csr_matrix(m)
    m.sort_indices()
    parts = (m.indptr.astype(np.int64), m.indices.astype(np.int32))
    return parts + (m.data.astype(np.float32),) if with_data else parts


def _from_parts(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray | None, shape: tuple[int, int]):
    if data is None:
        data = np.ones(len(indices), np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=shape)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _neighbour_similarity(model: ItemKNN | UserKNN, vectors: sp.csr_matrix) -> sp.csr_matrix:
    """Pruned (optionally BM25-weighted) cosine between the rows of ``vectors``, per the model's parameters."""
    _check_choice("similarity", model.similarity, SIMILARITIES)
    if int(model.neighbors) < 1:
        raise ConfigError(f"neighbors must be a positive integer; got {model.neighbors}")
    if model.similarity == "bm25":
        vectors = bm25_weight(vectors, model.k1, model.b)
    return knn_cosine(
        vectors, int(model.neighbors), include_self=False, shrink=float(model.shrink), positive_only=True
    )


class _HistoryMixin:
    """Stores the binary training matrix as CSR parts (``history_indptr_``, ``history_indices_``)."""

    def _store_history(self, user_items: sp.csr_matrix) -> None:
        binary = user_items.copy()
        binary.data[:] = 1.0
        self.history_indptr_, self.history_indices_ = _to_parts(binary, with_data=False)
        self._history = binary

    def _history_matrix(self) -> sp.csr_matrix:
        if getattr(self, "_history", None) is None:
            self._history = _from_parts(
                self.history_indptr_, self.history_indices_, None, (self.n_users_, self.n_items_)
            )
        return self._history

    def forget_user_rows(self, idx: int) -> None:
        """Remove user ``idx``'s training row (used when a user asks to be forgotten)."""
        self.check_fitted()
        keep = np.delete(np.arange(self.n_users_), idx)
        self._store_history(self._history_matrix()[keep])
        self.n_users_ -= 1

    def _new_row(self, item_idx: np.ndarray) -> sp.csr_matrix:
        item_idx = np.unique(np.asarray(item_idx, dtype=np.int64))
        return sp.csr_matrix(
            (np.ones(len(item_idx), np.float32), (np.zeros(len(item_idx), np.int64), item_idx)),
            shape=(1, self.n_items_),
        )


# ---------------------------------------------------------------------------------------------- models


class ItemKNN(_HistoryMixin, Recommender):
    """Item-based k-NN: an item scores by its similarity to the items the user has interacted with.

    Items are represented by their column of the user × item matrix, optionally BM25-weighted (users with
    many interactions count less, popular items are length-normalised), and compared by cosine with optional
    ``shrink``. Each item keeps its top ``neighbors``; ``score(u, j) = Σ_{i ∈ N(j)} x_ui · s_ji``. On binary
    data BM25's saturation and length terms scale each item's vector by a constant, which cosine cancels, so
    ``k1`` and ``b`` only matter together with ``shrink``; the idf part always does.

    References: Sarwar et al., "Item-based collaborative filtering recommendation algorithms", WWW 2001;
    Deshpande & Karypis, "Item-based top-N recommendation algorithms", TOIS 2004.
    """

    name = "itemknn"
    search_space = {
        "neighbors": ("int", 5, 1000, "log"),
        "similarity": ("categorical", ["cosine", "bm25"]),
        "shrink": ("float", 0.0, 100.0),
        "k1": ("float", 0.5, 3.0),
        "b": ("float", 0.0, 1.0),
    }

    def __init__(
        self,
        *,
        neighbors: int = 100,
        similarity: str = "bm25",
        shrink: float = 0.0,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> None:
        self.neighbors = neighbors
        self.similarity = similarity
        self.shrink = shrink
        self.k1 = k1
        self.b = b

    def _fit(
        self, user_items: sp.csr_matrix, features: Features | None, *, valid: sp.csr_matrix | None
    ) -> None:
        self._store_history(user_items)
        sim = _neighbour_similarity(self, self._history.T.tocsr())
        # Scoring multiplies user rows by simᵀ; keep that orientation as CSR.
        self._sim_t = sim.T.tocsr()
        self.sim_t_indptr_, self.sim_t_indices_, self.sim_t_data_ = _to_parts(self._sim_t)

    def _after_load(self) -> None:
        self._history = None
        self._sim_t = _from_parts(
            self.sim_t_indptr_, self.sim_t_indices_, self.sim_t_data_, (self.n_items_, self.n_items_)
        )

    def _reset(self) -> None:
        super()._reset()
        self._history = self._sim_t = None

    def score(self, users: np.ndarray) -> np.ndarray:
        self.check_fitted()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        return (self._history_matrix()[users] @ self._sim_t).toarray().astype(np.float32, copy=False)

    def fold_in_user(self, item_idx: np.ndarray) -> np.ndarray:
        self.check_fitted()
        return (self._new_row(item_idx) @ self._sim_t).toarray().ravel().astype(np.float32, copy=False)


class UserKNN(_HistoryMixin, Recommender):
    """User-based k-NN: a user's scores are the similarity-weighted sum of the top ``neighbors`` users' rows.

    Users are compared by cosine over their (optionally BM25-weighted, popular items count less) item rows,
    with optional ``shrink``.

    References: Herlocker et al., "An algorithmic framework for performing collaborative filtering",
    SIGIR 1999.
    """

    name = "userknn"
    search_space = {
        "neighbors": ("int", 5, 500, "log"),
        "similarity": ("categorical", ["cosine", "bm25"]),
        "shrink": ("float", 0.0, 100.0),
        "k1": ("float", 0.5, 3.0),
        "b": ("float", 0.0, 1.0),
    }

    def __init__(
        self,
        *,
        neighbors: int = 50,
        similarity: str = "cosine",
        shrink: float = 0.0,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> None:
        self.neighbors = neighbors
        self.similarity = similarity
        self.shrink = shrink
        self.k1 = k1
        self.b = b

    def _fit(
        self, user_items: sp.csr_matrix, features: Features | None, *, valid: sp.csr_matrix | None
    ) -> None:
        self._store_history(user_items)
        sim = _neighbour_similarity(self, self._history)
        self._sim = sim
        self.sim_indptr_, self.sim_indices_, self.sim_data_ = _to_parts(sim)

    def _after_load(self) -> None:
        self._history = None
        self._sim = _from_parts(
            self.sim_indptr_, self.sim_indices_, self.sim_data_, (self.n_users_, self.n_users_)
        )

    def forget_user_rows(self, idx: int) -> None:
        """Remove user ``idx`` as a row of the history and as a row and column of the user × user similarity."""
        keep = np.delete(np.arange(self.n_users_), idx)
        super().forget_user_rows(idx)
        self._sim = self._sim[keep][:, keep].tocsr()
        self.sim_indptr_, self.sim_indices_, self.sim_data_ = _to_parts(self._sim)

    def _reset(self) -> None:
        super()._reset()
        self._history = self._sim = None

    def score(self, users: np.ndarray) -> np.ndarray:
        self.check_fitted()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        return (self._sim[users] @ self._history_matrix()).toarray().astype(np.float32, copy=False)

    def fold_in_user(self, item_idx: np.ndarray) -> np.ndarray:
        """Similarity of the new user to every training user, pruned to ``neighbors``, times their rows."""
        self.check_fitted()
        hist = self._history_matrix()
        # The new user is weighted as one more row of the training collection.
        stacked = sp.vstack([hist, self._new_row(item_idx)]).tocsr()
        if self.similarity == "bm25":
            stacked = bm25_weight(stacked, self.k1, self.b)
        train, new = stacked[:-1], stacked[-1:]
        norms = np.sqrt(np.asarray(train.multiply(train).sum(axis=1)).ravel())
        new_norm = float(np.sqrt(new.multiply(new).sum()))
        dots = np.asarray((train @ new.T).todense()).ravel()
        denom = norms * new_norm + float(self.shrink)
        sims = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
        top, _ = top_k(sims[None, :], min(int(self.neighbors), len(sims)))
        kept = np.zeros_like(sims)
        kept[top[0]] = sims[top[0]]
        sims = np.maximum(kept, 0.0).astype(np.float32)
        return np.asarray(hist.T @ sims).ravel().astype(np.float32, copy=False)


class EASE(_HistoryMixin, Recommender):
    """EASE: a closed-form item × item linear model with a zero diagonal, ``B = I − P / diag(P)``.

    ``P = (XᵀX + reg·I)⁻¹``. The weight matrix is dense (``n_items²`` floats), so it suits catalogues up to
    a few tens of thousands of items.

    References: Steck, "Embarrassingly shallow autoencoders for sparse data", WWW 2019.
    """

    name = "ease"
    search_space = {"reg": ("float", 1.0, 1e4, "log")}
    max_items = 40_000

    def __init__(self, *, reg: float = 200.0) -> None:
        self.reg = reg

    def _fit(
        self, user_items: sp.csr_matrix, features: Features | None, *, valid: sp.csr_matrix | None
    ) -> None:
        self._check_size(user_items.shape[1])
        self._store_history(user_items)
        x = self._history
        self.weights_ = self._solve((x.T @ x).toarray().astype(np.float64))

    def _check_size(self, n_items: int) -> None:
        if n_items > self.max_items:
            raise ConfigError(
                f"{self.name} builds a dense {n_items}×{n_items} matrix; that is too large. Use itemknn or als "
                f"for catalogues over {self.max_items} items."
            )
        if float(self.reg) <= 0:
            raise ConfigError(f"reg must be positive; got {self.reg}")

    def _solve(self, gram: np.ndarray) -> np.ndarray:
        """``B = I − P / diag(P)`` with a zero diagonal, ``P = (gram + reg·I)⁻¹``; ``gram`` is overwritten."""
        n_items = gram.shape[0]
        gram[np.diag_indices(n_items)] += float(self.reg)
        weights = np.linalg.inv(gram)
        del gram
        weights /= -np.diag(weights)[None, :]  # in place: n_items² float64 is the memory bottleneck
        weights[np.diag_indices(n_items)] = 0.0
        return weights.astype(np.float32)

    def _after_load(self) -> None:
        self._history = None

    def _reset(self) -> None:
        super()._reset()
        self._history = None

    def score(self, users: np.ndarray) -> np.ndarray:
        self.check_fitted()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        return np.asarray(self._history_matrix()[users] @ self.weights_, dtype=np.float32)

    def fold_in_user(self, item_idx: np.ndarray) -> np.ndarray:
        self.check_fitted()
        item_idx = np.unique(np.asarray(item_idx, dtype=np.int64))
        return self.weights_[item_idx].sum(axis=0).astype(np.float32)
