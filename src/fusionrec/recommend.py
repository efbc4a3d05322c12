"""Recommendations by raw ids from an artifact: the one implementation used by the CLI, the demo and serving."""

from __future__ import annotations

from typing import Any

import numpy as np

from fusionrec.artifacts import Artifact
from fusionrec.errors import ConfigError, UnknownItemError, UnknownUserError


def _check_k(k: int) -> None:
    if not isinstance(k, int) or k <= 0:
        raise ConfigError(f"k must be a positive integer; got {k!r}")


def _rows(art: Artifact, idx: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    titles = art.item_titles
    out = []
    for rank, (i, s) in enumerate(zip(idx.tolist(), scores.tolist(), strict=True), start=1):
        if i < 0:
            break
        row: dict[str, Any] = {"rank": rank, "item_id": str(art.item_ids.raw(i)), "score": float(s)}
        if titles is not None and i < len(titles):
            row["title"] = titles[i]
        out.append(row)
    return out


def user_index(art: Artifact, user_id: str) -> int:
    u = art.user_ids.get(user_id)
    if u < 0:
        raise UnknownUserError(
            f"user {user_id!r} is not in the model (known users: {len(art.user_ids)}). "
            "Fold it in by passing its recent items instead (CLI --items, or POST /recommendations)."
        )
    return u


def recommend_for_user(
    art: Artifact, user_id: str, *, k: int = 10, exclude_seen: bool = True, explain: bool = False
) -> list[dict[str, Any]]:
    _check_k(k)
    u = user_index(art, user_id)
    idx, scores = art.model.recommend(np.array([u]), k, exclude=art.train if exclude_seen else None)
    rows = _rows(art, idx[0], scores[0])
    if explain and rows:
        for r, parts in zip(rows, explain_items(art, u, [r["item_id"] for r in rows]), strict=True):
            r["explanation"] = parts
        if art.model.task == "rating":
            for r, rating in zip(rows, predicted_ratings(art, [r["score"] for r in rows]), strict=True):
                r["predicted_rating"] = rating
    return rows


def predicted_ratings(art: Artifact, scores: list[float]) -> list[float]:
    """A rating model's scores as ratings on the training scale (clipped to the training ratings' range)."""
    values = np.asarray(scores, dtype=np.float64)
    if art.train.nnz:
        values = np.clip(values, float(art.train.data.min()), float(art.train.data.max()))
    return [float(v) for v in values]


def explain_items(art: Artifact, user: int, item_ids: list[str]) -> list[dict[str, float]]:
    """Per-modality (or per-part) contribution to each item's score for one user; score-only when the model
    has no finer explanation."""
    from fusionrec.models.explain import explain_recommendations

    items = item_indices(art, item_ids)
    try:
        exp = explain_recommendations(art.model, np.array([user]), items[None, :], art.features)
    except NotImplementedError:
        scores = art.model.score(np.array([user]))[0, items]
        return [{"score": float(s)} for s in scores]
    return exp.to_dicts()[0]


def item_indices(art: Artifact, item_ids: list[str]) -> np.ndarray:
    idx = art.item_ids.indices(item_ids)
    unknown = [i for i, j in zip(item_ids, idx, strict=True) if j < 0]
    if unknown:
        raise UnknownItemError(
            f"unknown item id(s) {unknown[:5]}; the model knows {len(art.item_ids)} items — "
            "add new items with POST /items first"
        )
    return idx


def recommend_for_items(art: Artifact, item_ids: list[str], *, k: int = 10) -> list[dict[str, Any]]:
    """Recommendations for a user the model does not know, from the items they interacted with."""
    _check_k(k)
    if not item_ids:
        raise ConfigError("give at least one item id to fold in a new user")
    idx = item_indices(art, item_ids)
    scores = np.asarray(art.model.fold_in_user(idx), dtype=np.float32).copy()
    scores[idx] = -np.inf
    top, vals = art.model.recommend(np.array([0]), k, scores=scores[None, :])
    return _rows(art, top[0], vals[0])
