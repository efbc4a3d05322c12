"""BPR matrix factorisation trained with the shared torch trainer."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Features
from fusionrec.models._torch import (
    TRAINER_DEFAULTS,
    Batch,
    TorchFactorModel,
    batch_l2,
    bpr_loss,
    popularity_prior,
    to_numpy,
)


class BPRTorch(TorchFactorModel):
    """Bayesian personalised ranking matrix factorisation (minibatch Adam, uniform negatives).

    ``score(u, i) = γ_u·γ_i + β_i``, stored as ``user_factors_ = [γ_u, 1]`` and ``item_factors_ = [γ_i, β_i]``
    so scoring stays ``user_factors_ @ item_factors_.T``. The item bias starts from popularity
    (:func:`~fusionrec.models._torch.popularity_prior`): started at 0 it is learned only after many steps,
    and on the benchmark thinned to 5 interactions per user early stopping came first (0.061 R@20 against
    most-popular's 0.087). The defaults (128 factors, batch 4096, learning_rate 0.002, reg 0.01) were
    chosen on the MovieLens benchmark's validation split.

    Parameters
    ----------
    factors : int
        Embedding size.
    epochs : int
        Maximum training epochs (early stopping on ``valid`` may end sooner).
    learning_rate : float
        Adam step size.
    reg : float
        L2 weight on the batch's user, positive and negative embeddings.
    batch_size : int
        Training triples per step.
    min_batches : int
        An epoch has at least this many minibatches (the batch shrinks on small data): 3,050 interactions in
        batches of 4096 were one step per epoch, and early stopping's patience ran out before the model
        learned more than its random start. 0 keeps ``batch_size`` as given.
    eval_every, patience, valid_metric
        Validation schedule: evaluate every ``eval_every`` epochs, stop after ``patience`` evaluations
        without improvement of ``valid_metric``; the best-valid epoch's embeddings are kept.
    random_state : int
        Seed for initialisation, negatives and batch order.
    device : str
        "cpu", "cuda" or "auto".

    References
    ----------
    Rendle, Freudenthaler, Gantner, Schmidt-Thieme. BPR: Bayesian Personalized Ranking from Implicit
    Feedback. UAI 2009.
    """

    name = "bpr-torch"
    search_space = {
        "factors": ("int", 32, 256, "log"),
        "learning_rate": ("float", 1e-4, 2e-2, "log"),
        "reg": ("float", 1e-6, 1e-1, "log"),
    }

    def __init__(
        self,
        *,
        factors: int = 128,
        epochs: int = 300,
        learning_rate: float = 0.002,
        reg: float = 0.01,
        batch_size: int = 4096,
        min_batches: int = 16,
        eval_every: int = TRAINER_DEFAULTS["eval_every"],
        patience: int = 20,
        valid_metric: str = TRAINER_DEFAULTS["valid_metric"],
        random_state: int = TRAINER_DEFAULTS["random_state"],
        device: str = TRAINER_DEFAULTS["device"],
    ) -> None:
        self.factors = factors
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
        import torch
        from torch import nn

        n_users, n_items = user_items.shape
        module = nn.Module()
        module.user = nn.Embedding(n_users, int(self.factors))
        module.item = nn.Embedding(n_items, int(self.factors))
        module.item_bias = nn.Embedding(n_items, 1)
        nn.init.xavier_uniform_(module.user.weight)
        nn.init.xavier_uniform_(module.item.weight)
        with torch.no_grad():
            module.item_bias.weight.copy_(torch.from_numpy(popularity_prior(user_items)))
        return module

    def _loss(self, module, batch: Batch):
        u = module.user(batch.users)
        p, bp = module.item(batch.pos), module.item_bias(batch.pos).squeeze(-1)
        n, bn = module.item(batch.neg), module.item_bias(batch.neg).squeeze(-1)
        scores = (u * p).sum(-1) + bp, (u * n).sum(-1) + bn
        return bpr_loss(*scores) + float(self.reg) * batch_l2(u, p, n, bp, bn)

    def _final_embeddings(self, module) -> tuple[np.ndarray, np.ndarray]:
        user, item = to_numpy(module.user.weight), to_numpy(module.item.weight)
        ones = np.ones((user.shape[0], 1), np.float32)
        return np.hstack([user, ones]), np.hstack([item, to_numpy(module.item_bias.weight)])
