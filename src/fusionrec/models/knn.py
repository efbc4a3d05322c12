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


def _neighbour_search_space(max_neighbors: int) -> dict[str, tuple]:
    """What tuning may search for the k-NN models (they differ only in how many neighbours are sensible)."""
    return {
        "neighbors": ("int", 5, max_neighbors, "log"),
        "similarity": ("categorical", list(SIMILARITIES)),
        "shrink": ("float", 0.0, 100.0),
        "k1": ("float", 0.5, 3.0),
        "b": ("float", 0.0, 1.0),
        "popularity": ("float", 0.0, 1.0),
    }


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


def single_support_share(vectors: sp.csr_matrix, sim: sp.csr_matrix, max_pairs: int = 200_000) -> float:
    """Share of the neighbour pairs in ``sim`` whose rows of ``vectors`` (binary) overlap in exactly one column.

    For item-kNN: the share of item–item similarities that rest on a single user who took both items. Near
    1 on sparse data (the similarities are coincidences), near 0 on dense data. At most ``max_pairs`` pairs
    (a fixed-seed sample) are counted, so large catalogues pay ``O(max_pairs)``.
    """
    pairs = sp.coo_matrix(sim)
    if pairs.nnz == 0:
        return 1.0
    rows, cols = pairs.row, pairs.col
    if pairs.nnz > max_pairs:
        pick = np.random.default_rng(0).choice(pairs.nnz, max_pairs, replace=False)
        rows, cols = rows[pick], cols[pick]
    binary = sp.csr_matrix(vectors, dtype=np.float32, copy=True)
    binary.data[:] = 1.0
    overlap = np.asarray(binary[rows].multiply(binary[cols]).sum(axis=1)).ravel()
    return float(np.mean(overlap <= 1.0))


def _popularity_exponent(model: ItemKNN | UserKNN, vectors: sp.csr_matrix, sim: sp.csr_matrix) -> float:
    """The model's ``popularity`` β, or (``None``) the square of :func:`single_support_share`."""
    if model.popularity is None:
        return single_support_share(vectors, sim) ** 2
    if not float(model.popularity) >= 0:
        raise ConfigError(f"popularity must be ≥ 0 (or None: from the data); got {model.popularity!r}")
    return float(model.popularity)


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

    ``popularity`` (β) multiplies item ``j``'s similarities by ``deg_j^β`` (its number of training users),
    so ``score(u, j) = deg_j^β Σ_i x_ui · s_ji``: β = 0 is plain cosine, β = 1 turns cosine's
    ``c_ij / √(deg_i deg_j)`` into ``c_ij · √(deg_j / deg_i)``, leaning towards what many users take.
    Cosine divides by ``√deg_j``, which on sparse data ranks items seen once or twice first: their
    similarities rest on a single shared user (a coincidence, not evidence), and on the benchmark thinned to
    5 interactions per user that left item-kNN at 0.036 R@20 against most-popular's 0.087. The default
    (``None``) sets β = s², where s is the share of the kept neighbour pairs supported by exactly one user
    (:func:`single_support_share`; β is stored as ``popularity_``). On the dense benchmark s = 0.14 (β 0.02:
    plain cosine, where it is best; s itself cost 0.003 R@20 there), thinned to 10 and 5 interactions per
    user s = 0.94 and 0.98, on a sparse synthetic set 0.88. The neighbours kept are the same (scaling a row
    does not change its top ``neighbors``).

    References: Sarwar et al., "Item-based collaborative filtering recommendation algorithms", WWW 2001;
    Deshpande & Karypis, "Item-based top-N recommendation algorithms", TOIS 2004.
    """

    name = "itemknn"
    search_space = _neighbour_search_space(max_neighbors=1000)

    def __init__(
        self,
        *,
        neighbors: int = 100,
        similarity: str = "bm25",
        shrink: float = 0.0,
        k1: float = 1.2,
        b: float = 0.75,
        popularity: float | None = None,
    ) -> None:
        self.neighbors = neighbors
        self.similarity = similarity
        self.shrink = shrink
        self.k1 = k1
        self.b = b
        self.popularity = popularity

    def _fit(
        self, user_items: sp.csr_matrix, features: Features | None, *, valid: sp.csr_matrix | None
    ) -> None:
        self._store_history(user_items)
        item_users = self._history.T.tocsr()
        sim = _neighbour_similarity(self, item_users)
        self.popularity_ = beta = _popularity_exponent(self, item_users, sim)
        if beta:
            degree = np.diff(item_users.indptr).astype(np.float64)
            sim = sp.csr_matrix(sp.diags((degree**beta).astype(np.float32)) @ sim)
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
    with optional ``shrink``. ``popularity`` (β) multiplies item ``j``'s score by ``deg_j^β`` as in
    :class:`ItemKNN`, and its default is set from the data the same way, from the share of neighbouring
    users who share exactly one item: with 5 interactions per user nearly all do, the neighbours are
    coincidences and β (0.96) lifts user-kNN from 0.078 to 0.088 R@20 (most-popular 0.087); on the dense
    benchmark β = 0.00 leaves it as it was.

    References: Herlocker et al., "An algorithmic framework for performing collaborative filtering",
    SIGIR 1999.
    """

    name = "userknn"
    search_space = _neighbour_search_space(max_neighbors=500)

    def __init__(
        self,
        *,
        neighbors: int = 50,
        similarity: str = "cosine",
        shrink: float = 0.0,
        k1: float = 1.2,
        b: float = 0.75,
        popularity: float | None = None,
    ) -> None:
        self.neighbors = neighbors
        self.similarity = similarity
        self.shrink = shrink
        self.k1 = k1
        self.b = b
        self.popularity = popularity

    def _fit(
        self, user_items: sp.csr_matrix, features: Features | None, *, valid: sp.csr_matrix | None
    ) -> None:
        self._store_history(user_items)
        sim = _neighbour_similarity(self, self._history)
        self.popularity_ = beta = _popularity_exponent(self, self._history, sim)
        degree = np.diff(self._history.tocsc().indptr).astype(np.float64)
        self.item_weight_ = (degree**beta).astype(np.float32)
        self._sim = sim
        self.sim_indptr_, self.sim_indices_, self.sim_data_ = _to_parts(sim)

    def _after_load(self) -> None:
        self._history = None
        if getattr(self, "item_weight_", None) is None:  # artifacts written before the weight existed
            self.item_weight_ = np.ones(self.n_items_, np.float32)
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
        scores = (self._sim[users] @ self._history_matrix()).toarray().astype(np.float32, copy=False)
        return scores * self.item_weight_

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
        return (np.asarray(hist.T @ sims).ravel() * self.item_weight_).astype(np.float32, copy=False)


