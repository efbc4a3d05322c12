"""Ranking kernels: the one top-k, the one masking of seen items, the one ridge fold-in and the one
exploration quota (slots of a list held for new items).

Models (``Recommender.recommend``), the evaluator, the similarity builders in ``data/graph.py`` and the query
core (``recommend.py``, which serving calls) all rank through :func:`top_k`, so a list is the same wherever it
is computed: best score first, ties broken by the lower item index, lists shorter than ``k`` padded with
index -1 and score -inf (non-finite scores never rank). This module sits at the bottom of the package and
imports nothing from it but errors.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from fusionrec.errors import ConfigError

# A ridge fold-in's penalty per folded-in item when the model has no ``reg`` of its own.
DEFAULT_FOLD_IN_REG = 0.01


def mask_rows(scores: np.ndarray, exclude: sp.csr_matrix, users: np.ndarray) -> None:
    """Set ``scores[r, j] = -inf`` for every item j in ``exclude[users[r]]`` (in place, vectorised)."""
    sub = exclude[users]
    rows = np.repeat(np.arange(len(users)), np.diff(sub.indptr))
    cols = sub.indices
    ok = cols < scores.shape[1]
    scores[rows[ok], cols[ok]] = -np.inf


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top ``k`` of a ``(n, m)`` score block: indices and scores, best first.

    Ties go to the lower column index (also at the cut), NaN ranks below everything, and entries that are
    not finite come back as index -1 / score -inf; rows are padded the same way when ``k > m``.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ConfigError(f"top_k ranks a 2-D (rows, items) block; got shape {scores.shape}")
    if not isinstance(k, int | np.integer) or k <= 0:
        raise ConfigError(f"k must be a positive integer; got {k!r}")
    n, m = scores.shape
    kk = min(int(k), m)
    if kk == 0:
        return np.full((n, k), -1, np.int64), np.full((n, k), -np.inf, np.float32)
    if kk < m:
        part = np.sort(_top_partition(scores, kk), axis=1)  # by column first: the stable sort below keeps it
    else:
        part = np.tile(np.arange(m), (n, 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    # NaN sorts last under argsort; -inf entries come after every finite one
    order = np.argsort(-part_scores, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    val = np.take_along_axis(part_scores, order, axis=1).astype(np.float32, copy=False)
    finite = np.isfinite(val)
    idx = np.where(finite, idx, -1)
    val = np.where(finite, val, np.float32(-np.inf))
    if kk < k:
        idx = np.hstack([idx, np.full((n, k - kk), -1, idx.dtype)])
        val = np.hstack([val, np.full((n, k - kk), -np.inf, np.float32)])
    return idx.astype(np.int64), val.astype(np.float32)


def top_k_items(
    scores: np.ndarray, k: int, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` of one score vector with ``exclude`` item indices masked, padding dropped."""
    row = np.array(scores, dtype=np.float32, copy=True)[None, :]
    if exclude is not None and len(exclude):
        row[0, np.asarray(exclude, dtype=np.int64)] = -np.inf
    idx, val = top_k(row, k)
    keep = idx[0] >= 0
    return idx[0][keep], val[0][keep]


def ridge_fold_in(
    item_vectors: np.ndarray,
    item_idx: np.ndarray,
    reg: float | None,
    targets: np.ndarray | None = None,
) -> np.ndarray:
    """The vector of a user who interacted with ``item_idx``, item vectors held fixed (one ridge solve).

    ``argmin_u Σ_i (t_i − u·v_i)² + λ|u|²`` with ``λ = reg · len(item_idx)``: the penalty grows with the list so
    a long history is not shrunk less than a short one. ``targets`` ``t`` default to 1 (implicit feedback);
    rating models pass what is left of the rating after their biases. Solved in float64; an empty list gives
    zeros.
    """
    V = np.asarray(item_vectors)
    item_idx = np.asarray(item_idx, dtype=np.int64)
    if len(item_idx) == 0:
        return np.zeros(V.shape[1], np.float32)
    Vi = V[item_idx].astype(np.float64)
    lam = float(reg or DEFAULT_FOLD_IN_REG) * max(1, len(item_idx))
    rhs = Vi.sum(axis=0) if targets is None else Vi.T @ np.asarray(targets, dtype=np.float64)
    u = np.linalg.solve(Vi.T @ Vi + lam * np.eye(V.shape[1]), rhs)
    return u.astype(np.float32)


def reserved_slots(k: int, share: float) -> int:
    """Slots of a top-``k`` list held for new items under an exploration ``share``: ``floor(share * k)``."""
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"the new-item share must be in [0, 1]; got {share!r}")
    return int(np.floor(share * k + 1e-9))


