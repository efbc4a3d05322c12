"""Sparse graphs shared by graph recommenders: normalised user–item adjacency, item–item kNN, co-occurrence.

Everything is scipy CSR float32 and built once (or once per epoch for pruned graphs) with whole-array numpy
operations; no dense ``n_items × n_items`` matrix is kept (kNN similarities are computed in row blocks).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fusionrec.errors import ConfigError, DataError


def sym_normalize(adj: sp.spmatrix) -> sp.csr_matrix:
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


def normalized_adjacency(user_items: sp.spmatrix) -> sp.csr_matrix:
    """Symmetrically normalised user–item graph ``D^-1/2 [[0, R], [Rᵀ, 0]] D^-1/2`` (LightGCN).

    Users take rows/columns ``0..U-1`` and items ``U..U+I-1``.

    References
    ----------
    He, Deng, Wang, Li, Zhang, Wang. LightGCN: Simplifying and Powering Graph Convolution Network for
    Recommendation. SIGIR 2020.
    """
    return sym_normalize(bipartite_adjacency(user_items))


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


def topk_per_row(m: sp.spmatrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest stored values of each row of a sparse matrix (ties: lower column first)."""
    m = sp.csr_matrix(m)
    m.sum_duplicates()
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((m.indices, -m.data, rows))  # by row, then value descending
    rank = np.arange(len(order)) - m.indptr[rows[order]]
    sel = order[rank < k]
    out = sp.csr_matrix((m.data[sel], (rows[sel], m.indices[sel])), shape=m.shape, dtype=np.float32)
    out.sort_indices()
    return out


def knn_cosine(
    features: np.ndarray,
    k: int,
    *,
    include_self: bool = True,
    present: np.ndarray | None = None,
    block: int = 1024,
) -> sp.csr_matrix:
    """Sparse top-``k`` cosine neighbours of every row (values = similarities), computed in row blocks.

    Rows where ``present`` is False (content missing) get no neighbours and are nobody's neighbour.
    """
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2:
        raise DataError(f"features must be 2-D (n_items, d); got shape {x.shape}")
    n = x.shape[0]
    if k < 1:
        raise ConfigError(f"knn k must be >= 1; got {k}")
    k = min(k, n if include_self else n - 1)
    if k < 1:
        return sp.csr_matrix((n, n), dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
    absent = None if present is None else ~np.asarray(present, dtype=bool)
    rows, cols, vals = [], [], []
    for start in range(0, n, block):
        sim = x[start : start + block] @ x.T
        r = np.arange(sim.shape[0])
        if not include_self:
            sim[r, start + r] = -np.inf
        if absent is not None:
            sim[:, absent] = -np.inf
        idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        rows.append(np.repeat(start + r, k))
        cols.append(idx.ravel())
        vals.append(np.take_along_axis(sim, idx, axis=1).ravel())
    rows_a, cols_a, vals_a = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    keep = np.isfinite(vals_a)
    if absent is not None:
        keep &= ~absent[rows_a]
    out = sp.csr_matrix((vals_a[keep], (rows_a[keep], cols_a[keep])), shape=(n, n), dtype=np.float32)
    out.sort_indices()
    return out


def item_item_knn_graph(
    features: np.ndarray,
    k: int = 10,
    *,
    weighted: bool = False,
    include_self: bool = True,
    present: np.ndarray | None = None,
    block: int = 1024,
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
    return sym_normalize(knn)


def item_cooccurrence_graph(
    user_items: sp.spmatrix, k: int | None = None, *, block: int = 1024
) -> sp.csr_matrix:
    """Item–item co-occurrence counts ``RᵀR`` (no self loops), optionally top-``k`` per row, normalised."""
    r = _binary(user_items)
    return _cooccurrence(r.T.tocsr(), r, k, block)


def user_cooccurrence_graph(
    user_items: sp.spmatrix, k: int | None = None, *, block: int = 1024
) -> sp.csr_matrix:
    """User–user co-occurrence counts ``RRᵀ`` (no self loops), optionally top-``k`` per row, normalised."""
    r = _binary(user_items)
    return _cooccurrence(r, r.T.tocsr(), k, block)


def _binary(m: sp.spmatrix) -> sp.csr_matrix:
    r = sp.csr_matrix(m, dtype=np.float32, copy=True)
    r.data[:] = 1.0
    return r


def _cooccurrence(left: sp.csr_matrix, right: sp.csr_matrix, k: int | None, block: int) -> sp.csr_matrix:
    # Row blocks so that top-k trims each block before the next is built (memory ~ block × n, not n²).
    parts = []
    n = right.shape[1]
    for start in range(0, left.shape[0], block):
        c = left[start : start + block] @ right
        r = np.arange(c.shape[0])
        if k is None:
            c = c.tocoo()
            off = c.row + start != c.col
            parts.append(
                sp.csr_matrix((c.data[off], (c.row[off], c.col[off])), shape=c.shape, dtype=np.float32)
            )
            continue
        dense = c.toarray()  # block × n: argpartition beats sorting millions of sparse entries
        dense[r, start + r] = 0.0
        kk = min(k, n)
        idx = np.argpartition(-dense, kk - 1, axis=1)[:, :kk]
        val = np.take_along_axis(dense, idx, axis=1)
        rows = np.repeat(r, kk)
        keep = val.ravel() > 0
        parts.append(
            sp.csr_matrix(
                (val.ravel()[keep], (rows[keep], idx.ravel()[keep])), shape=c.shape, dtype=np.float32
            )
        )
    if not parts:
        return sp.csr_matrix((0, 0), dtype=np.float32)
    return sym_normalize(sp.vstack(parts, format="csr"))
