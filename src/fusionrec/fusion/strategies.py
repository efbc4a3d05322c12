"""Fusion strategies as small helpers the models compose.

- **early fusion**: normalise each modality, concatenate, learn one model on the result
  (:func:`early_fusion`, :class:`ContentTower`);
- **late fusion**: one scorer per modality (or per model), scores z-normalised per user and combined with
  weights fitted on validation (:func:`zscore_rows`, :func:`combine_scores`, :func:`fit_weights`);
- **hybrid**: an early-fused content tower added to collaborative ID embeddings, the two parts combined late
  (:class:`HybridItemTower`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from fusionrec.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from fusionrec.data.dataset import Features

# ContentTower and HybridItemTower (torch modules) are created on first access, so that the numpy helpers
# here import without torch.
__all__ = [
    "FUSIONS",
    "NORMALISATIONS",
    "combine_scores",
    "early_fusion",
    "fit_weights",
    "masked_softmax_np",
    "normalise_modality",
    "resolve_modalities",
    "zscore_rows",
]

NORMALISATIONS = ("l2", "standard", "none")
FUSIONS = ("attention", "sum", "concat")


# ------------------------------------------------------------------------------------------- early fusion


def resolve_modalities(features: Features | None, modalities: Sequence[str] | str | None) -> list[str]:
    """The modalities a model uses: all of ``features`` (``None``/``"all"``) or the named ones, checked."""
    have = list(features) if features is not None else []
    if modalities is None or modalities == "all":
        return have
    names = [modalities] if isinstance(modalities, str) else list(modalities)
    missing = [n for n in names if n not in have]
    if missing:
        raise ConfigError(f"modalities {missing} are not in the data; it has {have or 'none'}")
    return names


def normalise_modality(x: np.ndarray, how: str = "l2") -> np.ndarray:
    """Scale one ``(n_items, d)`` modality so that modalities of different sizes and ranges are comparable.

    ``"standard"`` centres and scales each column; ``"l2"`` centres then gives each row unit norm (cosine
    geometry, the usual choice for pooled CNN / sentence embeddings); ``"none"`` only casts to float32.
    """
    if how not in NORMALISATIONS:
        raise ConfigError(f"unknown normalisation {how!r}; choose one of {NORMALISATIONS}")
    x = np.asarray(x, dtype=np.float32)
    if how == "none":
        return x.copy()
    x = x - x.mean(axis=0, keepdims=True)
    if how == "standard":
        return x / np.maximum(x.std(axis=0, keepdims=True), 1e-8)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)


def early_fusion(
    features: Features,
    modalities: Sequence[str] | None = None,
    *,
    how: str = "l2",
    weights: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Concatenate normalised modalities into one ``(n_items, Σ d_m)`` matrix.

    With ``how="l2"`` every modality block has unit row norm, so each contributes equally to dot products
    whatever its dimension; ``weights`` rescale blocks (a block scaled by ``sqrt(w)`` weighs ``w`` in a dot
    product).
    """
    names = resolve_modalities(features, modalities)
    if not names:
        raise ConfigError("early fusion needs at least one modality")
    blocks = []
    for n in names:
        w = 1.0 if weights is None else float(weights.get(n, 1.0))
        blocks.append(normalise_modality(features[n], how) * np.float32(np.sqrt(max(w, 0.0))))
    return np.hstack(blocks).astype(np.float32)


# -------------------------------------------------------------------------------------------- late fusion


def zscore_rows(scores: np.ndarray, finite_only: bool = True) -> np.ndarray:
    """Per-row (per-user) z-normalisation, so scorers on different scales can be added.

    Non-finite entries (masked items) are ignored in the statistics and kept as they are.
    """
    s = np.asarray(scores, dtype=np.float32)
    if finite_only and not np.isfinite(s).all():
        ok = np.isfinite(s)
        cnt = np.maximum(ok.sum(axis=1, keepdims=True), 1)
        z = np.where(ok, s, 0.0)
        mu = z.sum(axis=1, keepdims=True) / cnt
        var = (np.where(ok, (z - mu) ** 2, 0.0)).sum(axis=1, keepdims=True) / cnt
        return np.where(ok, (s - mu) / np.sqrt(np.maximum(var, 1e-12)), s).astype(np.float32)
    mu = s.mean(axis=1, keepdims=True)
    sd = s.std(axis=1, keepdims=True)
    return ((s - mu) / np.maximum(sd, 1e-6)).astype(np.float32)


