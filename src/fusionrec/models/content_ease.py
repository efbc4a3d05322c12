"""EASE whose item–item Gram matrix also counts how alike the items' content is."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Features
from fusionrec.errors import ConfigError
from fusionrec.models.fusion.content import content_weights_on_valid, resolve_modalities
from fusionrec.models.knn import EASE

# Kernel weights tried per modality when they are fitted on validation (0 = the modality is switched off).
WEIGHT_GRID = (0.0, 0.1, 0.3, 1.0, 3.0)


class ContentEASE(EASE):
    """EASE on interactions and content together: ``P = (XᵀX + s·Σ_m w_m F_m F_mᵀ + reg·I)⁻¹``.

    ``F_m`` holds modality ``m``'s features, centred and L2-normalised per item (items without that modality
    get a zero row), so ``F_m F_mᵀ`` is the items' content cosine. Adding it to the Gram matrix is the same as
    adding one pseudo-user per feature dimension who "interacted" with every item in proportion to that
    feature: items with alike content then predict each other even when few people have seen both, and an
    item nobody has interacted with still gets weights from its content. ``s`` is the mean item popularity
    (the mean of ``diag(XᵀX)``), so a weight means the same on sparse and dense data. The kernel is a Gram
    matrix itself (positive semi-definite), so any non-negative weights keep the solve well posed.

    With ``content_weights=None`` and validation data, the weights are fitted on validation by a coordinate
    search over ``(0, 0.1, 0.3, 1, 3)`` per modality, starting from plain EASE (all 0): a modality that
    carries no signal keeps weight 0, and the model is never worse on validation than EASE with the same
    ``reg``.

    Parameters
    ----------
    reg, bias_reg : float
        Ridge added to the diagonal and the item-bias column's penalty (``None``: no item bias), as in EASE.
    modalities : list of str or None
        Modalities to use (``None``: every modality of the data, whatever their names).
    content_weights : list of float or None
        Fixed kernel weight per modality (in ``modalities`` order); ``None`` fits them on validation.
    valid_metric : str
        Validation metric(s) the weights maximise, averaged (``"recall@20,ndcg@20"``).

    References
    ----------
    Steck, "Embarrassingly shallow autoencoders for sparse data", WWW 2019; Jeunen, Van Balen, Goethals,
    "Closed-form models for collaborative filtering with side-information", RecSys 2020 (side information
    as extra rows of the interaction matrix).
    """

    name = "content-ease"
    search_space = {"reg": ("float", 1.0, 1e4, "log")}
    requires_features = ("*",)
    uses_features = True

    def __init__(
        self,
        *,
        reg: float = 200.0,
        bias_reg: float | None = 3.0,
        modalities: Sequence[str] | None = None,
        content_weights: Sequence[float] | None = None,
        valid_metric: str = "recall@20,ndcg@20",
    ) -> None:
        super().__init__(reg=reg, bias_reg=bias_reg)
        self.modalities = modalities
        self.content_weights = content_weights
        self.valid_metric = valid_metric

    def _fit(
        self, user_items: sp.csr_matrix, features: Features | None, *, valid: sp.csr_matrix | None
    ) -> None:
        self._check_settings(user_items.shape[1])
        names = resolve_modalities(features, self.modalities)
        if not names:
            raise ConfigError("content-ease needs at least one modality; the data has none")
        assert features is not None
        self.modalities_ = list(names)
        self._store_history(user_items)
        x = self._history
        gram = (x.T @ x).toarray().astype(np.float64)
        scale = float(np.diag(gram).mean()) or 1.0
        contents = [_unit_rows(features[n], features.mask(n)) for n in names]

        def solve(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            g = gram.copy()
            for w, f in zip(weights, contents, strict=True):
                if w:
                    g += (scale * float(w)) * (f @ f.T)
            return self._solve(g, x)

        hist = self._history

        def scorer(w: np.ndarray):
            b, bias = solve(w)
            return lambda u: np.asarray(hist[u] @ b) + bias

        weights = content_weights_on_valid(self, scorer, user_items, valid, WEIGHT_GRID)
        self.content_weights_ = weights.astype(np.float32)
        self.weights_, self.item_bias_ = solve(weights)


def _unit_rows(x: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Centred (over the items that have the modality), L2-normalised rows; absent items get zeros."""
    f = np.asarray(x, dtype=np.float64)
    f = np.where(present[:, None], f, 0.0)
    if present.any():
        f = f - f[present].mean(axis=0)
    f[~present] = 0.0
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    return np.divide(f, norms, out=np.zeros_like(f), where=norms > 0)
