"""ALS whose interaction matrix also holds one pseudo-user per item and modality: the item's content neighbours."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Features
from fusionrec.data.graph import knn_cosine
from fusionrec.errors import ConfigError
from fusionrec.models.fusion.content import content_weights_on_valid, resolve_modalities
from fusionrec.models.mf import ALS

# Weights tried per modality when they are fitted on validation (0 = the modality is switched off).
WEIGHT_GRID = (0.0, 0.3, 1.0, 3.0)


class ContentALS(ALS):
    """Implicit ALS on interactions and content together.

    For each modality ``m`` and each item ``i`` that has it, one pseudo-user is appended to the user × item
    matrix who "interacted" (with value ``w_m``) with ``i`` and its ``neighbors`` most content-alike items
    (cosine of the centred features). ALS then has to explain those rows with the same item factors as the
    real users' rows, so items that look or read alike get alike factors even when few people have seen
    both, and an item nobody has interacted with still gets factors from its neighbours. The pseudo-users'
    factors are dropped after the fit: scores, fold-in and everything downstream are ALS's.

    With ``content_weights=None`` and validation data, the weights are fitted on validation by a coordinate
    search over ``(0, 0.3, 1, 3)`` per modality starting from plain ALS (all 0), then a second pass that may
    also set a weight back to 0, so a modality that carries no signal ends at weight 0 and the model is never
    worse on validation than ALS with the same settings (``1 + 3·M`` ALS fits for ``M`` modalities, up to
    ``3·M`` more when the second pass runs).

    Parameters
    ----------
    factors, reg, alpha, epochs, random_state
        As in ALS (``als``).
    modalities : list of str or None
        Modalities to use (``None``: every modality of the data, whatever their names).
    neighbors : int
        Content neighbours per pseudo-user (the item itself included).
    content_weights : list of float or None
        Fixed weight per modality (in ``modalities`` order); ``None`` fits them on validation.
    valid_metric : str
        Validation metric(s) the weights maximise, averaged (``"recall@20,ndcg@20"``).

    References
    ----------
    Hu, Koren & Volinsky, "Collaborative filtering for implicit feedback datasets", ICDM 2008; Jeunen,
    Van Balen, Goethals, "Closed-form models for collaborative filtering with side-information", RecSys 2020
    (side information as extra rows of the interaction matrix); Zhou & Shen, "A tale of two graphs: freezing
    and denoising graph structures for multimodal recommendation" (FREEDOM), ACM MM 2023 (item–item content
    k-NN graphs beside the interactions).
    """

    name = "content-als"
    supports_warm_start = False  # the pseudo-users have no factors to carry over
    # a trial is up to 1 + 6·M ALS fits: ALS's space without its costliest corner (factors ≤ 256, epochs fixed)
    search_space = {
        "factors": ("int", 16, 256, "log"),
        "reg": ALS.search_space["reg"],
        "alpha": ALS.search_space["alpha"],
        "neighbors": ("int", 3, 50, "log"),
    }
    requires_features = ("*",)
    uses_features = True

    def __init__(
        self,
        *,
        factors: int = 64,
        reg: float = 20.0,
        alpha: float = 4.0,
        epochs: int = 15,
        random_state: int | None = 0,
        modalities: Sequence[str] | None = None,
        neighbors: int = 10,
        content_weights: Sequence[float] | None = None,
        valid_metric: str = "recall@20,ndcg@20",
    ) -> None:
        super().__init__(factors=factors, reg=reg, alpha=alpha, epochs=epochs, random_state=random_state)
        self.modalities = modalities
        self.neighbors = neighbors
        self.content_weights = content_weights
        self.valid_metric = valid_metric

    def _fit(
        self, user_items: sp.csr_matrix, features: Features | None, *, valid: sp.csr_matrix | None
    ) -> None:
        if int(self.neighbors) < 1:
            raise ConfigError(f"neighbors must be a positive integer; got {self.neighbors}")
        names = resolve_modalities(features, self.modalities)
        if not names:
            raise ConfigError("content-als needs at least one modality; the data has none")
        assert features is not None
        self.modalities_ = list(names)
        graphs = [_neighbour_rows(features[n], features.mask(n), int(self.neighbors)) for n in names]
        n_users = user_items.shape[0]

        def fit_with(weights: np.ndarray) -> None:
            rows = [user_items] + [float(w) * g for w, g in zip(weights, graphs, strict=True) if w > 0]
            super(ContentALS, self)._fit(sp.vstack(rows, format="csr"), None, valid=None)
            self.user_factors_ = np.ascontiguousarray(self.user_factors_[:n_users])

        best: dict[str, object] = {}

        def scorer(w: np.ndarray):
            fit_with(w)
            u, i = self.user_factors_, self.item_factors_
            return lambda users: u[users] @ i.T

        def keep_best(w: np.ndarray, value: float) -> None:
            if not best or value > best["value"]:  # the search keeps the first of equal winners, as here
                best.update(value=value, weights=w.copy(), factors=(self.user_factors_, self.item_factors_))

        weights = content_weights_on_valid(
            self, scorer, user_items, valid, WEIGHT_GRID, rounds=2, on_trial=keep_best
        )
        self.content_weights_ = weights.astype(np.float32)
        if best and np.array_equal(best["weights"], weights):  # the search's winner: no refit
            self.user_factors_, self.item_factors_ = best["factors"]
        else:
            fit_with(weights)


def _neighbour_rows(x: np.ndarray, present: np.ndarray, k: int) -> sp.csr_matrix:
    """One row per item: 1 at the item and its ``k - 1`` most cosine-alike items (centred features, positive
    similarities only); items without the modality get an empty row and are nobody's neighbour."""
    f = np.asarray(x, dtype=np.float32)
    if present.any():
        f = f - f[present].mean(axis=0)
    knn = knn_cosine(f, k, include_self=True, present=present)
    knn.data = (knn.data > 0).astype(np.float32)
    knn = (sp.diags(present.astype(np.float32)) @ knn).tocsr()
    knn.eliminate_zeros()
    return knn
