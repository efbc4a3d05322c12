"""Fusion operators: torch modules that combine per-modality vectors, for any number of named modalities.

Every operator takes a mapping ``{modality: (batch, d_m) tensor}`` (ordered as the operator's ``names``) and
an optional presence mask ``(batch, n_modalities)`` (False = the modality is missing or dropped for that row).
``WeightedSum`` and ``ModalityAttention`` return ``(fused, alpha)`` where
``alpha`` ``(batch, n_modalities)`` is the weight each modality received, kept for explanations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from fusionrec.errors import ConfigError

__all__ = ["ModalityAttention", "WeightedSum", "masked_softmax", "stack_modalities"]


def stack_modalities(xs: Mapping[str, torch.Tensor], names: Sequence[str]) -> torch.Tensor:
    """``{name: (B, d)}`` → ``(B, M, d)`` in the order of ``names`` (all modalities must share ``d``)."""
    missing = [n for n in names if n not in xs]
    if missing:
        raise ConfigError(f"fusion input lacks modality {missing}; it was built for {list(names)}")
    dims = {n: xs[n].shape[-1] for n in names}
    if len(set(dims.values())) > 1:
        raise ConfigError(f"modalities must be projected to one size before a weighted fusion; got {dims}")
    return torch.stack([xs[n] for n in names], dim=1)


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor | None, dim: int = -1) -> torch.Tensor:
    """Softmax where ``mask`` is False gets weight 0; rows with nothing present get all-zero weights."""
    if mask is None:
        return torch.softmax(logits, dim=dim)
    mask = mask.to(torch.bool)
    logits = logits.masked_fill(~mask, float("-inf"))
    any_present = mask.any(dim=dim, keepdim=True)
    logits = torch.where(any_present, logits, torch.zeros_like(logits))
    return torch.softmax(logits, dim=dim) * any_present


class WeightedSum(nn.Module):
    """``Σ_m w_m x_m`` with softmax-normalised weights, fixed or learnt.

    Parameters
    ----------
    names
        Modality names, in order.
    weights
        Initial (or fixed) relative weights per modality (positive; normalised to sum to 1). Default: equal.
    learn
        Learn the weights (as softmax logits) with the rest of the model.
    """

    def __init__(
        self,
        names: Sequence[str],
        weights: Sequence[float] | Mapping[str, float] | None = None,
        *,
        learn: bool = True,
    ):
        super().__init__()
        _check_names(names)
        self.names = tuple(names)
        if weights is None:
            w = torch.ones(len(names))
        else:
            w = torch.as_tensor(
                [weights[n] for n in names] if isinstance(weights, Mapping) else list(weights),
                dtype=torch.float32,
            )
            if w.numel() != len(names) or (w <= 0).any():
                raise ConfigError(
                    f"WeightedSum needs one positive weight per modality {list(names)}; got {w.tolist()}"
                )
        logits = torch.log(w / w.sum())
        if learn:
            self.logits = nn.Parameter(logits)
        else:
            self.register_buffer("logits", logits)

    def forward(
        self, xs: Mapping[str, torch.Tensor], mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = stack_modalities(xs, self.names)  # (B, M, d)
        logits = self.logits.expand(x.shape[0], -1)
        alpha = masked_softmax(logits, mask)
        return (alpha.unsqueeze(-1) * x).sum(dim=1), alpha


class ModalityAttention(nn.Module):
    """Attention over modalities: ``α_m = softmax_m(qᵀ W_m h_m)`` with ``h_m = tanh(W_h x_m + b)``.

    The fused vector is ``Σ_m α_m x_m``.

    ``q`` is a learnt vector shared by every row, or (``query_dim`` set) a linear map of a per-row query such
    as the user's embedding, so that each user weighs the modalities differently.

    Parameters
    ----------
    names
        Modality names, in order.
    dim
        Size of each (already projected) modality vector ``x_m``.
    hidden
        Size of the hidden projection ``h_m`` and of the query.
    query_dim
        Size of the per-row query passed to ``forward`` (e.g. the user embedding); ``None`` = learnt query.

    References
    ----------
    Chen et al., "Attentive Collaborative Filtering: Multimedia Recommendation with Item- and Component-Level
    Attention", SIGIR 2017 (component-level attention, here over modalities).
    """

    def __init__(self, names: Sequence[str], dim: int, *, hidden: int = 32, query_dim: int | None = None):
        super().__init__()
        _check_names(names)
        self.names = tuple(names)
        self.hidden_proj = nn.Linear(dim, hidden)
        # W_m: one bilinear map per modality between the query and that modality's hidden vector
        self.bilinear = nn.Parameter(
            torch.eye(hidden).repeat(len(names), 1, 1) + 0.01 * torch.randn(len(names), hidden, hidden)
        )
        if query_dim is None:
            self.query = nn.Parameter(torch.randn(hidden) / hidden**0.5)
            self.query_proj = None
        else:
            self.register_parameter("query", None)
            self.query_proj = nn.Linear(query_dim, hidden)

    def forward(
        self,
        xs: Mapping[str, torch.Tensor],
        query: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = stack_modalities(xs, self.names)  # (B, M, d)
        alpha = masked_softmax(self._logits(x, query), mask)
        return (alpha.unsqueeze(-1) * x).sum(dim=1), alpha

    def scores(self, xs: Mapping[str, torch.Tensor], query: torch.Tensor | None = None) -> torch.Tensor:
        """Pre-softmax attention scores ``qᵀ W_m h_m``, ``(B, M)`` (to combine with masks of any shape)."""
        return self._logits(stack_modalities(xs, self.names), query)

    def _logits(self, x: torch.Tensor, query: torch.Tensor | None) -> torch.Tensor:
        q = self._query(query, x.shape[0])  # (B, H)
        h = torch.tanh(self.hidden_proj(x))  # (B, M, H)
        # scaled like dot-product attention so that the softmax does not saturate early
        return torch.einsum("bmh,mhk,bk->bm", h, self.bilinear, q) / self.hidden_proj.out_features**0.5

    def weights(
        self,
        xs: Mapping[str, torch.Tensor],
        query: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Only the attention weights ``(B, M)``."""
        return self.forward(xs, query, mask)[1]

    def _query(self, query: torch.Tensor | None, batch: int) -> torch.Tensor:
        if self.query_proj is None:
            if query is not None:
                raise ConfigError(
                    "this ModalityAttention has a learnt query; build it with query_dim to pass one"
                )
            return self.query.expand(batch, -1)
        if query is None:
            raise ConfigError("this ModalityAttention is user-conditioned (query_dim set); pass query=")
        return self.query_proj(query)


def _check_names(names: Sequence[str]) -> None:
    if len(names) == 0:
        raise ConfigError("a fusion operator needs at least one modality")
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate modality names: {list(names)}")