def masked_softmax_np(logits: np.ndarray, mask: np.ndarray | None, axis: int = -1) -> np.ndarray:
    """Numpy twin of ``operators.masked_softmax`` (serving scores without torch)."""
    z = np.asarray(logits, dtype=np.float32)
    if mask is not None:
        z = np.where(mask, z, -np.inf)
    top = np.max(z, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(z - top)
    total = e.sum(axis=axis, keepdims=True)
    return np.where(total > 0, e / np.where(total > 0, total, 1.0), 0.0).astype(np.float32)


def combine_scores(
    blocks: Sequence[np.ndarray], weights: Sequence[float], *, normalise: bool = True
) -> np.ndarray:
    """``Σ_m w_m z(s_m)``: weighted sum of (per-user z-normalised) score blocks of equal shape."""
    if len(blocks) != len(weights) or not blocks:
        raise ConfigError(
            f"combine_scores needs one weight per score block; got {len(weights)} for {len(blocks)}"
        )
    out = np.zeros_like(np.asarray(blocks[0], dtype=np.float32))
    for s, w in zip(blocks, weights, strict=True):
        if w != 0:
            out += np.float32(w) * (zscore_rows(s) if normalise else np.asarray(s, np.float32))
    return out


def fit_weights(
    blocks: Sequence[np.ndarray],
    objective: Callable[[np.ndarray], float],
    *,
    grid: Sequence[float] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0),
    rounds: int = 3,
    init: Sequence[float] | None = None,
) -> tuple[np.ndarray, float]:
    """Coordinate search for late-fusion weights that maximise ``objective(fused_scores)``.

    ``blocks`` are per-user z-normalised scores of each scorer on the validation users. Each weight in turn
    tries every ``grid`` value with the rest held (never all zero), for ``rounds`` passes or until nothing
    improves; a scorer that only hurts can so be switched off. Only ratios matter for a ranking, so the result
    is rescaled to a largest weight of 1. Returns ``(weights, best objective)``.
    """
    m = len(blocks)
    if m == 0:
        raise ConfigError("fit_weights needs at least one score block")
    w = np.ones(m) if init is None else np.asarray(init, dtype=np.float64).copy()
    if m == 1:
        return w, float(objective(blocks[0]))
    zs = [np.asarray(b, dtype=np.float32) for b in blocks]

    def fused(weights: np.ndarray) -> np.ndarray:
        out = np.zeros_like(zs[0])
        for z, x in zip(zs, weights, strict=True):
            if x != 0:
                out += np.float32(x) * z
        return out

    best = float(objective(fused(w)))
    for _ in range(max(1, rounds)):
        improved = False
        for j in range(m):
            for g in grid:
                trial = w.copy()
                trial[j] = g
                if g == w[j] or not trial.any():
                    continue
                val = float(objective(fused(trial)))
                if val > best + 1e-9:
                    best, w, improved = val, trial, True
        if not improved:
            break
    return w / w.max(), best


# ---------------------------------------------------------------------------------- towers (torch, hybrid)


def _torch_towers():  # torch imported lazily: importing this module must stay cheap
    import torch
    from torch import nn

    from fusionrec.fusion.operators import Concat, ModalityAttention, Projections, WeightedSum

    class ContentTower(nn.Module):
        """Early-fused content vector per item: per-modality projections ``E_m x_m`` then a fusion operator.

        ``fusion``: ``"attention"`` (:class:`ModalityAttention`, user-conditioned when ``query_dim`` is set),
        ``"sum"`` (learnt :class:`WeightedSum`) or ``"concat"`` (:class:`Concat` of raw features then one
        linear map, which equals an unweighted sum of per-modality projections).
        """

        def __init__(
            self,
            dims: Mapping[str, int],
            dim: int,
            *,
            fusion: str = "attention",
            hidden: int = 32,
            query_dim: int | None = None,
        ):
            super().__init__()
            if fusion not in FUSIONS:
                raise ConfigError(f"unknown fusion {fusion!r}; choose one of {FUSIONS}")
            self.names = tuple(dims)
            self.fusion = fusion
            if fusion == "concat":
                self.concat = Concat(self.names)
                self.proj = nn.Linear(sum(int(d) for d in dims.values()), dim, bias=False)
            else:
                self.projections = Projections(dims, dim)
                self.op = (
                    ModalityAttention(self.names, dim, hidden=hidden, query_dim=query_dim)
                    if fusion == "attention"
                    else WeightedSum(self.names)
                )

        def parts(self, xs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            """Per-modality projected vectors ``E_m x_m`` (for explanations and inner-product export)."""
            if self.fusion == "concat":
                out, start = {}, 0
                for n in self.names:
                    d = xs[n].shape[-1]
                    out[n] = xs[n] @ self.proj.weight[:, start : start + d].T
                    start += d
                return out
            return self.projections(xs)

        def forward(
            self,
            xs: Mapping[str, torch.Tensor],
            query: torch.Tensor | None = None,
            mask: torch.Tensor | None = None,
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if self.fusion == "concat":
                fused = self.proj(self.concat(xs, mask))
                b = fused.shape[0]
                alpha = torch.full((b, len(self.names)), 1.0, device=fused.device)
                if mask is not None:
                    alpha = alpha * mask.to(alpha.dtype)
                return fused, alpha
            parts = self.projections(xs)
            if self.fusion == "attention":
                return self.op(parts, query, mask)
            return self.op(parts, mask)

    class HybridItemTower(nn.Module):
        """Hybrid item vector ``e_i + c_i``: a collaborative ID embedding plus an early-fused content vector.

        Items with no interactions (cold) keep a near-zero ``e_i`` and are placed by content alone.
        """

        def __init__(
            self,
            n_items: int,
            dims: Mapping[str, int],
            dim: int,
            *,
            fusion: str = "attention",
            hidden: int = 32,
            query_dim: int | None = None,
            init_std: float = 0.01,
        ):
            super().__init__()
            self.item_emb = nn.Embedding(n_items, dim)
            nn.init.normal_(self.item_emb.weight, std=init_std)
            self.content = ContentTower(dims, dim, fusion=fusion, hidden=hidden, query_dim=query_dim)

        def forward(
            self,
            items: torch.Tensor,
            xs: Mapping[str, torch.Tensor],
            query: torch.Tensor | None = None,
            mask: torch.Tensor | None = None,
        ) -> tuple[torch.Tensor, torch.Tensor]:
            c, alpha = self.content(xs, query, mask)
            return self.item_emb(items) + c, alpha

    return ContentTower, HybridItemTower


def __getattr__(name: str):
    if name in ("ContentTower", "HybridItemTower"):
        content, hybrid = _torch_towers()
        globals().update(ContentTower=content, HybridItemTower=hybrid)
        return globals()[name]
    raise AttributeError(name)
