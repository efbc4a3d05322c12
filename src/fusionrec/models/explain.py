"""Why an item was recommended: per-modality (or per-model) contributions to its score.

- ``vbpr``: the score decomposes exactly into ``collaborative`` (``γ_u·γ_i``), one term per modality
  (``θ_u·E_m f_{i,m}``) and ``bias``;
- ``neural``: the attention weight each modality received for this user (and item), with the additive parts
  of the dot score available as ``kind="score-decomposition"``;
- ``late-fusion``: each sub-model's weighted, z-normalised score (they sum to the fused score).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusionrec.data.dataset import Features
from fusionrec.errors import ConfigError
from fusionrec.models.base import Recommender

KINDS = ("auto", "attention", "score-decomposition", "model-share")


@dataclass
class Explanation:
    """Contributions of ``parts`` to each recommended item.

    ``values[r, j, p]`` is part ``p``'s contribution to item ``items[r, j]`` for user ``users[r]``;
    entries of padding items (index -1) are NaN. For ``kind="attention"`` the values are weights that sum
    to 1 per item; otherwise they add up to the item's score.
    """

    kind: str
    parts: list[str]
    users: np.ndarray
    items: np.ndarray
    values: np.ndarray

    def to_dicts(self) -> list[list[dict[str, float]]]:
        """Per user, per recommended item: ``{part: value}`` (padding items give empty dicts)."""
        out = []
        for r in range(len(self.users)):
            row = []
            for j in range(self.items.shape[1]):
                if self.items[r, j] < 0:
                    row.append({})
                else:
                    row.append({p: float(self.values[r, j, k]) for k, p in enumerate(self.parts)})
            out.append(row)
        return out

    def shares(self) -> np.ndarray:
        """Contributions as fractions of their absolute total per item (attention weights as they are)."""
        if self.kind == "attention":
            return self.values
        total = np.abs(self.values).sum(axis=-1, keepdims=True)
        return np.divide(self.values, total, out=np.zeros_like(self.values), where=total > 0)


def explain_recommendations(
    model: Recommender,
    users: np.ndarray,
    items: np.ndarray,
    features: Features | None = None,
    *,
    kind: str = "auto",
) -> Explanation:
    """Per-part contributions to the scores of ``items`` for ``users``.

    Parameters
    ----------
    model
        A fitted ``vbpr``, ``neural`` or ``late-fusion`` model.
    users
        User indices, shape ``(n,)``.
    items
        Item indices per user, shape ``(n, k)`` (e.g. from ``recommend``), or ``(n,)`` aligned with
        ``users``; -1 entries (padding) are ignored.
    features
        Not needed by these models (their item content is part of their learned state); accepted so that
        callers can pass what they have.
    kind
        ``"auto"`` (attention for ``neural``, score decomposition for ``vbpr``, model shares for
        ``late-fusion``) or one of those explicitly.

    Raises
    ------
    NotImplementedError
        The model cannot be explained this way (callers fall back to scores only).
    """
    del features
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {KINDS}; got {kind!r}")
    model.check_fitted()
    users = np.atleast_1d(np.asarray(users, dtype=np.int64))
    items = np.asarray(items, dtype=np.int64)
    if items.ndim == 1:
        items = items.reshape(len(users), -1) if len(items) != len(users) else items[:, None]
    if items.shape[0] != len(users):
        raise ConfigError(f"items has {items.shape[0]} rows for {len(users)} users")
    pad = items < 0
    safe = np.where(pad, 0, items)
    parts, kind = _parts(model, users, safe, kind)
    names = list(parts)
    values = np.stack([np.asarray(parts[p], dtype=np.float32).reshape(safe.shape) for p in names], axis=-1)
    values[pad] = np.nan
    return Explanation(kind=kind, parts=names, users=users, items=items, values=values)


def _parts(
    model: Recommender, users: np.ndarray, items: np.ndarray, kind: str
) -> tuple[dict[str, np.ndarray], str]:
    if hasattr(model, "attention_weights") and kind in ("auto", "attention"):
        w = model.attention_weights(users, items)
        return {m: w[..., j] for j, m in enumerate(model.modalities_)}, "attention"
    if kind in ("auto", model.explanation_kind):
        try:
            return model.score_parts(users, items), model.explanation_kind
        except NotImplementedError:
            pass
    raise NotImplementedError(f"model {model.name!r} offers no {kind if kind != 'auto' else ''} explanation")