class EASE(_HistoryMixin, Recommender):
    """EASE: a closed-form item × item linear model with a zero diagonal, ``B = I − P / diag(P)``.

    ``P = (XᵀX + reg·I)⁻¹``. The weight matrix is dense (``n_items²`` floats), so it suits catalogues up to
    a few tens of thousands of items.

    ``bias_reg`` adds an item bias: ``X`` gains a column of ones (an item every user has), regressed
    jointly with the others, so ``score(u, j) = Σ_i x_ui B_ij + b_j`` and the item-item weights explain what
    co-occurrence adds beyond popularity. That column's penalty is ``bias_reg`` times its Gram diagonal (the
    number of users), so its pull does not change with the data's size. Without it EASE has no intercept:
    on sparse data a user's few items co-occur with few others, everything else scores 0, and the list's
    tail is arbitrary (0.064 R@20 against most-popular's 0.087 on the benchmark thinned to 5 interactions
    per user; 0.090 with the bias). ``None`` fits the original model. ``reg`` is not the cause there:
    from 100 to 10⁴ it leaves that figure within 0.001.

    References: Steck, "Embarrassingly shallow autoencoders for sparse data", WWW 2019.
    """

    name = "ease"
    search_space = {"reg": ("float", 1.0, 1e4, "log"), "bias_reg": ("float", 0.1, 30.0, "log")}
    max_items = 40_000

    def __init__(self, *, reg: float = 200.0, bias_reg: float | None = 3.0) -> None:
        self.reg = reg
        self.bias_reg = bias_reg

    def _fit(
        self, user_items: sp.csr_matrix, features: Features | None, *, valid: sp.csr_matrix | None
    ) -> None:
        self._check_settings(user_items.shape[1])
        self._store_history(user_items)
        x = self._history
        self.weights_, self.item_bias_ = self._solve((x.T @ x).toarray().astype(np.float64), x)

    def _check_settings(self, n_items: int) -> None:
        if n_items > self.max_items:
            raise ConfigError(
                f"{self.name} builds a dense {n_items}×{n_items} matrix; that is too large. Use itemknn or als "
                f"for catalogues over {self.max_items} items."
            )
        if float(self.reg) <= 0:
            raise ConfigError(f"reg must be positive; got {self.reg}")
        if self.bias_reg is not None and not float(self.bias_reg) > 0:
            raise ConfigError(f"bias_reg must be positive (or None: no item bias); got {self.bias_reg!r}")

    def _solve(self, gram: np.ndarray, x: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """Item-item weights ``B`` (zero diagonal) and item biases from the items' Gram matrix ``gram``
        (``n_items²`` float64, overwritten), with ``reg`` on its diagonal and, when ``bias_reg`` is set, the
        column of ones of the training matrix ``x`` beside the items."""
        n_items = gram.shape[0]
        gram[np.diag_indices(n_items)] += float(self.reg)
        if self.bias_reg is not None:  # the column of ones: its products are the item degrees
            full = np.empty((n_items + 1, n_items + 1), np.float64)
            full[:n_items, :n_items] = gram
            del gram
            degree = np.asarray(x.sum(axis=0), dtype=np.float64).ravel()
            full[-1, :n_items] = full[:n_items, -1] = degree
            full[-1, -1] = x.shape[0] * (1.0 + float(self.bias_reg))
            gram = full
        n = gram.shape[0]
        weights = np.linalg.inv(gram)
        del gram
        weights /= -np.diag(weights)[None, :]  # in place: n_items² float64 is the memory bottleneck
        weights[np.diag_indices(n)] = 0.0
        bias = weights[n_items, :n_items] if n > n_items else np.zeros(n_items)
        return weights[:n_items, :n_items].astype(np.float32), bias.astype(np.float32)

    def _after_load(self) -> None:
        self._history = None
        if getattr(self, "item_bias_", None) is None:  # artifacts written before the bias existed
            self.item_bias_ = np.zeros(self.n_items_, np.float32)

    def _reset(self) -> None:
        super()._reset()
        self._history = None

    def score(self, users: np.ndarray) -> np.ndarray:
        self.check_fitted()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        scores = np.asarray(self._history_matrix()[users] @ self.weights_, dtype=np.float32)
        return scores + self.item_bias_

    def fold_in_user(self, item_idx: np.ndarray) -> np.ndarray:
        self.check_fitted()
        item_idx = np.unique(np.asarray(item_idx, dtype=np.int64))
        return (self.weights_[item_idx].sum(axis=0) + self.item_bias_).astype(np.float32)
