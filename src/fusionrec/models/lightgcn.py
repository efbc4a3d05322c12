"""LightGCN: embeddings smoothed over the normalised user–item graph, trained with BPR."""

from __future__ import annotations

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
    bpr_loss,
    embedding_module,
    to_numpy,
)


def propagate(adj: SparseAdj, user_emb, item_emb, layers: int):
    """LightGCN propagation: mean of ``E, AE, …, A^L E`` over the stacked user/item embeddings.

    Returns ``(users, items)`` tensors; one sparse product per layer over the whole graph.
    """
    import torch

    n_users = user_emb.shape[0]
    ego = torch.cat([user_emb, item_emb], dim=0)
    acc = ego
    for _ in range(layers):
        ego = adj @ ego
        acc = acc + ego
    out = acc / float(layers + 1)
    return out[:n_users], out[n_users:]


class LightGCN(TorchFactorModel):
    """Light graph convolution: no feature transforms or non-linearities, layer-averaged embeddings.

    Scores are inner products of the propagated embeddings (stored as ``user_factors_``/``item_factors_``,
    so serving needs neither torch nor the graph). The defaults (128 factors, batch 4096, learning_rate 0.005,
    reg 1e-3) were chosen on the MovieLens benchmark's validation split.

    Parameters
    ----------
    factors : int
        Embedding size.
    layers : int
        Propagation layers over the symmetric-normalised user–item graph.
    epochs, learning_rate, batch_size
        Adam training schedule (early stopping on ``valid`` may end sooner).
    reg : float
        L2 weight on the layer-0 embeddings of the batch.
    min_batches : int
        An epoch has at least this many minibatches (the batch shrinks on small data): 3,050 interactions in
        batches of 4096 were one step per epoch, and early stopping's patience ran out before the model
        learned more than its random start. 0 keeps ``batch_size`` as given.
    eval_every, patience, valid_metric
        Validation schedule; the best-valid epoch's embeddings are kept.
    random_state : int
        Seed for initialisation, negatives and batch order.
    device : str
        "cpu", "cuda" or "auto".

    References
    ----------
    He, Deng, Wang, Li, Zhang, Wang. LightGCN: Simplifying and Powering Graph Convolution Network for
    Recommendation. SIGIR 2020.
    """

    name = "lightgcn"
    search_space = {
        "factors": ("int", 32, 256, "log"),
        "layers": ("int", 1, 4),
        "learning_rate": ("float", 1e-4, 2e-2, "log"),
        "reg": ("float", 1e-6, 1e-1, "log"),
    }

    def __init__(
        self,
        *,
        factors: int = 128,
        layers: int = 2,
        epochs: int = 300,
        learning_rate: float = 0.005,
        reg: float = 1e-3,
        batch_size: int = 4096,
        min_batches: int = 16,
        eval_every: int = TRAINER_DEFAULTS["eval_every"],
        patience: int = 20,
        valid_metric: str = TRAINER_DEFAULTS["valid_metric"],
        random_state: int = TRAINER_DEFAULTS["random_state"],
        device: str = TRAINER_DEFAULTS["device"],
    ) -> None:
        self.factors = factors
        self.layers = layers
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.reg = reg
        self.batch_size = batch_size
        self.min_batches = min_batches
        self.eval_every = eval_every
        self.patience = patience
        self.valid_metric = valid_metric
        self.random_state = random_state
        self.device = device

    def _build(self, user_items: sp.csr_matrix, features: Features | None):
        n_users, n_items = user_items.shape
        module = embedding_module(n_users, n_items, int(self.factors))
        module.adj = SparseAdj(normalised_adjacency(user_items), self._device)
        return module

    def _propagate(self, module):
        return propagate(module.adj, module.user.weight, module.item.weight, int(self.layers))

    def _loss(self, module, batch: Batch):
        users, items = self._propagate(module)
        u, p, n = users[batch.users], items[batch.pos], items[batch.neg]
        pos, neg = (u * p).sum(-1), (u.unsqueeze(-2) * n).sum(-1) if n.dim() == 3 else (u * n).sum(-1)
        reg = batch_l2(module.user(batch.users), module.item(batch.pos), module.item(batch.neg))
        return bpr_loss(pos, neg) + float(self.reg) * reg

    def _final_embeddings(self, module) -> tuple[np.ndarray, np.ndarray]:
        users, items = self._propagate(module)
        return to_numpy(users), to_numpy(items)
