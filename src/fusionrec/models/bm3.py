"""BM3: bootstrapped multimodal learning without negative samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Features
from fusionrec.data.graph import normalised_adjacency
from fusionrec.models._torch import (
    TRAINER_DEFAULTS,
    Batch,
    SparseAdj,
    TorchFactorModel,
    batch_l2,
    embedding_module,
    to_numpy,
)
from fusionrec.models.fusion.content import resolve_modalities
from fusionrec.models.lightgcn import propagate


class BM3(TorchFactorModel):
    """Self-supervised multimodal recommender: a shared predictor aligns online views with dropout targets.

    User and item ID embeddings are smoothed with LightGCN (the item ID embedding is added back); every
    modality is projected to the embedding space. For each observed (user, item) pair the loss pulls the
    predictor's output for the user towards a dropout-perturbed, gradient-free copy of the item and vice
    versa, and pulls each modality's projection towards the item target and towards its own perturbed copy
    (cosine losses, weight ``align_weight``). No negatives are sampled. Scores are inner products of the
    predictor's outputs, so serving is plain ``user_factors_ @ item_factors_.T``. Any number of modalities.
    The defaults (batch 4096, learning_rate 0.002, reg 0, dropout 0.5) were chosen on the MovieLens
    benchmark's validation split.

    Parameters
    ----------
    factors : int
        Embedding size.
    layers : int
        LightGCN layers on the user–item graph.
    dropout : float
        Latent-embedding dropout that makes the target views.
    align_weight : float
        Weight of the modality alignment losses.
    reg : float
        L2 weight on the batch's propagated user and item embeddings.
    epochs, learning_rate, batch_size, eval_every, patience, valid_metric, random_state, device
        Shared trainer settings (see ``fusionrec.models._torch``).
    modality_dropout, feature_noise : float
        Training-time feature augmentation before the projections.
    modalities : list of str or None
        Modalities to use (``None``: all, any names).

    References
    ----------
    Zhou, Zhou, Zhang, Liu, Miao. Bootstrap Latent Representations for Multi-modal Recommendation.
    WWW 2023.
    """

    name = "bm3"
    search_space = {
        "factors": ("int", 32, 256, "log"),
        "layers": ("int", 1, 3),
        "dropout": ("float", 0.0, 0.8),
        "align_weight": ("float", 0.01, 10.0, "log"),
        "learning_rate": ("float", 1e-4, 2e-2, "log"),
        "reg": ("float", 1e-6, 1e-1, "log"),
    }
    requires_features = ("*",)
    uses_features = True
    uses_negatives = False

    def __init__(
        self,
        *,
        factors: int = 64,
        layers: int = 1,
        dropout: float = 0.5,
        align_weight: float = 2.0,
        reg: float = 0.0,
        epochs: int = 300,
        learning_rate: float = 0.002,
        batch_size: int = 4096,
        eval_every: int = TRAINER_DEFAULTS["eval_every"],
        patience: int = 20,
        valid_metric: str = TRAINER_DEFAULTS["valid_metric"],
        modality_dropout: float = TRAINER_DEFAULTS["modality_dropout"],
        feature_noise: float = TRAINER_DEFAULTS["feature_noise"],
        modalities: Sequence[str] | str | None = None,
        random_state: int = TRAINER_DEFAULTS["random_state"],
        device: str = TRAINER_DEFAULTS["device"],
    ) -> None:
        self.factors = factors
        self.layers = layers
        self.dropout = dropout
        self.align_weight = align_weight
        self.reg = reg
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.eval_every = eval_every
        self.patience = patience
        self.valid_metric = valid_metric
        self.modality_dropout = modality_dropout
        self.feature_noise = feature_noise
        self.random_state = random_state
        self.device = device
        self.modalities = modalities

    def _build(self, user_items: sp.csr_matrix, features: Features | None):
        import torch
        from torch import nn

        assert features is not None  # requires_features guarantees it
        names = resolve_modalities(features, self.modalities)
        n_users, n_items = user_items.shape
        d = int(self.factors)
        module = embedding_module(n_users, n_items, d)
        module.predictor = nn.Linear(d, d)
        nn.init.xavier_normal_(module.predictor.weight)
        module.proj = nn.ModuleList([nn.Linear(features[n].shape[1], d) for n in names])
        for lin in module.proj:
            nn.init.xavier_normal_(lin.weight)
        module.feats = [torch.from_numpy(np.ascontiguousarray(features[n])).to(self._device) for n in names]
        module.adj = SparseAdj(normalised_adjacency(user_items), self._device)
        return module

    def _forward(self, module):
        users, items = propagate(module.adj, module.user.weight, module.item.weight, int(self.layers))
        return users, items + module.item.weight

    def _loss(self, module, batch: Batch):
        import torch
        import torch.nn.functional as F

        p = float(self.dropout)
        users, items = self._forward(module)
        u_on, i_on = users[batch.users], items[batch.pos]
        with torch.no_grad():
            u_tgt = self._dropout(u_on.detach(), p)
            i_tgt = self._dropout(i_on.detach(), p)
        u_pred, i_pred = module.predictor(u_on), module.predictor(i_on)
        loss = (1 - F.cosine_similarity(u_pred, i_tgt, dim=-1).mean()) + (
            1 - F.cosine_similarity(i_pred, u_tgt, dim=-1).mean()
        )
        if float(self.align_weight) > 0:
            align = 0.0
            for lin, x in zip(module.proj, module.feats, strict=True):
                # the whole catalogue costs about what a gather of the batch's items would
                z = lin(self._augment(x))[batch.pos]
                z_tgt = self._dropout(z.detach(), p)
                z_pred = module.predictor(z)
                align = align + (1 - F.cosine_similarity(z_pred, i_tgt, dim=-1).mean())
                align = align + (1 - F.cosine_similarity(z_pred, z_tgt, dim=-1).mean())
            loss = loss + float(self.align_weight) * align
        if float(self.reg) > 0:
            loss = loss + float(self.reg) * batch_l2(u_on, i_on)
        return loss

    def _final_embeddings(self, module) -> tuple[np.ndarray, np.ndarray]:
        users, items = self._forward(module)
        return to_numpy(module.predictor(users)), to_numpy(module.predictor(items))
