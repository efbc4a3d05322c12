"""VBPR: BPR matrix factorisation with a content term over any number of item modalities."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Features
from fusionrec.errors import ConfigError
from fusionrec.models._torch import (
    TRAINER_DEFAULTS,
    Batch,
    TorchFactorModel,
    batch_l2,
    bpr_loss,
    popularity_prior,
    to_numpy,
)
from fusionrec.models.fusion.content import ContentMixin, principal_basis

USER_CONTENT = ("shared", "per-modality")


class VBPR(ContentMixin, TorchFactorModel):
    """Visual (here: any-modality) Bayesian personalised ranking.

    ``score(u, i) = β_i + βᶜ·f_i + γ_u·γ_i + Σ_m θ_{u,m}·E_m f_{i,m}``: collaborative factors ``γ``, one
    projection ``E_m`` per modality applied to the item's (normalised) features ``f_{i,m}``, user content
    tastes ``θ`` (one vector shared by all modalities, or one per modality) and item / content biases.
    Trained with BPR.

    For serving, the content term is folded into the factors: ``user_factors_ = [γ_u, θ_u per modality, 1]``
    and ``item_factors_ = [γ_i, E_m f_{i,m} per modality, bias_i]``, so scoring is one inner product. An item
    known only by its content gets ``[0, E_m f_m, βᶜ·f + mean β]`` from :meth:`item_vectors_from_features`.

    Parameters
    ----------
    factors : int
        Size of the collaborative factors ``γ``.
    content_dim : int or None
        Size of each projected modality ``E_m f_m`` (``None``: ``factors``).
    user_content : str
        ``"shared"``: one ``θ_u`` for every modality (the original model on concatenated features);
        ``"per-modality"``: one ``θ_{u,m}`` per modality.
    modalities : list of str or None
        Modalities to use (``None``: every modality of the data, whatever their names).
    feature_norm : str
        Per-modality normalisation before projection: ``"l2"``, ``"standard"`` or ``"none"``.
    pca_dim : int or None
        Wider modalities are first reduced to their top ``pca_dim`` principal directions (a fixed map
        folded into the exported projection; it makes each step several times cheaper on 1280-d CNN
        features). ``None`` keeps every dimension.
    epochs, learning_rate, batch_size, min_batches, random_state, device
        Trainer settings (see ``models._torch``).
    reg : float
        L2 weight on the batch's embeddings (``γ``, ``θ``, item biases).
    reg_content : float
        L2 weight on the projections ``E_m`` and content biases.
    modality_dropout, feature_noise : float
        Training-time augmentation of the item features (whole-modality dropout, Gaussian noise).
    eval_every, patience, valid_metric
        Early stopping on validation.

    References
    ----------
    He, McAuley. VBPR: Visual Bayesian Personalized Ranking from Implicit Feedback. AAAI 2016.
    """

    name = "vbpr"
    search_space = {
        "factors": ("int", 16, 256, "log"),
        "reg_content": ("float", 1e-6, 1e-1, "log"),
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
        content_dim: int | None = None,
        user_content: str = "shared",
        modalities: Sequence[str] | None = None,
        feature_norm: str = "l2",
        pca_dim: int | None = 128,
        epochs: int = 200,
        learning_rate: float = 0.005,
        reg: float = 1e-3,
        reg_content: float = 1e-4,
        batch_size: int = 2048,
        min_batches: int = 16,
        modality_dropout: float = TRAINER_DEFAULTS["modality_dropout"],
        feature_noise: float = TRAINER_DEFAULTS["feature_noise"],
        eval_every: int = TRAINER_DEFAULTS["eval_every"],
        patience: int = 20,
        valid_metric: str = TRAINER_DEFAULTS["valid_metric"],
        random_state: int = TRAINER_DEFAULTS["random_state"],
        device: str = TRAINER_DEFAULTS["device"],
    ) -> None:
        self.factors = factors
        self.content_dim = content_dim
        self.user_content = user_content
        self.modalities = modalities
        self.feature_norm = feature_norm
        self.pca_dim = pca_dim
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.reg = reg
        self.reg_content = reg_content
        self.batch_size = batch_size
        self.min_batches = min_batches
        self.modality_dropout = modality_dropout
        self.feature_noise = feature_noise
        self.eval_every = eval_every
        self.patience = patience
        self.valid_metric = valid_metric
        self.random_state = random_state
        self.device = device

    # ------------------------------------------------------------------ training
    def _build(self, user_items: sp.csr_matrix, features: Features | None):
        import torch
        from torch import nn

        if self.user_content not in USER_CONTENT:
            raise ConfigError(f"user_content must be one of {USER_CONTENT}; got {self.user_content!r}")
        n_users, n_items = user_items.shape
        feats = self._prepare_features(features, n_items)
        k, kc = int(self.factors), int(self.content_dim or self.factors)
        n_mod = len(feats)
        per_mod = self.user_content == "per-modality"
        module = nn.Module()
        module.user = nn.Embedding(n_users, k)
        module.item = nn.Embedding(n_items, k)
        module.theta = nn.Embedding(n_users, kc * (n_mod if per_mod else 1))
        module.item_bias = nn.Embedding(n_items, 1)
        for emb in (module.user, module.item, module.theta):
            nn.init.normal_(emb.weight, std=0.1)
        with torch.no_grad():  # popularity as the starting bias (see popularity_prior)
            module.item_bias.weight.copy_(torch.from_numpy(popularity_prior(user_items)))
        # Every modality's (reduced) features side by side, and ONE linear map whose rows are
        # [E (shared) or E_1 … E_M (per modality, block-diagonal), βᶜ]: a step is one gather and one product
        # (separate per-modality layers made VBPR's small steps overhead-bound).
        module.bases, blocks = [], []
        for f in feats:
            basis = principal_basis(f, self.pca_dim)
            module.bases.append(basis)
            blocks.append(f if basis is None else f @ basis)
        module.spans = np.cumsum([0] + [b.shape[1] for b in blocks]).tolist()
        module.register_buffer("feats", torch.from_numpy(np.ascontiguousarray(np.hstack(blocks))))
        n_out = kc * (n_mod if per_mod else 1) + 1
        module.content = nn.Linear(module.spans[-1], n_out, bias=False)
        with torch.no_grad():
            module.content.weight[-1].zero_()
        if per_mod:
            mask = torch.zeros(n_out, module.spans[-1])
            for j in range(n_mod):
                mask[j * kc : (j + 1) * kc, module.spans[j] : module.spans[j + 1]] = 1.0
            mask[-1] = 1.0
            module.register_buffer("mask", mask)
        module.kc, module.n_modalities = kc, n_mod
        return module

    def _content_weight(self, module):
        w = module.content.weight
        return w * module.mask if hasattr(module, "mask") else w

    def _content(self, module, items):
        """Content part ``(…, n_out − 1)`` (per-modality blocks, or their sum if shared) and content bias."""
        flat = items.reshape(-1)
        # a batch names more items than the catalogue holds: project every item once, then look up
        every = flat.numel() >= module.feats.shape[0]
        x = module.feats if every else module.feats[flat]
        if getattr(self, "_training", False) and (self.modality_dropout or self.feature_noise):
            import torch

            sp_ = module.spans
            x = torch.cat([self._augment(x[:, a:b]) for a, b in zip(sp_[:-1], sp_[1:], strict=True)], dim=1)
        out = x @ self._content_weight(module).T
        if every:
            out = out[flat]
        shape = tuple(items.shape)
        return out[:, :-1].reshape(*shape, -1), out[:, -1].reshape(shape)

    def _loss(self, module, batch: Batch):
        import torch

        u, theta = module.user(batch.users), module.theta(batch.users)
        b = batch.users.shape[0]
        items = torch.cat([batch.pos.reshape(b, -1), batch.neg.reshape(b, -1)], dim=1)  # (B, 1 + n_neg)
        gi = module.item(items)
        content, cbias = self._content(module, items)
        ib = module.item_bias(items).squeeze(-1)
        # per modality, θ_u is split into the same blocks as the content, so one product covers both cases
        s = (u.unsqueeze(1) * gi).sum(-1) + (theta.unsqueeze(1) * content).sum(-1) + ib + cbias
        loss = bpr_loss(s[:, 0], s[:, 1:])
        loss = loss + float(self.reg) * batch_l2(u, theta, gi.reshape(b, -1), ib)
        if self.reg_content:
            loss = loss + float(self.reg_content) * self._content_weight(module).pow(2).sum() / 2
        return loss

    def _export_state(self, module) -> dict[str, np.ndarray]:
        import torch

        n_mod, kc, spans = module.n_modalities, module.kc, module.spans
        w = to_numpy(self._content_weight(module))  # (n_out, D)
        feats = module.feats.cpu().numpy()
        state = {"cold_bias_": to_numpy(module.item_bias.weight.mean().reshape(1))}
        parts = []
        for j in range(n_mod):
            a, b = spans[j], spans[j + 1]
            rows = slice(j * kc, (j + 1) * kc) if module.content.out_features > kc + 1 else slice(0, kc)
            proj, cbias = w[rows, a:b].T, w[-1, a:b]  # reduced features → content / bias
            parts.append(feats[:, a:b] @ proj)
            basis = module.bases[j]  # what places a cold item, from its raw features
            state[f"content_proj_{j}_"] = proj if basis is None else basis @ proj
            state[f"content_bias_{j}_"] = cbias if basis is None else basis @ cbias
        theta = module.theta.weight
        thetas = torch.chunk(theta, n_mod, dim=-1) if self.user_content == "per-modality" else [theta] * n_mod
        ones = torch.ones(theta.shape[0], 1, device=theta.device)
        state["user_factors_"] = to_numpy(torch.cat([module.user.weight, *thetas, ones], dim=1))
        bias = to_numpy(module.item_bias.weight[:, 0]) + feats @ w[-1]
        state["item_factors_"] = np.hstack([to_numpy(module.item.weight), *parts, bias[:, None]]).astype(
            np.float32
        )
        return state

    @property
    def blocks(self) -> list[tuple[str, int, int]]:
        """``(part, start, stop)`` column ranges of the factors: collaborative, each modality, bias."""
        self.check_fitted()
        kc = self.content_proj_0_.shape[1]
        k = self.user_factors_.shape[1] - 1 - kc * len(self.modalities_)
        out = [("collaborative", 0, k)]
        out += [(name, k + j * kc, k + (j + 1) * kc) for j, name in enumerate(self.modalities_)]
        return [*out, ("bias", k + len(self.modalities_) * kc, k + len(self.modalities_) * kc + 1)]

    # ------------------------------------------------------------------ cold items
    def item_vectors_from_features(self, rows: Mapping[str, np.ndarray]) -> np.ndarray:
        """``[0, E_m f_m per modality, βᶜ·f + mean item bias]`` for items known only by content."""
        self.check_fitted()
        feats, n = self._rows_for_new_items(rows)
        k = self.blocks[0][2]
        parts = [f @ getattr(self, f"content_proj_{j}_") for j, f in enumerate(feats)]
        bias = float(self.cold_bias_[0]) + sum(
            f @ getattr(self, f"content_bias_{j}_") for j, f in enumerate(feats)
        )
        out = np.hstack([np.zeros((n, k), np.float32), *parts, np.asarray(bias, np.float32).reshape(n, 1)])
        return out.astype(np.float32)

    def score_parts(self, users: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
        """Additive decomposition of ``score(u, i)`` for aligned ``users`` (n,) and ``items`` (n, k):
        ``{"collaborative": γ_u·γ_i, <modality>: θ_{u,m}·E_m f_{i,m}, ..., "bias": item + content bias}``."""
        self.check_fitted()
        users = np.asarray(users, np.int64)
        items = np.asarray(items, np.int64)
        U = self.user_factors_[users][:, None, :]
        V = self.item_factors_[items]
        return {name: (U[..., a:b] * V[..., a:b]).sum(-1) for name, a, b in self.blocks}
