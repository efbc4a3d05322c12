"""Ranking and rating metrics as pure, vectorised functions.

Each ranking metric takes ``hits`` — a boolean ``(n_users, K)`` matrix, True where the item at rank r is
relevant — and ``n_relevant`` (relevant items per user), and returns one value per user at cut-off ``k``.
The rating metrics (``rmse``, ``mae``) take predicted and true ratings, one per (user, item) pair.
"""

from __future__ import annotations

import numpy as np

from fusionrec.measures import mae, rmse  # noqa: F401  (pure; models use them too)

METRICS = ("precision", "recall", "f1", "ndcg", "map", "mrr", "hit")


def precision(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    return hits[:, :k].sum(axis=1) / k


def recall(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    return hits[:, :k].sum(axis=1) / np.maximum(n_relevant, 1)


def f1(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    p, r = precision(hits, n_relevant, k), recall(hits, n_relevant, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = 2 * p * r / (p + r)
    return np.nan_to_num(out)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def ndcg(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Binary gains; the ideal DCG places min(|relevant|, k) hits at the top."""
    disc = _discounts(k)
    dcg = (hits[:, :k] * disc).sum(axis=1)
    ideal_cum = np.concatenate([[0.0], np.cumsum(disc)])
    idcg = ideal_cum[np.minimum(n_relevant, k)]
    return np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1), 0.0)


def average_precision(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """AP@k: mean of precision at each hit rank, over min(|relevant|, k)."""
    h = hits[:, :k].astype(np.float64)
    prec_at = np.cumsum(h, axis=1) / np.arange(1, k + 1)
    return (prec_at * h).sum(axis=1) / np.maximum(np.minimum(n_relevant, k), 1)


def mrr(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    h = hits[:, :k]
    first = np.argmax(h, axis=1)
    return np.asarray(np.where(h.any(axis=1), 1.0 / (first + 1), 0.0))


def hit_rate(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(hits[:, :k].any(axis=1), dtype=np.float64)


METRIC_FUNCS = {
    "precision": precision,
    "recall": recall,
    "f1": f1,
    "ndcg": ndcg,
    "map": average_precision,
    "mrr": mrr,
    "hit": hit_rate,
}


RATING_METRICS = ("rmse", "mae")


def coverage(recommended: np.ndarray, n_items: int) -> float:
    """Fraction of the catalogue that appears in at least one list."""
    rec = recommended[recommended >= 0]
    return float(len(np.unique(rec)) / max(n_items, 1))


def novelty(recommended: np.ndarray, item_popularity: np.ndarray, n_users: int) -> float:
    """Mean self-information −log2(p(i)) of recommended items, p(i) = train users of i / users."""
    rec = recommended[recommended >= 0]
    if len(rec) == 0:
        return 0.0
    p = np.maximum(item_popularity[rec], 1) / max(n_users, 1)
    return float(np.mean(-np.log2(p)))


#: list-level metrics over the whole catalogue (not averaged over users)
CATALOGUE_METRICS = ("coverage", "novelty")


def parse_metric(spec: str, *, catalogue: bool = False) -> tuple[str, int]:
    """``"recall@20"`` → ("recall", 20); with ``catalogue`` also ``coverage@K`` / ``novelty@K``. Raises
    ValueError with the valid names."""
    name, _, k = spec.strip().lower().partition("@")
    aliases = {"hr": "hit", "hitrate": "hit", "hit_rate": "hit", "p": "precision", "r": "recall", "n": "ndcg"}
    name = aliases.get(name, name)
    known = (*METRICS, *CATALOGUE_METRICS) if catalogue else METRICS
    if name not in known or not k.isdigit() or int(k) <= 0:
        raise ValueError(
            f"bad metric {spec!r}; write NAME@K with NAME in {', '.join(known)} and K a positive integer"
        )
    return name, int(k)