def reserve_slots(
    items: np.ndarray,
    scores: np.ndarray,
    pool_items: np.ndarray,
    pool_scores: np.ndarray,
    n_slots: int,
) -> tuple[np.ndarray, np.ndarray]:
    """A ranked list that holds at least ``n_slots`` items of a pool (new items), best first.

    ``items``/``scores``: a top-k list (best first); ``pool_items``/``pool_scores``: the pool's best
    candidates (best first, seen items already left out). Pool items already in the list count; the rest of
    the quota replaces the list's lowest non-pool entries with the best pool items not yet in it, so the
    list keeps its length and is re-sorted by score (ties: the earlier entry first).
    """
    items = np.asarray(items, np.int64)
    scores = np.asarray(scores, np.float32)
    if n_slots <= 0 or len(pool_items) == 0 or len(items) == 0:
        return items, scores
    in_pool = np.isin(items, pool_items)
    missing = min(n_slots, len(items)) - int(in_pool.sum())
    if missing <= 0:
        return items, scores
    fresh = ~np.isin(pool_items, items)
    add_items = np.asarray(pool_items, np.int64)[fresh][:missing]
    add_scores = np.asarray(pool_scores, np.float32)[fresh][:missing]
    drop = np.flatnonzero(~in_pool)[::-1][: len(add_items)]  # the lowest entries that are not new
    keep = np.ones(len(items), bool)
    keep[drop] = False
    out_items = np.concatenate([items[keep], add_items])
    out_scores = np.concatenate([scores[keep], add_scores])
    order = np.argsort(-out_scores, kind="stable")
    return out_items[order], out_scores[order]


# ---------------------------------------------------------------------------------------------- internals


def _top_partition(scores: np.ndarray, kk: int) -> np.ndarray:
    """Column indices of each row's ``kk`` best scores (ties at the cut: lowest columns), in any order.

    Top-k is the evaluator's costliest step after scoring. A row's ``kk``-th largest group maximum (groups
    of columns) bounds its ``kk``-th largest score from below, so only the few scores above it need
    sorting. Rows the filter cannot settle (fewer than ``kk`` candidates, NaN) go to :func:`_exact_rows`.
    """
    n, m = scores.shape
    size = min(64, m // (4 * kk))  # items per group; there are m // size ≥ 4·kk groups
    if scores.size < 200_000 or size < 4:
        return _exact_rows(scores, kk)
    groups = m // size
    # Group g holds columns g, g + groups, g + 2·groups, ... (a strided max is one vectorised pass).
    maxima = scores[:, : groups * size].reshape(n, size, groups).max(axis=1)
    bound = np.partition(maxima, groups - kk, axis=1)[:, groups - kk]
    flat = np.flatnonzero(scores >= bound[:, None])
    if len(flat) > 8 * kk * n:  # heavy ties (e.g. one score for many items): the filter does not pay
        return _exact_rows(scores, kk)
    rows, cols = np.divmod(flat, m)
    vals = scores.reshape(-1)[flat]
    # by row, then score descending, ties by column (two stable sorts beat lexsort here); every score
    # tied with the kk-th is a candidate, so the first kk per row are the exact answer
    order = np.argsort(-vals, kind="stable")
    order = order[np.argsort(rows[order], kind="stable")]
    cols = cols[order]
    counts = np.bincount(rows, minlength=n)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ok = counts >= kk
    pos = np.where(ok, first, 0)[:, None] + np.arange(kk)
    out = cols[np.minimum(pos, len(cols) - 1)] if len(cols) else np.zeros((n, kk), np.intp)
    bad_rows = np.flatnonzero(~ok)
    if len(bad_rows):
        out[bad_rows] = _exact_rows(scores[bad_rows], kk)
    return out.astype(np.intp, copy=False)


def _exact_rows(scores: np.ndarray, kk: int) -> np.ndarray:
    """Each row's ``kk`` best columns by ``argpartition``; rows with ties straddling the cut re-sorted."""
    if np.isnan(scores).any():
        scores = np.where(np.isnan(scores), -np.inf, scores)
    part = _argpartition_rows(scores, kk)
    vals = np.take_along_axis(scores, part, axis=1)
    cut = vals.min(axis=1, keepdims=True)
    # argpartition picks arbitrary members of a tie at the cut; those rows are sorted stably instead
    straddle = (scores == cut).sum(axis=1) > (vals == cut).sum(axis=1)
    fix = np.flatnonzero(straddle & np.isfinite(cut[:, 0]))
    if len(fix):
        part[fix] = np.argsort(-scores[fix], axis=1, kind="stable")[:, :kk]
    return part


def _argpartition_rows(scores: np.ndarray, kk: int) -> np.ndarray:
    """``argpartition(-scores, kk - 1)[:, :kk]``; large blocks split by rows over threads (identical result)."""
    n = scores.shape[0]

    def part(rows: slice) -> np.ndarray:
        return np.argpartition(-scores[rows], kk - 1, axis=1)[:, :kk]

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = min(cpus, 8, n, scores.size // 1_000_000)
    if workers <= 1:
        return part(slice(None))
    bounds = np.linspace(0, n, workers + 1).astype(int)
    chunks = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    with ThreadPoolExecutor(workers) as pool:
        return np.vstack(list(pool.map(part, chunks)))
