"""The attention fusion network: ID embeddings plus per-modality encoders fused by user-level attention."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Features
from fusionrec.errors import ConfigError
from fusionrec.measures import mae, rmse
from fusionrec.models._torch import (
    Batch,
    TorchRecommender,
    batch_l2,
    bpr_loss,
    popularity_prior,
    to_numpy,
)
from fusionrec.models.fusion.content import ContentMixin, principal_basis
from fusionrec.models.fusion.scoring import FUSIONS, masked_softmax_np

log = logging.getLogger("fusionrec")

ATTENTION = ("user", "item")
SCORERS = ("dot", "mlp")
OBJECTIVES = ("bpr", "softmax", "mse")
SCORE_BLOCK = 64  # users per numpy block when scoring needs (users × items × modalities) arrays


class NeuralFusion(ContentMixin, TorchRecommender):
    """ID embeddings, one encoder per modality and a fusion operator, trained for ranking or for ratings.

    An item's vector is ``v_ui = e_i + Σ_m α_{u,m} c_{i,m}`` where ``c_{i,m}`` is modality ``m`` of item ``i``
    encoded to ``factors`` dimensions (a linear map of pretrained features, or an end-to-end tower: a small
    CNN over raw pixels, an embedding + LSTM over token ids) and ``α`` comes from :class:`ModalityAttention`
    queried by the user's embedding ``p_u`` (so every user weighs the modalities differently). The score is
    ``p_u · v_ui + b_i`` (``scorer="dot"``) or an MLP of ``[p_u, v_ui]``.

    With ``attention="user"`` the weights depend on the user only and the dot score is exported as one inner
    product: ``user_factors_ = [p_u, α_{u,1} p_u, …, α_{u,M} p_u, 1]``, ``item_factors_ = [e_i, c_{i,1}, …,
    c_{i,M}, b_i]`` (an ANN index can serve it; a cold item gets ``[0, c_1, …, c_M, mean b]``). With
    ``attention="item"`` the weights also look at the item's content (and skip modalities an item lacks);
    scoring then runs blockwise in numpy from the exported arrays.

    Parameters
    ----------
    factors : int
        Size of the ID embeddings and of every encoded modality.
    hidden : int
        Size of the attention's hidden projection and query.
    fusion : str
        ``"attention"`` (:class:`ModalityAttention`), ``"sum"`` (learnt global :class:`WeightedSum`) or
        ``"concat"`` (concatenation + linear map, i.e. an unweighted sum of the encoded modalities).
    attention : str
        ``"user"`` (weights per user; inner-product export) or ``"item"`` (per user and item).
    scorer : str
        ``"dot"`` or ``"mlp"`` (one hidden layer of ``mlp_hidden`` units over ``[p_u, v_ui]``).
    mlp_hidden : int
        Width of the MLP scorer.
    objective : str
        ``"bpr"`` (pairwise), ``"softmax"`` (sampled softmax over the positive and ``n_neg`` negatives, at
        ``temperature``) or ``"mse"`` (squared error on the stored values of the training matrix — explicit
        ratings — predicting ``μ + b_u + score``).
    n_neg : int
        Sampled negatives per positive (ranking objectives).
    temperature : float
        Softmax temperature.
    modalities : list of str or None
        Modalities to use (``None``: all, any names).
    feature_norm : str
        Normalisation of pretrained-feature modalities: ``"l2"``, ``"standard"``, ``"none"``.
    pca_dim : int or None
        Pretrained features wider than this are first reduced to their top principal directions.
    image_modalities : list of str or None
        Modalities holding raw pixels (rows of ``channels × image_size²`` values in [0, 1], see
        :func:`image_pixels`), encoded by a small CNN trained jointly.
    image_size : int
        Side of the raw images.
    text_modalities : list of str or None
        Modalities holding token ids (0 = padding; see :func:`text_tokens`), encoded by an embedding + LSTM.
    epochs, learning_rate, batch_size, min_batches, random_state, device, eval_every, patience, valid_metric
        Trainer settings (``models._torch``). With ``objective="mse"`` early stopping uses validation RMSE
        (``best_valid_`` is then −RMSE).
    reg : float
        L2 weight on the batch's embeddings and biases.
    modality_dropout : float
        Training only: each (pair, modality) is hidden from the fusion with this probability (at least one
        modality stays), so the model learns to serve items with a missing modality.
    feature_noise : float
        Training only: Gaussian noise, in per-dimension standard deviations, on pretrained features.

    References
    ----------
    Chen, Zhang, Zhang, Nie, Liu, Chua. Attentive Collaborative Filtering: Multimedia Recommendation with
    Item- and Component-Level Attention. SIGIR 2017.
    """

    name = "neural"
    search_space = {
        "factors": ("int", 16, 256, "log"),
        "hidden": ("int", 16, 128, "log"),
        "modality_dropout": ("float", 0.0, 0.5),
        "learning_rate": ("float", 1e-4, 2e-2, "log"),
        "reg": ("float", 1e-6, 1e-1, "log"),
    }
    requires_features = ("*",)
    uses_features = True
    supports_cold_items = True

    def __init__(
        self,
        *,
        factors: int = 64,
        hidden: int = 32,
        fusion: str = "attention",
        attention: str = "user",
        scorer: str = "dot",
        mlp_hidden: int = 64,
        objective: str = "bpr",
        n_neg: int = 1,
        temperature: float = 1.0,
        modalities: Sequence[str] | None = None,
        feature_norm: str = "l2",
        pca_dim: int | None = 128,
        image_modalities: Sequence[str] | None = None,
        image_size: int = 32,
        text_modalities: Sequence[str] | None = None,
        epochs: int = 200,
        learning_rate: float = 0.001,
        reg: float = 1e-4,
        batch_size: int = 2048,
        min_batches: int = 16,
        modality_dropout: float = 0.0,
        feature_noise: float = 0.0,
        eval_every: int = 1,
        patience: int = 20,
        valid_metric: str = "recall@20",
        random_state: int = 0,
        device: str = "cpu",
    ) -> None:
        self.factors = factors
        self.hidden = hidden
        self.fusion = fusion
        self.attention = attention
        self.scorer = scorer
        self.mlp_hidden = mlp_hidden
        self.objective = objective
        self.n_neg = n_neg
        self.temperature = temperature
        self.modalities = modalities
        self.feature_norm = feature_norm
        self.pca_dim = pca_dim
        self.image_modalities = image_modalities
        self.image_size = image_size
        self.text_modalities = text_modalities
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.reg = reg
        self.batch_size = batch_size
        self.min_batches = min_batches
        self.modality_dropout = modality_dropout
        self.feature_noise = feature_noise
        self.eval_every = eval_every
        self.patience = patience
        self.valid_metric = valid_metric
        self.random_state = random_state
        self.device = device

    # ------------------------------------------------------------------ capabilities
    @property
    def is_inner_product(self) -> bool:  # type: ignore[override]
        """The default (user-level attention, dot scorer) scores by ``user_factors_ @ item_factors_.T``."""
        return self.attention == "user" and self.scorer == "dot"

    @property
    def uses_negatives(self) -> bool:  # type: ignore[override]
        return self.objective != "mse"

    @property
    def task(self) -> str:  # type: ignore[override]
        """``objective="mse"`` predicts ratings (fit it with ``--task rating``); the others rank."""
        return "rating" if self.objective == "mse" else "ranking"

    def _check_params(self) -> None:
        for value, allowed, what in (
            (self.fusion, FUSIONS, "fusion"),
            (self.attention, ATTENTION, "attention"),
            (self.scorer, SCORERS, "scorer"),
            (self.objective, OBJECTIVES, "objective"),
        ):
            if value not in allowed:
                raise ConfigError(f"neural: {what} must be one of {allowed}; got {value!r}")
        if not 0.0 <= float(self.modality_dropout) < 1.0:
            raise ConfigError(f"neural: modality_dropout must be in [0, 1); got {self.modality_dropout}")

    # ------------------------------------------------------------------ building
    def _build(self, user_items: sp.csr_matrix, features: Features | None):
        import torch
        from torch import nn

        from fusionrec.models.fusion.operators import ModalityAttention, WeightedSum

        self._check_params()
        n_users, n_items = user_items.shape
        images = _names(self.image_modalities)
        texts = _names(self.text_modalities)
        both = sorted(set(images) & set(texts))
        if both:
            raise ConfigError(f"neural: {both} listed as both image and text modalities")
        feats = self._prepare_features(features, n_items, raw=images + texts)
        missing = sorted((set(images) | set(texts)) - set(self.modalities_))
        if missing:
            raise ConfigError(f"neural: raw modalities {missing} are not among the modalities used")
        d = int(self.factors)
        self.modality_kinds_ = [
            "image" if n in images else "text" if n in texts else "features" for n in self.modalities_
        ]
        module = nn.Module()
        module.user = nn.Embedding(n_users, d)
        module.item = nn.Embedding(n_items, d)
        nn.init.normal_(module.user.weight, std=0.1)
        nn.init.normal_(module.item.weight, std=0.1)
        module.item_bias = nn.Embedding(n_items, 1)
        nn.init.zeros_(module.item_bias.weight)
        if self.objective != "mse":  # ranking: start from popularity (see popularity_prior)
            with torch.no_grad():
                module.item_bias.weight.copy_(torch.from_numpy(popularity_prior(user_items)))
        module.encoders = nn.ModuleList()
        module.bases = []
        for j, (f, kind) in enumerate(zip(feats, self.modality_kinds_, strict=True)):
            basis = principal_basis(f, self.pca_dim) if kind == "features" else None
            x = f if basis is None else f @ basis
            module.bases.append(basis)
            module.register_buffer(f"feat_{j}", torch.from_numpy(np.ascontiguousarray(x)))
            module.encoders.append(_make_encoder(kind, x, d, int(self.image_size)))
        names = [str(j) for j in range(len(feats))]
        module.names = names
        present = np.stack([features.mask(n) for n in self.modalities_], axis=1)
        module.register_buffer("present", torch.from_numpy(present | ~present.any(axis=1, keepdims=True)))
        if self.fusion == "attention":
            module.op = ModalityAttention(names, d, hidden=int(self.hidden), query_dim=d)
            # per-modality keys: what the attention looks at when it weighs modalities per user only
            module.keys = nn.Parameter(torch.randn(len(names), d) * 0.1)
        elif self.fusion == "sum":
            module.op = WeightedSum(names)
        if self.scorer == "mlp":
            module.mlp = nn.Sequential(
                nn.Linear(2 * d, int(self.mlp_hidden)), nn.ReLU(), nn.Linear(int(self.mlp_hidden), 1)
            )
        if self.objective == "mse":
            data = np.asarray(user_items.data, dtype=np.float32)
            rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(user_items.indptr))
            module.register_buffer("rating_keys", torch.from_numpy(rows * n_items + user_items.indices))
            module.register_buffer("ratings", torch.from_numpy(data))
            module.user_bias = nn.Embedding(n_users, 1)
            nn.init.zeros_(module.user_bias.weight)
            module.register_buffer("global_mean", torch.tensor(float(data.mean()) if len(data) else 0.0))
        return module

    # ------------------------------------------------------------------ forward pieces
    def _encode(self, module, items):
        """Encoded modalities of ``items`` (1-D): list of ``(len(items), d)`` tensors."""
        out = []
        for j, enc in enumerate(module.encoders):
            x = getattr(module, f"feat_{j}")[items]
            if self.modality_kinds_[j] == "features" and getattr(self, "_training", False):
                sigma = float(self.feature_noise)
                if sigma > 0:
                    import torch

                    x = x + sigma * x.detach().std(dim=0, keepdim=True).clamp_min(1e-8) * torch.randn_like(x)
            out.append(enc(x))
        return out

    def _user_logits(self, module, p):
        """Per-user modality logits ``(B, M)`` (user-level attention) or global ones (weighted sum)."""
        import torch

        if self.fusion == "attention":
            keys = {n: module.keys[j].expand(p.shape[0], -1) for j, n in enumerate(module.names)}
            return module.op.scores(keys, p)
        if self.fusion == "sum":
            return module.op.logits.expand(p.shape[0], -1)
        return torch.zeros(p.shape[0], len(module.names), device=p.device)

    def _dropout_mask(self, shape, device):
        """Training-time modality dropout: ``(…, M)`` keep-mask with at least one modality kept per row."""
        import torch

        p = float(self.modality_dropout)
        if p <= 0 or not getattr(self, "_training", False):
            return None
        keep = torch.rand(shape, device=device) >= p
        none = ~keep.any(dim=-1, keepdim=True)
        forced = torch.nn.functional.one_hot(
            torch.randint(0, shape[-1], shape[:-1], device=device), shape[-1]
        )
        return keep | (none & forced.bool())

    def _pair_scores(self, module, users, items):
        """Scores ``(B, K)`` of ``items`` ``(B, K)`` for ``users`` ``(B,)``, and embeddings to regularise."""
        import torch

        from fusionrec.models.fusion.operators import masked_softmax

        b, k = items.shape
        p = module.user(users)
        uniq, inv = torch.unique(items.reshape(-1), return_inverse=True)
        enc = self._encode(module, uniq)
        parts = torch.stack([c[inv] for c in enc], dim=1).reshape(b, k, len(enc), -1)  # (B, K, M, d)
        mask = self._dropout_mask((b, k, len(enc)), p.device)
        if self.fusion == "concat":
            alpha = torch.ones(b, k, len(enc), device=p.device)
            if mask is not None:
                alpha = alpha * mask
        elif self.attention == "item" and self.fusion == "attention":
            xs = {n: parts[:, :, j].reshape(b * k, -1) for j, n in enumerate(module.names)}
            q = p.unsqueeze(1).expand(b, k, -1).reshape(b * k, -1)
            logits = module.op.scores(xs, q).reshape(b, k, -1)
            present = module.present[items]
            alpha = masked_softmax(logits, present if mask is None else present & mask)
        else:
            logits = self._user_logits(module, p).unsqueeze(1).expand(b, k, -1)
            alpha = masked_softmax(logits, mask)
        content = (alpha.unsqueeze(-1) * parts).sum(dim=2)
        e = module.item(items)
        v = e + content
        pu = p.unsqueeze(1).expand_as(v)
        if self.scorer == "mlp":
            s = module.mlp(torch.cat([pu, v], dim=-1)).squeeze(-1)
        else:
            s = (pu * v).sum(-1)
        bias = module.item_bias(items).squeeze(-1)
        return s + bias, (p, e.reshape(b * k, -1), bias)

    def _loss(self, module, batch: Batch):
        import torch
        import torch.nn.functional as F

        b = batch.users.shape[0]
        if self.objective == "mse":
            items = batch.pos.reshape(b, 1)
            s, embs = self._pair_scores(module, batch.users, items)
            n_items = module.item.num_embeddings
            keys = batch.users * n_items + batch.pos
            r = module.ratings[torch.searchsorted(module.rating_keys, keys)]
            pred = s[:, 0] + module.global_mean + module.user_bias(batch.users).squeeze(-1)
            loss = F.mse_loss(pred, r)
            reg = batch_l2(*embs, module.user_bias(batch.users))
        else:
            items = torch.cat([batch.pos.reshape(b, 1), batch.neg.reshape(b, -1)], dim=1)
            s, embs = self._pair_scores(module, batch.users, items)
            if self.objective == "softmax":
                target = torch.zeros(b, dtype=torch.long, device=s.device)
                loss = F.cross_entropy(s / float(self.temperature), target)
            else:
                loss = bpr_loss(s[:, 0], s[:, 1:])
            reg = batch_l2(*embs)
        return loss + float(self.reg) * reg

    # ------------------------------------------------------------------ export (numpy state)
    def _export_state(self, module) -> dict[str, np.ndarray]:
        import torch

        from fusionrec.models.fusion.operators import masked_softmax

        n_items = module.item.num_embeddings
        enc = self._encode(module, torch.arange(n_items, device=module.item.weight.device))
        content = torch.stack(enc, dim=1)  # (I, M, d)
        p = module.user.weight
        state: dict[str, np.ndarray] = {}
        mse = self.objective == "mse"
        cold_bias = module.item_bias.weight.mean().reshape(1)
        if self.is_inner_product:
            alpha = (
                masked_softmax(self._user_logits(module, p), None)
                if self.fusion != "concat"
                else torch.ones(p.shape[0], content.shape[1], device=p.device)
            )
            ones_u = torch.ones(p.shape[0], 1, device=p.device)
            ones_i = torch.ones(n_items, 1, device=p.device)
            user_cols = [p, *(alpha[:, j : j + 1] * p for j in range(content.shape[1])), ones_u]
            item_cols = [
                module.item.weight,
                *(content[:, j] for j in range(content.shape[1])),
                module.item_bias.weight,
            ]
            if mse:
                user_cols.append(module.global_mean + module.user_bias.weight)
                item_cols.append(ones_i)
            state["user_factors_"] = to_numpy(torch.cat(user_cols, dim=1))
            state["item_factors_"] = to_numpy(torch.cat(item_cols, dim=1))
            state["user_attention_"] = to_numpy(alpha)
        else:
            state["user_factors_"] = to_numpy(p)
            state["item_embeddings_"] = to_numpy(module.item.weight)
            state["item_bias_"] = to_numpy(module.item_bias.weight[:, 0])
            state["item_content_"] = to_numpy(content)
            if self.fusion == "attention" and self.attention == "item":
                h = torch.tanh(module.op.hidden_proj(content))  # (I, M, H)
                scale = module.op.hidden_proj.out_features**0.5
                state["item_keys_"] = to_numpy(torch.einsum("imh,mhk->imk", h, module.op.bilinear) / scale)
                state["user_query_"] = to_numpy(module.op.query_proj(p))
                state["item_present_"] = module.present.cpu().numpy().copy()
            else:
                alpha = (
                    masked_softmax(self._user_logits(module, p), None)
                    if self.fusion != "concat"
                    else torch.ones(p.shape[0], content.shape[1], device=p.device)
                )
                state["user_attention_"] = to_numpy(alpha)
            if self.scorer == "mlp":
                lin1, lin2 = module.mlp[0], module.mlp[2]
                state["mlp_w1_"] = to_numpy(lin1.weight.T)
                state["mlp_b1_"] = to_numpy(lin1.bias)
                state["mlp_w2_"] = to_numpy(lin2.weight[0])
                state["mlp_b2_"] = to_numpy(lin2.bias)
            if mse:
                state["user_bias_"] = to_numpy(module.global_mean + module.user_bias.weight[:, 0])
        state["cold_bias_"] = to_numpy(cold_bias)
        # what places a cold item: linear encoders as maps from raw features, towers as their weights
        for j, (kind, encoder) in enumerate(zip(self.modality_kinds_, module.encoders, strict=True)):
            if kind == "features":
                w = to_numpy(encoder.weight.T)
                basis = module.bases[j]
                state[f"content_proj_{j}_"] = w if basis is None else basis @ w
            else:
                for key, value in encoder.state_dict().items():
                    state[f"tower_{j}__{key.replace('.', '__')}_"] = to_numpy(value)
        return state

    # ------------------------------------------------------------------ scoring (numpy only)
    def score(self, users: np.ndarray) -> np.ndarray:
        self.check_fitted()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        if self.is_inner_product:
            return (self.user_factors_[users] @ self.item_factors_.T).astype(np.float32, copy=False)
        out = np.empty((len(users), self.n_items_), np.float32)
        for start in range(0, len(users), SCORE_BLOCK):
            block = users[start : start + SCORE_BLOCK]
            out[start : start + len(block)] = self._score_block(block)
        return out

    def _alpha_block(self, users: np.ndarray) -> np.ndarray:
        """Attention ``(B, I, M)`` of every item for ``users`` (non-inner-product modes)."""
        if hasattr(self, "item_keys_"):
            logits = np.einsum("bk,imk->bim", self.user_query_[users], self.item_keys_)
            return masked_softmax_np(logits, self.item_present_[None])
        a = self.user_attention_[users]
        return np.broadcast_to(a[:, None, :], (len(users), self.n_items_, a.shape[1]))

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        p = self.user_factors_[users]  # (B, d)
        alpha = self._alpha_block(users)  # (B, I, M)
        e, c = self.item_embeddings_, self.item_content_
        if self.scorer == "dot":
            s = p @ e.T + np.einsum("bim,bim->bi", alpha, np.einsum("bd,imd->bim", p, c))
        else:
            d = p.shape[1]
            w1u, w1v = self.mlp_w1_[:d], self.mlp_w1_[d:]
            h = (
                (p @ w1u)[:, None, :]
                + (e @ w1v)[None]
                + np.einsum("bim,imh->bih", alpha, c @ w1v)
                + self.mlp_b1_
            )
            s = np.maximum(h, 0.0) @ self.mlp_w2_ + self.mlp_b2_[0]
        s = s + self.item_bias_[None, :]
        if hasattr(self, "user_bias_"):
            s = s + self.user_bias_[users][:, None]
        return s.astype(np.float32)

    def user_vectors(self) -> np.ndarray:
        self.check_fitted()
        if not self.is_inner_product:
            raise NotImplementedError("neural exports vectors only with attention='user' and scorer='dot'")
        return self.user_factors_

    def item_vectors(self) -> np.ndarray:
        self.check_fitted()
        if not self.is_inner_product:
            raise NotImplementedError("neural exports vectors only with attention='user' and scorer='dot'")
        return self.item_factors_

    def fold_in_user(self, item_idx: np.ndarray) -> np.ndarray:
        """Ridge fold-in on the inner-product export (user-level attention, dot scorer)."""
        from fusionrec.models.base import FactorModel

        if not self.is_inner_product:
            raise NotImplementedError("neural folds in users only with attention='user' and scorer='dot'")
        return FactorModel.fold_in_user(self, item_idx)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ explanations
    def attention_weights(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Weight of each modality in the fused item vector, ``(n, k, M)``, for ``users`` and ``items``."""
        self.check_fitted()
        users = np.asarray(users, np.int64)
        items = np.asarray(items, np.int64).reshape(len(users), -1)
        if hasattr(self, "item_keys_"):
            logits = np.einsum("nk,nimk->nim", self.user_query_[users], self.item_keys_[items])
            return masked_softmax_np(logits, self.item_present_[items])
        a = self.user_attention_[users]
        return np.repeat(a[:, None, :], items.shape[1], axis=1)

    def modality_contributions(self, users: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
        """Additive parts of the dot score: ``collaborative`` (``p_u·e_i``), one per modality
        (``α_{u,m} p_u·c_{i,m}``) and ``bias``; ``(n, k)`` each. Not defined for the MLP scorer."""
        self.check_fitted()
        if self.scorer != "dot":
            raise NotImplementedError("score parts exist for the dot scorer only; use attention_weights")
        users = np.asarray(users, np.int64)
        items = np.asarray(items, np.int64).reshape(len(users), -1)
        n_mod = len(self.modalities_)
        if self.is_inner_product:
            U, V = self.user_factors_[users][:, None, :], self.item_factors_[items]
            d = (U.shape[-1] - 1 - (self.objective == "mse")) // (n_mod + 1)
            out = {"collaborative": (U[..., :d] * V[..., :d]).sum(-1)}
            for j, name in enumerate(self.modalities_):
                a, b = d * (j + 1), d * (j + 2)
                out[name] = (U[..., a:b] * V[..., a:b]).sum(-1)
            out["bias"] = (U[..., d * (n_mod + 1) :] * V[..., d * (n_mod + 1) :]).sum(-1)
            return out
        p = self.user_factors_[users][:, None, :]
        alpha = self.attention_weights(users, items)
        out = {"collaborative": (p * self.item_embeddings_[items]).sum(-1)}
        c = self.item_content_[items]  # (n, k, M, d)
        for j, name in enumerate(self.modalities_):
            out[name] = alpha[..., j] * (p * c[:, :, j]).sum(-1)
        bias = self.item_bias_[items]
        if hasattr(self, "user_bias_"):
            bias = bias + self.user_bias_[users][:, None]
        out["bias"] = bias
        return out

    # ------------------------------------------------------------------ cold items
    def item_vectors_from_features(self, rows: Mapping[str, np.ndarray]) -> np.ndarray:
        """Vector(s) of content-only items in the inner-product export: ``[0, c_1, …, c_M, mean b_i]``.

        Pretrained-feature modalities are mapped with numpy; raw-pixel / token modalities run their trained
        tower (rebuilt from the stored weights with torch).
        """
        self.check_fitted()
        if not self.is_inner_product:
            raise NotImplementedError(
                "neural places cold items in the inner-product export only (attention='user', scorer='dot')"
            )
        feats, n = self._rows_for_new_items(rows)
        parts = [self._encode_new(j, f) for j, f in enumerate(feats)]
        d = parts[0].shape[1]
        cols = [np.zeros((n, d), np.float32), *parts, np.full((n, 1), float(self.cold_bias_[0]), np.float32)]
        if self.objective == "mse":
            cols.append(np.ones((n, 1), np.float32))
        return np.hstack(cols).astype(np.float32)

    def _encode_new(self, j: int, x: np.ndarray) -> np.ndarray:
        kind = self.modality_kinds_[j]
        if kind == "features":
            return (x @ getattr(self, f"content_proj_{j}_")).astype(np.float32)
        import torch

        prefix = f"tower_{j}__"
        weights = {
            k[len(prefix) : -1].replace("__", "."): torch.from_numpy(np.asarray(v))
            for k, v in self.state_arrays().items()
            if k.startswith(prefix)
        }
        tower = _make_encoder(kind, x, int(self.factors), int(self.image_size), weights=weights)
        tower.load_state_dict(weights)
        tower.eval()
        with torch.inference_mode():
            return to_numpy(tower(torch.from_numpy(np.asarray(x, dtype=np.float32))))

    # ------------------------------------------------------------------ validation for ratings
    def _validate(
        self, state: dict[str, np.ndarray], train: sp.csr_matrix, valid: sp.csr_matrix, metric: str, **kw: Any
    ) -> float:
        if self.objective != "mse":
            return super()._validate(state, train, valid, metric, **kw)
        saved = {k: getattr(self, k) for k in state if hasattr(self, k)}
        had_fitted = getattr(self, "fitted_", False)
        for k, v in state.items():
            setattr(self, k, v)
        self.fitted_ = True
        try:
            return -rating_metrics(self, valid)["rmse"]
        finally:
            for k in state:
                if k in saved:
                    setattr(self, k, saved[k])
                else:
                    delattr(self, k)
            if not had_fitted:
                del self.fitted_

    def _after_load(self) -> None:
        self._check_params()


# ---------------------------------------------------------------------------------------------- helpers


def rating_metrics(model, ratings: sp.spmatrix) -> dict[str, float]:
    """RMSE and MAE of ``model.predict`` against the stored values of ``ratings`` (users × items, explicit).

    Works for any model whose scores are rating predictions (``neural`` with ``objective="mse"``); unclipped,
    as the model predicts.
    """
    r = sp.csr_matrix(ratings)
    if r.nnz == 0:
        raise ConfigError("rating_metrics needs at least one rating")
    users = np.repeat(np.arange(r.shape[0], dtype=np.int64), np.diff(r.indptr))
    pred = np.asarray(model.predict(users, r.indices.astype(np.int64)), dtype=np.float64)
    return {"rmse": rmse(pred, r.data), "mae": mae(pred, r.data), "n": int(r.nnz)}


def image_pixels(paths: Sequence[str | None], size: int = 32) -> Features:
    """Raw-pixel modality for the CNN tower: ``{"pixels": (n, 3·size²)}`` in [0, 1]; missing images absent."""
    from PIL import Image

    out = np.zeros((len(paths), 3 * size * size), np.float32)
    present = np.zeros(len(paths), bool)
    for i, path in enumerate(paths):
        if not path:
            continue
        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB").resize((size, size)), dtype=np.float32) / 255.0
        except OSError as err:  # an unreadable image counts as missing
            log.warning("image_pixels: cannot read %s (%s); treated as missing", path, err)
            continue
        out[i] = arr.transpose(2, 0, 1).ravel()
        present[i] = True
    return Features({"pixels": out}, {"pixels": present})


def text_tokens(texts: Sequence[str], max_len: int = 32, vocab_size: int = 4096) -> np.ndarray:
    """Token ids ``(n, max_len)`` for the LSTM tower: lower-cased words hashed into ``1..vocab_size-1``.

    0 pads.

    Hashing (CRC32) needs no stored vocabulary, so a new item's text maps the same way at serving time.
    """
    out = np.zeros((len(texts), max_len), np.float32)
    for i, text in enumerate(texts):
        words = "".join(ch.lower() if ch.isalnum() else " " for ch in (text or "")).split()[:max_len]
        out[i, : len(words)] = [1 + zlib.crc32(w.encode()) % (vocab_size - 1) for w in words]
    return out


def _names(value: Sequence[str] | str | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _make_encoder(kind: str, x: np.ndarray, d: int, image_size: int, weights: dict[str, Any] | None = None):
    """The encoder of one modality: linear map (features), small CNN (pixels) or embedding + LSTM (tokens)."""
    from torch import nn

    if kind == "features":
        return nn.Linear(x.shape[1], d, bias=False)
    if kind == "image":
        channels = x.shape[1] // (image_size * image_size)
        if channels * image_size * image_size != x.shape[1]:
            raise ConfigError(
                f"a raw image row has {x.shape[1]} values, not channels × {image_size}²; "
                "set image_size to the side used by image_pixels"
            )
        return _SmallCNN(channels, image_size, d)
    if weights is not None:
        vocab = int(weights["emb.weight"].shape[0])
    else:
        vocab = int(np.max(x)) + 1 if x.size else 2
    return _TokenLSTM(max(vocab, 2), d)


def _torch_modules():
    from torch import nn

    class SmallCNN(nn.Module):
        """Two strided 3×3 convolutions, global average pooling, a linear map to ``d``."""

        def __init__(self, channels: int, size: int, d: int):
            super().__init__()
            self.channels, self.size = channels, size
            self.conv = nn.Sequential(
                nn.Conv2d(channels, 16, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, padding=1),
                nn.ReLU(),
            )
            self.out = nn.Linear(32, d)

        def forward(self, x):
            x = x.reshape(-1, self.channels, self.size, self.size)
            return self.out(self.conv(x).mean(dim=(2, 3)))

    class TokenLSTM(nn.Module):
        """Token embedding, one LSTM layer, mean over non-padding positions, a linear map to ``d``."""

        def __init__(self, vocab: int, d: int, emb: int = 32):
            super().__init__()
            self.emb = nn.Embedding(vocab, emb, padding_idx=0)
            self.lstm = nn.LSTM(emb, d, batch_first=True)
            self.out = nn.Linear(d, d)

        def forward(self, x):
            ids = x.long().clamp(0, self.emb.num_embeddings - 1)
            h, _ = self.lstm(self.emb(ids))
            keep = (ids > 0).unsqueeze(-1).to(h.dtype)
            pooled = (h * keep).sum(1) / keep.sum(1).clamp_min(1.0)
            return self.out(pooled)

    return SmallCNN, TokenLSTM


def _SmallCNN(channels: int, size: int, d: int):  # noqa: N802 - a lazily created torch class
    return _torch_modules()[0](channels, size, d)


def _TokenLSTM(vocab: int, d: int):  # noqa: N802
    return _torch_modules()[1](vocab, d)
