"""One batched full-ranking evaluator for CLI, benchmarks, tuning and early stopping, and its rating twin.

Users are scored in blocks; known items are masked; the top max(K) items are taken by partial sort; every
metric is computed from one boolean hit matrix. Averages are over users with ≥ 1 target item.

:func:`evaluate_ratings` scores the held-out (user, item, rating) triples of an explicit-feedback split with
``model.predict`` and reports RMSE and MAE, overall and by how many training ratings the user / the item has.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Split
from fusionrec.evaluation.metrics import (
    CATALOGUE_METRICS,
    METRIC_FUNCS,
    coverage,
    mae,
    novelty,
    parse_metric,
    rmse,
)
from fusionrec.ranking import mask_rows, top_k

log = logging.getLogger("fusionrec")

DEFAULT_METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
MASKING = ("train+valid", "train")
ACTIVITY_BUCKETS = ((0, 10), (10, 50), (50, None))
# training ratings of the pair's user / item; "0" holds items never rated in train (only content places them)
RATING_ACTIVITY_BUCKETS = ((0, 1), (1, 5), (5, 20), (20, 100), (100, None))


@dataclass
class EvalResult:
    """Mean metrics plus per-user arrays (aligned with ``users``) and catalogue-level numbers."""

    metrics: dict[str, float]
    per_user: dict[str, np.ndarray] = field(repr=False)
    users: np.ndarray = field(repr=False)
    extra: dict[str, float] = field(default_factory=dict)
    by_activity: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {k: round(float(v), 6) for k, v in self.metrics.items()}
        out.update({k: round(float(v), 6) for k, v in self.extra.items()})
        if self.by_activity:
            out["by_activity"] = self.by_activity
        return out


def evaluate_scores(
    score_fn: Callable[[np.ndarray], np.ndarray],
    target: sp.csr_matrix,
    exclude: sp.csr_matrix | None,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    batch_size: int = 1024,
    item_popularity: np.ndarray | None = None,
    train_degree: np.ndarray | None = None,
    candidate_items: np.ndarray | None = None,
) -> EvalResult:
    """Rank all items (or only ``candidate_items``) for every user with a target item and score the lists.

    ``score_fn(users) -> (n, n_items)`` scores; ``exclude`` items are masked (set to -inf) first.
    """
    parsed = [parse_metric(m, catalogue=True) for m in metrics]
    specs = [(n, k) for n, k in parsed if n not in CATALOGUE_METRICS]
    catalogue = [(n, k) for n, k in parsed if n in CATALOGUE_METRICS]
    max_k = max(k for _, k in parsed)
    target = sp.csr_matrix(target)
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    n_items = target.shape[1]
    per_user = {f"{n}@{k}": np.zeros(len(users)) for n, k in specs}
    all_recs = np.empty((len(users), max_k), np.int64)
    if candidate_items is not None:
        not_cand = np.ones(n_items, bool)
        not_cand[candidate_items] = False
    for start in range(0, len(users), batch_size):
        block = users[start : start + batch_size]
        scores = np.asarray(score_fn(block), dtype=np.float32)  # fresh per the score() contract
        if exclude is not None:
            mask_rows(scores, exclude, block)
        if candidate_items is not None:
            scores[:, not_cand] = -np.inf
        idx, _ = top_k(scores, max_k)
        all_recs[start : start + len(block)] = idx
        tgt = target[block]
        n_rel = np.diff(tgt.indptr)
        hits = _hit_matrix(idx, tgt)
        for n, k in specs:
            per_user[f"{n}@{k}"][start : start + len(block)] = METRIC_FUNCS[n](hits, n_rel, k)
    means = {k: float(v.mean()) if len(v) else 0.0 for k, v in per_user.items()}
    extra = {f"coverage@{max_k}": coverage(all_recs, n_items)}
    if item_popularity is not None:
        extra[f"novelty@{max_k}"] = novelty(all_recs, item_popularity, target.shape[0])
    for name, k in catalogue:  # asked for at their own cut-off
        if name == "coverage":
            extra[f"coverage@{k}"] = coverage(all_recs[:, :k], n_items)
        elif item_popularity is not None:
            extra[f"novelty@{k}"] = novelty(all_recs[:, :k], item_popularity, target.shape[0])
    by_activity = {}
    if train_degree is not None and len(users):
        deg = train_degree[users]
        for lo, hi in ACTIVITY_BUCKETS:
            sel = (deg >= lo) & (deg < hi if hi is not None else True)
            label = f"{lo}-{hi}" if hi is not None else f">={lo}"
            if sel.any():
                by_activity[label] = {
                    "users": int(sel.sum()),
                    **{k: round(float(v[sel].mean()), 6) for k, v in per_user.items()},
                }
    return EvalResult(metrics=means, per_user=per_user, users=users, extra=extra, by_activity=by_activity)


def _hit_matrix(idx: np.ndarray, target: sp.csr_matrix) -> np.ndarray:
    """hits[r, j] = item idx[r, j] is in target row r (vectorised via sorted-index search per row block)."""
    n, k = idx.shape
    # Encode (row, item) pairs as int64 keys and test membership in one shot.
    n_items = target.shape[1] + 1
    rows = np.repeat(np.arange(n), np.diff(target.indptr))
    keys_t = rows * n_items + target.indices
    keys_r = np.arange(n)[:, None] * n_items + np.where(idx >= 0, idx, n_items - 1)
    return np.isin(keys_r, keys_t)


def evaluate(
    model,
    split: Split,
    *,
    on: str = "test",
    metrics: Sequence[str] = DEFAULT_METRICS,
    masking: str = "train+valid",
    batch_size: int = 1024,
    by_activity: bool = False,
    sample_users: int | None = None,
    seed: int = 0,
) -> EvalResult:
    """Evaluate a fitted model on ``split.valid`` or ``split.test`` with full ranking.

    ``sample_users`` evaluates a seeded random sample of that many users with a target item instead of all
    of them (full ranking still: every item is a candidate), for catalogues too large to rank for everyone.

    ``masking="train+valid"`` (default, as RecBole) hides train and valid items when testing;
    ``masking="train"`` hides only train items (MMRec's convention, used by the published peer numbers).
    On a cold-item split only the cold items are ranked.
    """
    if on not in ("valid", "test"):
        raise ValueError(f"on must be 'valid' or 'test'; got {on!r}")
    if masking not in MASKING:
        raise ValueError(f"masking must be one of {MASKING}; got {masking!r}")
    target = split.test if on == "test" else split.valid
    if sample_users is not None:
        target = sample_users_of(target, sample_users, seed)
    exclude = split.train
    if on == "test" and masking == "train+valid" and split.cold_items is None:
        exclude = (split.train + split.valid).tocsr()
    train_deg = np.diff(split.train.indptr)
    pop = np.asarray((split.train > 0).sum(axis=0)).ravel()
    candidates = None
    if split.cold_items is not None:
        # cold-item protocol: rank the held-out items of this part only
        candidates = np.unique(target.indices)
        exclude = None
    return evaluate_scores(
        model.score,
        target,
        exclude,
        metrics=metrics,
        batch_size=batch_size,
        item_popularity=pop,
        train_degree=train_deg if by_activity else None,
        candidate_items=candidates,
    )


def sample_users_of(target: sp.csr_matrix, n: int, seed: int) -> sp.csr_matrix:
    """``target`` with only ``n`` seeded random users (of those with a target item) kept; shape unchanged."""
    if n <= 0:
        raise ValueError(f"sample_users must be positive; got {n}")
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    if n >= len(users):
        return target
    log.info("ranking for a sample of %d of %d users", n, len(users))
    keep = np.zeros(target.shape[0], np.float32)
    keep[np.random.default_rng(seed).choice(users, n, replace=False)] = 1.0
    return sp.csr_matrix(sp.diags(keep) @ target)


class _EvaluatorValidation:
    """The evaluator as the ``validate=`` callback of ``Recommender.fit`` (early stopping, fusion weights)."""

    def check(self, metrics: Sequence[str]) -> None:
        for m in metrics:
            parse_metric(m)

    def __call__(
        self,
        score: Callable[[np.ndarray], np.ndarray],
        target: sp.csr_matrix,
        exclude: sp.csr_matrix | None,
        metrics: Sequence[str],
        *,
        batch_size: int = 1024,
    ) -> dict[str, float]:
        return evaluate_scores(score, target, exclude, metrics=metrics, batch_size=batch_size).metrics


VALIDATOR = _EvaluatorValidation()


@dataclass
class RatingResult:
    """RMSE / MAE over held-out ratings, and the same by training activity of the pair's user and item.

    ``by_activity["users"]["5-19"]`` holds the pairs whose user has 5 to 19 training ratings.
    """

    metrics: dict[str, float]
    n: int
    by_activity: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {k: round(float(v), 6) for k, v in self.metrics.items()}
        out["ratings"] = self.n
        if self.by_activity:
            out["rating_by_activity"] = self.by_activity
        return out


def evaluate_ratings(
    model, target: sp.spmatrix, *, train: sp.spmatrix | None = None, clip: bool = True
) -> RatingResult:
    """RMSE and MAE of ``model.predict`` on the stored ratings of ``target`` (users × items, explicit).

    With ``train`` given, predictions are clipped to the training ratings' range (``clip``) and the errors
    are broken down by the training activity of each pair's user and item (:data:`RATING_ACTIVITY_BUCKETS`).
    """
    r = sp.csr_matrix(target, dtype=np.float32)
    if r.nnz == 0:
        raise ValueError("rating evaluation needs at least one held-out rating")
    users = np.repeat(np.arange(r.shape[0], dtype=np.int64), np.diff(r.indptr))
    items = r.indices.astype(np.int64)
    actual = r.data.astype(np.float64)
    pred = np.asarray(model.predict(users, items), dtype=np.float64)
    by_activity: dict[str, dict[str, dict[str, float]]] = {}
    if train is not None:
        train = sp.csr_matrix(train)
        if clip and train.nnz:
            pred = np.clip(pred, float(train.data.min()), float(train.data.max()))
        degree = {
            "users": np.diff(train.indptr)[users],
            "items": np.bincount(train.indices, minlength=train.shape[1])[items],
        }
        for side, deg in degree.items():
            by_activity[side] = {}
            for lo, hi in RATING_ACTIVITY_BUCKETS:
                sel = (deg >= lo) & (deg < hi if hi is not None else True)
                if not sel.any():
                    continue
                label = (str(lo) if hi == lo + 1 else f"{lo}-{hi - 1}") if hi is not None else f">={lo}"
                by_activity[side][label] = {
                    "ratings": int(sel.sum()),
                    "rmse": round(rmse(pred[sel], actual[sel]), 6),
                    "mae": round(mae(pred[sel], actual[sel]), 6),
                }
    return RatingResult(
        metrics={"rmse": rmse(pred, actual), "mae": mae(pred, actual)}, n=int(r.nnz), by_activity=by_activity
    )
