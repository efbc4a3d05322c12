"""Cold items: a vector for an item known only by its content.

Models that declare ``supports_cold_items`` place such an item themselves (``item_vectors_from_features``).
Every other inner-product model (ALS, BPR, LightGCN, ...) gets a generic learnt mapping,
:class:`ContentMapper`: ridge regression, in closed form, from the item's standardised content features
(all modalities, concatenated) to the model's item vectors, fitted on the items that have training
interactions. An item with content only then gets a vector without retraining the model.

The ridge penalty is chosen by generalised cross-validation on the fitting items, with the residuals measured
in the metric of the users' second moment (an error along a direction users care about costs more), so
nothing beyond the training data is needed to fit it.

References
----------
Golub, Heath, Wahba. Generalized Cross-Validation as a Method for Choosing a Good Ridge Parameter.
Technometrics 1979. Gantner, Drumond, Freudenthaler, Rendle, Schmidt-Thieme. Learning Attribute-to-Feature
Mappings for Cold-Start Recommendations. ICDM 2010.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fusionrec.errors import ConfigError, DataError, NotFittedError, UnsupportedError
from fusionrec.models.base import Recommender

log = logging.getLogger("fusionrec")

#: ridge penalties tried by GCV, relative to the mean eigenvalue of the feature Gram matrix
DEFAULT_GRID = tuple(float(x) for x in np.logspace(-3, 2, 16))
#: the most a calibration stretches content-placed scores (a map that explains little is not blown up)
MAX_EXPANSION = 10.0
#: catalogue items a new item of a model without item vectors borrows its scores from
CONTENT_NEIGHBOURS = 20


class ContentMapper:
    """Ridge map from concatenated, standardised item features to item vectors.

    Each modality is z-scored per dimension (on the fitting items) and scaled by ``1/sqrt(d)``, so every
    modality carries the same total variance whatever its width; the intercept is the mean target vector.

    Parameters
    ----------
    reg : float or None
        Ridge penalty relative to the mean eigenvalue of the Gram matrix; None picks it by GCV from ``grid``.
    grid : sequence of float
        Relative penalties GCV tries.
    modalities : sequence of str or None
        Modalities to use (default: every modality given to ``fit``).
    """

    def __init__(
        self,
        *,
        reg: float | None = None,
        grid: Sequence[float] = DEFAULT_GRID,
        modalities: Sequence[str] | None = None,
    ) -> None:
        self.reg = reg
        self.grid = tuple(grid)
        self.modalities = None if modalities is None else list(modalities)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        features: Mapping[str, np.ndarray],
        targets: np.ndarray,
        rows: np.ndarray | None = None,
        *,
        metric: np.ndarray | None = None,
    ) -> ContentMapper:
        """Learn the map from ``rows`` of ``features`` (``{modality: (n_items, d)}``) to ``targets`` (n, k).

        ``metric`` (k, k), e.g. the users' second moment ``U.T @ U / n``, weighs residuals when GCV picks the
        penalty (the ridge solution itself does not depend on it).
        """
        names = list(self.modalities) if self.modalities is not None else list(features)
        if not names:
            raise DataError("the content mapping needs at least one item feature modality; there is none")
        missing = [m for m in names if m not in features]
        if missing:
            raise DataError(f"modalities {missing} are not among the features ({sorted(features)})")
        targets = np.asarray(targets, dtype=np.float64)
        rows = np.arange(targets.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
        if len(rows) < 2:
            raise DataError("the content mapping needs at least two items with training interactions")
        means, scales, blocks = [], [], []
        for m in names:
            x = np.asarray(features[m], dtype=np.float64)[rows]
            mu = x.mean(axis=0)
            sd = x.std(axis=0)
            # constant columns carry nothing; a unit scale keeps them at zero instead of dividing by zero
            sd = np.where(sd > 1e-8, sd, 1.0) * np.sqrt(x.shape[1])
            means.append(mu)
            scales.append(sd)
            blocks.append((x - mu) / sd)
        X = np.hstack(blocks)
        Y = targets[rows]
        bias = Y.mean(axis=0)
        Yc = Y - bias
        n, d = X.shape
        M = np.eye(Y.shape[1]) if metric is None else np.asarray(metric, dtype=np.float64)
        # Eigen-decompose the smaller Gram matrix once; every penalty is then a cheap rescaling.
        if d <= n:
            s, V = np.linalg.eigh(X.T @ X)
        else:
            s, Ux = np.linalg.eigh(X @ X.T)
        s = np.clip(s, 0.0, None)
        keep = s > s.max() * 1e-10
        s = s[keep]
        if d <= n:
            V = V[:, keep]
            XV = X @ V
            C = (XV / np.sqrt(s)).T @ Yc  # projections of the targets on the left singular vectors
        else:
            Ux = Ux[:, keep]
            C = Ux.T @ Yc
        scale = float(s.sum()) / max(1, min(n, d))
        total = float(np.einsum("ij,jk,ik->", Yc, M, Yc))
        proj = np.einsum("ij,jk,ik->i", C, M, C)  # per-component explained error
        gcv: dict[float, float] = {}
        if self.reg is not None:
            chosen = float(self.reg)
        else:
            for rel in self.grid:
                h = s / (s + rel * scale)
                err = total - float(((2 * h - h * h) * proj).sum())
                dof = float(h.sum())
                gcv[rel] = (err / n) / max((1.0 - dof / n) ** 2, 1e-12)
            chosen = min(gcv, key=gcv.__getitem__)
        lam = chosen * scale
        if d <= n:
            W = V @ ((np.sqrt(s) / (s + lam))[:, None] * C)
        else:
            W = X.T @ (Ux @ (C / (s + lam)[:, None]))
        self.modalities_ = names
        self.dims_ = [int(b.shape[1]) for b in blocks]
        self.mean_ = np.concatenate(means).astype(np.float32)
        self.scale_ = np.concatenate(scales).astype(np.float32)
        self.weights_ = W.astype(np.float32)
        self.bias_ = bias.astype(np.float32)
        self.reg_ = chosen
        h = s / (s + lam)
        self.fit_r2_ = 1.0 - (total - float(((2 * h - h * h) * proj).sum())) / max(total, 1e-12)
        self.n_fit_ = int(n)
        # Leave-one-out predictions (closed form for ridge: residual / (1 - leverage)) stand for items the
        # map never saw; their spread, against the targets' spread, is how much the map shrinks a new item.
        leverage = (XV**2 / (s + lam)).sum(axis=1) if d <= n else (Ux**2 * h).sum(axis=1)
        fitted = X @ W
        loo = Yc - (Yc - fitted) / np.maximum(1.0 - leverage, 1e-6)[:, None]
        self.expansion_ = spread_ratio(total, float(np.einsum("ij,jk,ik->", loo, M, loo)))
        log.info(
            "content mapping: %d items, %d feature dims → %d; reg %.3g (GCV), weighted R² %.3f, "
            "calibration expansion %.2f",
            n,
            d,
            W.shape[1],
            chosen,
            self.fit_r2_,
            self.expansion_,
        )
        return self

    # ------------------------------------------------------------------ use
    def transform(self, rows: Mapping[str, np.ndarray]) -> np.ndarray:
        """Vectors for items given by content, ``{modality: (n, d)}`` → ``(n, k)``.

        A modality missing from ``rows`` (no image, no text) contributes its mean, i.e. nothing.
        """
        self._check()
        given = {}
        for m, d in zip(self.modalities_, self.dims_, strict=True):
            if m in rows:
                x = np.atleast_2d(np.asarray(rows[m], dtype=np.float32))
                if x.ndim != 2 or x.shape[1] != d:
                    raise DataError(f"modality {m!r} has shape {x.shape}; the mapping was fitted on {d} dims")
                given[m] = x
        if not given:
            raise DataError(f"no usable content: the mapping uses {self.modalities_}, got {sorted(rows)}")
        n_rows = {x.shape[0] for x in given.values()}
        if len(n_rows) != 1:
            raise DataError("every modality must give the same number of items")
        out = np.tile(self.bias_, (n_rows.pop(), 1)).astype(np.float32)
        start = 0
        for m, d in zip(self.modalities_, self.dims_, strict=True):
            sl = slice(start, start + d)
            start += d
            if m in given:
                out += ((given[m] - self.mean_[sl]) / self.scale_[sl]) @ self.weights_[sl]
        return out

    def calibrated(self, vectors: np.ndarray) -> np.ndarray:
        """Mapped vectors with their deviation from the mean item stretched by ``expansion_``.

        Ridge shrinks a new item towards the mean item, so its scores sit in a narrow band around each
        user's average and rarely reach a list. Stretched, the deviations of items the map never saw have
        the spread (in the users' metric) of the learnt item vectors: a new item's scores are then on the
        warm items' scale, and an item whose content looks like a user's favourites scores like them.
        """
        self._check()
        v = np.asarray(vectors, dtype=np.float32)
        return (self.bias_ + np.float32(self.expansion_) * (v - self.bias_)).astype(np.float32)

    # ------------------------------------------------------------------ persistence
    def to_arrays(self, prefix: str = "cold/") -> tuple[dict[str, np.ndarray], dict[str, object]]:
        """Arrays and JSON metadata that :meth:`from_arrays` restores (what artifacts store)."""
        self._check()
        arrays = {f"{prefix}{k}": getattr(self, f"{k}_") for k in ("mean", "scale", "weights", "bias")}
        meta = {
            "modalities": self.modalities_,
            "dims": self.dims_,
            "reg": self.reg_,
            "fit_r2": self.fit_r2_,
            "n_fit": self.n_fit_,
            "expansion": self.expansion_,
        }
        return arrays, meta

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, object], prefix: str = "cold/"
    ) -> ContentMapper:
        self = cls(reg=float(meta["reg"]))  # type: ignore[arg-type]
        for k in ("mean", "scale", "weights", "bias"):
            setattr(self, f"{k}_", np.asarray(arrays[f"{prefix}{k}"], dtype=np.float32))
        self.modalities_ = [str(m) for m in meta["modalities"]]  # type: ignore[attr-defined]
        self.dims_ = [int(d) for d in meta["dims"]]  # type: ignore[attr-defined]
        self.reg_ = float(meta["reg"])  # type: ignore[arg-type]
        self.fit_r2_ = float(meta.get("fit_r2", float("nan")))  # type: ignore[arg-type]
        self.n_fit_ = int(meta.get("n_fit", 0))  # type: ignore[call-overload]
        # mappings stored before the calibration existed place items uncalibrated, as they did
        self.expansion_ = float(meta.get("expansion", 1.0))  # type: ignore[arg-type]
        return self

    def _check(self) -> None:
        if not hasattr(self, "weights_"):
            raise NotFittedError("the content mapping is not fitted; call fit() first")


# ---------------------------------------------------------------------------------------------- helpers


def fit_content_mapper(
    model: Recommender,
    features: Mapping[str, np.ndarray],
    train: sp.spmatrix,
    *,
    reg: float | None = None,
    modalities: Sequence[str] | None = None,
) -> ContentMapper:
    """Fit a :class:`ContentMapper` from ``features`` to ``model.item_vectors()`` on items seen in ``train``.

    Items without a training interaction (cold items, items added later) are left out: their vectors were
    never learnt from data.
    """
    if not model.is_inner_product:
        raise ConfigError(
            f"model {model.name!r} does not score by inner products, so it has no item vectors to map "
            "content to; use an inner-product model (als, bpr-torch, lightgcn, ...) or one that supports cold items"
        )
    V = np.asarray(model.item_vectors())
    n_model = V.shape[0]
    degree = np.diff(sp.csc_matrix(train)[:, :n_model].indptr)
    rows = np.flatnonzero(degree > 0)
    U = np.asarray(model.user_vectors(), dtype=np.float64)
    metric = U.T @ U / max(1, U.shape[0])
    feats = {m: np.asarray(features[m])[:n_model] for m in (modalities or list(features))}
    return ContentMapper(reg=reg, modalities=modalities).fit(feats, V, rows, metric=metric)


def cold_item_vectors(
    model: Recommender,
    rows: Mapping[str, np.ndarray],
    mapper: ContentMapper | None = None,
    *,
    calibrated: bool = False,
) -> np.ndarray:
    """Item vectors for items known only by ``rows`` = ``{modality: (n, d)}`` content.

    Uses the model's own ``item_vectors_from_features`` when it declares ``supports_cold_items``, else the
    fitted ``mapper`` (see :func:`fit_content_mapper`); ``calibrated`` stretches the mapper's vectors onto
    the warm items' scale (:meth:`ContentMapper.calibrated`; what ``POST /items`` stores).
    """
    if model.supports_cold_items:
        return np.asarray(model.item_vectors_from_features(dict(rows)), dtype=np.float32)
    if mapper is None:
        raise ConfigError(
            f"model {model.name!r} cannot place content-only items itself; fit a ContentMapper first "
            "(fit_content_mapper(model, features, train))"
        )
    vectors = mapper.transform(rows)
    return mapper.calibrated(vectors) if calibrated else vectors


@dataclass
class PlacedItems:
    """New items placed by content: vectors (inner-product models) or content neighbours and weights."""

    vectors: np.ndarray | None = None
    neighbours: np.ndarray | None = None
    weights: np.ndarray | None = None


def place_new_items(
    model: Recommender,
    rows: Mapping[str, np.ndarray],
    *,
    mapper: ContentMapper | None = None,
    unit: Mapping[str, np.ndarray] | None = None,
    present: Mapping[str, np.ndarray] | None = None,
    eligible: np.ndarray | None = None,
    calibrated: bool = True,
) -> PlacedItems:
    """Place items known only by ``rows`` = ``{modality: (n, d)}`` the way ``POST /items`` does.

    Inner-product models get vectors (:func:`cold_item_vectors`; ``mapper`` for models without cold-item
    support), calibrated onto the warm items' scale unless ``calibrated`` is False; other models get their
    content neighbours among the ``eligible`` items (``unit``/``present``: the items' unit-norm features and
    masks), whose scores :func:`neighbour_scores` lends them.
    """
    if model.is_inner_product:
        return PlacedItems(vectors=cold_item_vectors(model, rows, mapper, calibrated=calibrated))
    if unit is None or present is None or eligible is None:
        raise ConfigError(
            f"model {model.name!r} has no item vectors: placing new items needs the catalogue's content "
            "(unit, present) and which items have interactions (eligible)"
        )
    nb, wt = content_neighbours(rows, unit, present, eligible)
    return PlacedItems(neighbours=nb, weights=wt)


def spread_ratio(target_spread: float, predicted_spread: float) -> float:
    """``sqrt(target / predicted)`` spread, kept in [1, MAX_EXPANSION]: content never widens scores beyond
    the warm items' spread on its own, and a map that predicts nothing is not blown up into noise."""
    if not predicted_spread > 0:
        return 1.0
    return float(np.clip(np.sqrt(target_spread / predicted_spread), 1.0, MAX_EXPANSION))


# ------------------------------------------------------------------------------------- content neighbours


def content_neighbours(
    rows: Mapping[str, np.ndarray],
    unit: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray],
    eligible: np.ndarray,
    k: int = CONTENT_NEIGHBOURS,
    *,
    leave_out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` ``eligible`` items nearest to each new content row, and their weights: ``(n, k)`` each.

    For models without item vectors a new item borrows its scores from these neighbours
    (:func:`neighbour_scores`). Nearness is the mean cosine over the modalities both sides have
    (``unit``: the items' unit-norm rows, ``present``: which items have the modality); weights are the
    positive similarities, normalised; rows with fewer than ``k`` neighbours are padded with weight 0.
    ``leave_out[j]``: an item row ``j`` may not take as its neighbour (a warm item placed as if new).
    """
    from fusionrec.data.graph import fused_cosine
    from fusionrec.ranking import top_k

    queries = {m: np.atleast_2d(np.asarray(v, np.float32)) for m, v in rows.items()}
    sims = fused_cosine(queries, dict(unit), dict(present))
    sims[:, ~np.asarray(eligible, bool)] = -np.inf  # items the model never saw interactions of lend no signal
    if leave_out is not None:
        sims[np.arange(len(sims)), np.asarray(leave_out, np.int64)] = -np.inf
    nb, top = top_k(sims, k)
    found = nb >= 0
    if not found[:, 0].all():
        raise UnsupportedError("no catalogue item with interactions shares content with the new item")
    w = np.where(found, np.maximum(top, 0.0), 0.0)
    total = w.sum(axis=1, keepdims=True)
    uniform = found / found.sum(axis=1, keepdims=True)
    w = np.where(total > 0, w / np.maximum(total, 1e-12), uniform)
    nb = np.where(found, nb, nb[:, :1])  # padding points at the nearest item, with weight 0
    return nb.astype(np.int64), w.astype(np.float32)


def neighbour_scores(
    base: np.ndarray,
    neighbours: np.ndarray,
    weights: np.ndarray,
    *,
    expansion: float = 1.0,
    eligible: np.ndarray | None = None,
) -> np.ndarray:
    """Scores of content-placed items from the model's scores ``base`` (``(n,)`` or ``(b, n)``).

    Each new item takes the weighted mean of its neighbours' scores; with ``expansion`` > 1 its deviation
    from the user's mean score over the ``eligible`` items is stretched by that factor (the mean of 20
    neighbours is far less extreme than any one item: stretched, it is on the warm items' scale).
    """
    base = np.asarray(base, np.float32)
    added = (base[..., neighbours] * weights).sum(axis=-1)
    if expansion != 1.0:
        pool = base if eligible is None else base[..., np.asarray(eligible, bool)]
        finite = np.where(np.isfinite(pool), pool, np.nan)
        with np.errstate(invalid="ignore"):
            center = np.nanmean(finite, axis=-1, keepdims=True)
        center = np.where(np.isfinite(center), center, 0.0)
        added = center + np.float32(expansion) * (added - center)
    return added.astype(np.float32)


def fit_neighbour_expansion(
    model: Recommender,
    unit: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray],
    eligible: np.ndarray,
    *,
    max_users: int = 1000,
    max_items: int = 2000,
    seed: int = 0,
) -> float:
    """The stretch that puts neighbour-borrowed scores on the warm items' scale, fitted on warm items.

    Each sampled warm item is placed from its content as if it were new (its own row left out of its
    neighbours); the ratio of the spread of its true scores to the spread of the borrowed ones, around each
    sampled user's mean score, is the expansion (see :func:`spread_ratio`).
    """
    eligible = np.asarray(eligible, bool)
    rng = np.random.default_rng(seed)
    n_users = int(model.n_users_)
    users = np.sort(rng.choice(n_users, size=min(n_users, max_users), replace=False))
    # warm items with every modality the placement compares by (a new item sends what it has)
    mods = list(unit)
    pool = np.flatnonzero(eligible & np.logical_and.reduce([np.asarray(present[m], bool) for m in mods]))
    if len(pool) < 2:
        return 1.0
    items = np.sort(rng.choice(pool, size=min(len(pool), max_items), replace=False))
    n = len(eligible)
    nbrs_all, wts_all = [], []
    for start in range(0, len(items), 512):
        block = items[start : start + 512]
        nb, wt = content_neighbours(
            {m: np.asarray(unit[m])[block] for m in mods}, unit, present, eligible, leave_out=block
        )
        nbrs_all.append(nb)
        wts_all.append(wt)
    nbrs, wts = np.vstack(nbrs_all), np.vstack(wts_all)
    S = np.asarray(model.score(users), np.float32)[:, :n]
    center = S[:, eligible].mean(axis=1, keepdims=True)
    true_dev = S[:, items] - center
    borrowed = -center
    for j in range(nbrs.shape[1]):  # one neighbour rank at a time: (users, items) blocks, not a 3-D one
        borrowed = borrowed + S[:, nbrs[:, j]] * wts[:, j]
    return spread_ratio(float((true_dev**2).sum()), float((borrowed**2).sum()))


def calibrate_cold_scores(cold: np.ndarray, warm: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Place each user's cold-item scores on the same user's warm score distribution, by quantile.

    Content-derived scores live on their own scale: raw, they bury new items below every warm item (a
    ridge-mapped vector is shrunk towards the mean item) or flood the lists. Here the cold item at per-user
    quantile ``q`` among the cold items gets the user's warm score at quantile ``q ** gamma``: with
    ``gamma = 1`` new items enter each list in proportion to their share of the catalogue; larger ``gamma``
    holds them back, smaller pushes them forward (choose it on validation).

    Parameters
    ----------
    cold : (n_users, n_cold) scores of the cold items (any scale; higher is better)
    warm : (n_users, n_warm) scores of the items they compete with; ``-inf`` entries (masked) are ignored
    gamma : float > 0

    Returns
    -------
    (n_users, n_cold) float32 scores comparable with ``warm``; rows without a finite warm score keep ``cold``.
    """
    if not gamma > 0:
        raise ConfigError(f"gamma must be positive; got {gamma!r}")
    cold = np.asarray(cold, dtype=np.float32)
    warm = np.asarray(warm, dtype=np.float32)
    n, c = cold.shape
    if warm.shape[0] != n:
        raise ConfigError(f"cold and warm scores need the same users; got {cold.shape} and {warm.shape}")
    if c == 0 or warm.shape[1] == 0:
        return cold.copy()
    rank = np.argsort(np.argsort(cold, axis=1, kind="stable"), axis=1, kind="stable")
    q = ((rank + 0.5) / c) ** float(gamma)
    ordered = np.sort(warm, axis=1)  # masked (-inf) entries first
    finite = np.isfinite(ordered).sum(axis=1)
    first = warm.shape[1] - finite
    pos = first[:, None] + q * np.maximum(finite - 1, 0)[:, None]
    lo = np.minimum(np.floor(pos).astype(np.int64), warm.shape[1] - 1)
    hi = np.minimum(lo + 1, warm.shape[1] - 1)
    frac = (pos - lo).astype(np.float32)
    a = np.take_along_axis(ordered, lo, axis=1)
    b = np.take_along_axis(ordered, hi, axis=1)
    b = np.where(np.isfinite(b), b, a)
    with np.errstate(invalid="ignore"):  # rows without a finite warm score give nan here, replaced below
        out = a + frac * (b - a)
    return np.where((finite > 0)[:, None], out, cold).astype(np.float32)
