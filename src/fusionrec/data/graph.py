"""Similarities and sparse graphs: the one cosine-kNN builder, normalised user–item adjacency, item–item graphs.

Everything is scipy CSR float32 and built once (or once per epoch for pruned graphs) with whole-array numpy
operations; no dense ``n_items × n_items`` matrix is kept (kNN similarities are computed in row blocks).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fusionrec.errors import ConfigError, DataError
from fusionrec.ranking import top_k

# Dense similarity entries computed at once for sparse inputs (block rows × n); ~16 MB of float32 per buffer.
_BLOCK_ENTRIES = 4_000_000
# Below this many entries (~100 MB) the right-hand factor of a sparse similarity product is made dense.
_DENSE_RHS_ENTRIES = 25_000_000


def sym_normalise(adj: sp.spmatrix) -> sp.csr_matrix:
    """``D^-1/2 A D^-1/2`` with D the row sums (rows with no edges stay empty)."""
    adj = sp.csr_matrix(adj, dtype=np.float32)
    deg = np.asarray(adj.sum(axis=1)).ravel()
    inv = np.zeros_like(deg, dtype=np.float32)
    nz = deg > 0
    inv[nz] = deg[nz] ** -0.5
    d = sp.diags(inv)
    out = (d @ adj @ d).tocsr().astype(np.float32)
    out.sort_indices()
    return out


def bipartite_adjacency(user_items: sp.spmatrix) -> sp.csr_matrix:
    """The ``(U+I) × (U+I)`` block matrix ``[[0, R], [Rᵀ, 0]]`` with binary R."""
    r = sp.csr_matrix(user_items, dtype=np.float32)
    r.data[:] = 1.0
    return sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)


def normalised_adjacency(user_items: sp.spmatrix) -> sp.csr_matrix:
    """Symmetrically normalised user–item graph ``D^-1/2 [[0, R], [Rᵀ, 0]] D^-1/2`` (LightGCN).

    Users take rows/columns ``0..U-1`` and items ``U..U+I-1``.

    References
    ----------
    He, Deng, Wang, Li, Zhang, Wang. LightGCN: Simplifying and Powering Graph Convolution Network for
    Recommendation. SIGIR 2020.
    """
    return sym_normalise(bipartite_adjacency(user_items))


def prune_edges(
    user_items: sp.spmatrix, drop: float, rng: np.random.RandomState, *, degree_sensitive: bool = True
) -> sp.csr_matrix:
    """Keep a ``1 − drop`` fraction of the user–item edges, sampled without replacement.

    With ``degree_sensitive`` an edge (u, i) is kept with weight ``1/sqrt(d_u d_i)`` (FREEDOM's pruning:
    edges between popular nodes go first); otherwise uniformly. Weighted sampling without replacement uses
    exponential keys (``log(uniform) / weight``, keep the largest), one vectorised pass.
    """
    if not 0.0 <= drop < 1.0:
        raise ConfigError(f"edge dropout must be in [0, 1); got {drop}")
    r = sp.coo_matrix(user_items, dtype=np.float32)
    n_keep = int(round(r.nnz * (1.0 - drop)))
    if drop == 0.0 or n_keep >= r.nnz:
        return sp.csr_matrix(r)
    if degree_sensitive:
        du = np.asarray(sp.csr_matrix(r).sum(axis=1)).ravel()
        di = np.asarray(sp.csr_matrix(r).sum(axis=0)).ravel()
        w = 1.0 / np.sqrt(du[r.row] * di[r.col])
        keys = np.log(rng.random_sample(r.nnz) + 1e-300) / w
    else:
        keys = rng.random_sample(r.nnz)
    keep = np.argpartition(-keys, n_keep - 1)[:n_keep]
    return sp.csr_matrix((np.ones(n_keep, np.float32), (r.row[keep], r.col[keep])), shape=r.shape)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float32: cosine becomes a dot product."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_cosine(
    vectors: np.ndarray | sp.spmatrix,
    k: int,
    *,
    include_self: bool = True,
    present: np.ndarray | None = None,
    shrink: float = 0.0,
    positive_only: bool = False,
    block: int | None = None,
) -> sp.csr_matrix:
    """Sparse top-``k`` cosine neighbours of every row (values = similarities), computed in row blocks.

    The one kNN builder: content graphs pass dense features, neighbourhood models sparse interaction
    vectors. ``shrink`` damps similarities supported by little overlap (``a·b / (|a||b| + shrink)``);
    ``positive_only`` drops neighbours with similarity ≤ 0; rows where ``present`` is False (content
    missing) get no neighbours and are nobody's neighbour. Ties at the cut go to the lower column (the
    shared :func:`~fusionrec.ranking.top_k`). Memory is ``O(block × n + n k)``, never ``n²``.
    """
    sparse = sp.issparse(vectors)
    if shrink and not sparse:
        raise ConfigError("shrink applies to sparse (interaction) vectors; dense features take shrink=0")
    if sparse:
        x = sp.csr_matrix(vectors, dtype=np.float32)
    else:
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2:
            raise DataError(f"features must be 2-D (n_items, d); got shape {x.shape}")
    n = x.shape[0]
    if k < 1:
        raise ConfigError(f"knn k must be >= 1; got {k}")
    k = min(int(k), n if include_self else n - 1)
    if k < 1:
        return sp.csr_matrix((n, n), dtype=np.float32)
    if sparse:
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel()).astype(np.float32)
        rhs = x.T.tocsr()
        if rhs.shape[0] * rhs.shape[1] <= _DENSE_RHS_ENTRIES:
            rhs = rhs.toarray()  # the block products are nearly dense; sparse × dense is several times faster
        block = block or max(1, _BLOCK_ENTRIES // max(n, 1))
    else:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms > 0, norms, 1.0)
        rhs = x.T
        block = block or 1024
    absent = None if present is None else ~np.asarray(present, dtype=bool)
    rows, cols, vals = [], [], []
    for start in range(0, n, block):
        stop = min(start + block, n)
        if sparse:
            dots = x[start:stop] @ rhs
            dots = dots if isinstance(dots, np.ndarray) else dots.toarray()
            denom = norms[start:stop, None] * norms[None, :] + np.float32(shrink)
            sim = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
        else:
            sim = x[start:stop] @ rhs
        r = np.arange(stop - start)
        if not include_self:
            sim[r, start + r] = -np.inf
        if absent is not None:
            sim[:, absent] = -np.inf
        idx, val = top_k(sim, k)
        rows.append(np.repeat(start + r, k))
        cols.append(idx.ravel())
        vals.append(val.ravel())
    rows_a, cols_a, vals_a = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    keep = cols_a >= 0
    if positive_only:
        keep &= vals_a > 0
    if absent is not None:
        keep &= ~absent[rows_a]
    out = sp.csr_matrix((vals_a[keep], (rows_a[keep], cols_a[keep])), shape=(n, n), dtype=np.float32)
    out.sort_indices()
    return out


def fused_cosine(
    queries: dict[str, np.ndarray], unit_features: dict[str, np.ndarray], present: dict[str, np.ndarray]
) -> np.ndarray:
    """Mean cosine over modalities between query rows and every item: ``(n_queries, n_items)`` float32.

    ``queries[m]`` is ``(q, d_m)`` content; ``unit_features[m]`` the items' unit-norm rows and ``present[m]``
    which items have that content. Each item averages over the modalities both sides have; an item sharing
    none with the query scores -inf.
    """
    if not queries:
        raise DataError("no modality to compare by: the query has no content")
    n_queries = len(np.atleast_2d(next(iter(queries.values()))))
    n_items = len(next(iter(unit_features.values())))
    total = np.zeros((n_queries, n_items), np.float32)
    count = np.zeros(n_items, np.float32)
    for m, q in queries.items():
        ok = np.asarray(present[m], dtype=bool)
        sims = unit_rows(np.atleast_2d(q)) @ unit_features[m].T
        total += np.where(ok[None, :], sims, 0.0)
        count += ok
    return np.where(count > 0, total / np.maximum(count, 1), -np.inf).astype(np.float32)


def column_cosine(user_items: sp.spmatrix, items: np.ndarray) -> np.ndarray:
    """Summed cosine between every item's column of ``user_items`` and the columns ``items``: ``(n_items,)``."""
    X = sp.csc_matrix(user_items, dtype=np.float32)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=0)).ravel()) + 1e-12
    users = X[:, items] @ (1.0 / norms[items])
    return (np.asarray(X.T @ users).ravel() / norms).astype(np.float32)


def item_item_knn_graph(
    features: np.ndarray,
    k: int = 10,
    *,
    weighted: bool = False,
    include_self: bool = True,
    present: np.ndarray | None = None,
    block: int | None = None,
) -> sp.csr_matrix:
    """Item–item graph from content: each item linked to its ``k`` most cosine-similar items, normalised.

    Edges carry 1 (``weighted=False``, as FREEDOM) or the cosine similarity (clipped at 0); the result is
    ``D^-1/2 A D^-1/2`` with D the row sums. Items whose content is missing (``present`` False) are left
    out of the graph rather than linked through imputed features. Memory is ``O(block × n + n k)``.

    References
    ----------
    Zhou, Shen. A Tale of Two Graphs: Freezing and Denoising Graph Structures for Multimodal
    Recommendation. ACM MM 2023.
    """
    knn = knn_cosine(features, k, include_self=include_self, present=present, block=block)
    knn.data = np.maximum(knn.data, 0.0) if weighted else np.ones_like(knn.data)
    knn.eliminate_zeros()
    return sym_normalise(knn)
