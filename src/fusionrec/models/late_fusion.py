"""Late fusion of several trained recommenders: per-user z-normalised scores, weights fitted on validation."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Features
from fusionrec.errors import ConfigError
from fusionrec.models.base import Recommender, Validator
from fusionrec.models.fusion.scoring import fit_weights, zscore_rows
from fusionrec.params import metric_list

log = logging.getLogger("fusionrec")

DEFAULT_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0)


class LateFusion(Recommender):
    """Weighted sum of several models' per-user z-normalised scores, the weights fitted on validation.

    Each sub-model (any registered name: a collaborative model such as ``als`` beside a content model such as
    ``vbpr``) is trained on the same train matrix and features. With ``valid`` given and ``weights=None``,
    a coordinate search over ``grid`` picks the weights that maximise ``valid_metric`` on the validation items
    (train items masked); scores are z-normalised per user first so that scorers on different scales mix.

    Parameters
    ----------
    models
        Sub-model names, a list or a comma-separated string (``--param models=als,vbpr``).
    params
        Hyperparameters per sub-model: a mapping ``{name: {param: value}}`` or a list aligned with ``models``
        (``--param 'params={"als": {"factors": 32}}'``). A sub-model's ``random_state`` defaults to ours.
    weights
        Fixed weights, one per sub-model; ``None`` fits them on validation (equal weights without it).
    valid_metric
        Validation metric the weights maximise; several (a list, or ``"recall@20,ndcg@20"``) are averaged.
    grid
        Values each weight may take during the coordinate search (``None``: 0 to 3 in 13 steps).
    random_state
        Seed passed to sub-models that take one.

    References
    ----------
    Burke, "Hybrid Recommender Systems: Survey and Experiments", UMUAI 2002 (weighted hybrids).
    """

    name = "late-fusion"
    # Which models to fuse (sub-models at their defaults; `fit --model auto` fuses tuned ones instead).
    search_space = {
        "models": ("categorical", ["als,ease", "als,ease,itemknn", "als,ease,neural", "als,ease,freedom"]),
    }
    uses_features = True

    def __init__(
        self,
        *,
        models: Sequence[str] | str = "als,vbpr",
        params: Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Any]] | None = None,
        weights: Sequence[float] | None = None,
        valid_metric: str | Sequence[str] = "recall@20",
        grid: Sequence[float] | None = None,
        random_state: int = 0,
    ) -> None:
        self.models = models
        self.params = params
        self.weights = weights
        self.valid_metric = valid_metric
        self.grid = grid
        self.random_state = random_state

    # ------------------------------------------------------------------ configuration
    def _model_names(self) -> list[str]:
        names = [self.models] if isinstance(self.models, str) else list(self.models)
        names = [n.strip() for part in names for n in str(part).split(",") if n.strip()]
        if not names:
            raise ConfigError("late-fusion needs at least one sub-model: --param models=als,vbpr")
        if "late-fusion" in names:
            raise ConfigError("late-fusion cannot contain itself")
        return names

    def _model_params(self, names: list[str]) -> list[dict[str, Any]]:
        p = self.params
        if p is None:
            return [{} for _ in names]
        if isinstance(p, Mapping):
            unknown = sorted(set(p) - set(names))
            if unknown:
                raise ConfigError(f"late-fusion params name model(s) {unknown} not in models={names}")
            return [dict(p.get(n) or {}) for n in names]
        p = list(p)
        if len(p) != len(names):
            raise ConfigError(f"late-fusion params list has {len(p)} entries for {len(names)} models")
        return [dict(x or {}) for x in p]

    def _check_features(self, features: Features | None) -> None:
        from fusionrec.models.registry import get_model_class

        for n in self._model_names():
            cls = get_model_class(n)
            req = cls.requires_features
            if req and (features is None or not len(features)):
                raise ConfigError(f"late-fusion sub-model {n!r} needs item features but the data has none")

    # ------------------------------------------------------------------ fitting
    def _fit(
        self, user_items: sp.csr_matrix, features: Features | None, *, valid: sp.csr_matrix | None
    ) -> None:
        from fusionrec.models.registry import create_model

        names = self._model_names()
        sub_params = self._model_params(names)
        if self.weights is None and valid is not None and valid.nnz:
            self._metrics()  # a typo fails before any sub-model trains
        subs: list[Recommender] = []
        for j, (n, p) in enumerate(zip(names, sub_params, strict=True)):
            model = create_model(n, p)
            if "random_state" in model.param_defaults() and "random_state" not in p:
                model.random_state = int(self.random_state) + j
            model.show_progress = self.show_progress
            log.info("late-fusion: fitting %s %s", n, p)
            model.fit(user_items, features, valid=valid, validate=getattr(self, "_validator", None))
            subs.append(model)
        self._subs = subs
        self.sub_names_ = names
        self.sub_params_ = [m.get_params() for m in subs]
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=np.float64)
            if w.shape != (len(names),) or not w.any():
                raise ConfigError(f"late-fusion weights need one value per model {names}, not all zero")
            self.weights_ = w.astype(np.float32)
            self.valid_score_ = None
            return
        if valid is None or valid.nnz == 0:
            log.warning("late-fusion: no validation data; combining %s with equal weights", names)
            self.weights_ = np.ones(len(names), np.float32)
            self.valid_score_ = None
            return
        w, best = self._fit_weights(user_items, valid)
        self.weights_ = w.astype(np.float32)
        self.valid_score_ = float(best)
        log.info(
            "late-fusion weights %s (valid %s=%.4f)",
            dict(zip(names, w.round(3).tolist(), strict=True)),  # plain floats, not np.float64 reprs
            self.valid_metric,
            best,
        )

    def _metrics(self) -> list[str]:
        names = metric_list(self.valid_metric)
        self._validator_for("fitting the fusion weights").check(names)  # fail early on a typo
        if not names:
            raise ConfigError("late-fusion needs a validation metric, e.g. valid_metric=recall@20")
        return names

    def _fit_weights(self, train: sp.csr_matrix, valid: sp.csr_matrix) -> tuple[np.ndarray, float]:
        metrics = self._metrics()
        users = np.flatnonzero(np.diff(valid.indptr) > 0)
        blocks = [zscore_rows(m.score(users)) for m in self._subs]
        validate = self._validator_for("fitting the fusion weights")
        return validation_weights(
            validate,
            blocks,
            users,
            train,
            valid,
            metrics,
            self.grid,
            labels=self.sub_names_,
            what="late-fusion",
        )

    # ------------------------------------------------------------------ scoring
    def score(self, users: np.ndarray) -> np.ndarray:
        self.check_fitted()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        out = np.zeros((len(users), self.n_items_), np.float32)
        for w, m in zip(self.weights_, self._subs, strict=True):
            if w != 0:
                out += w * zscore_rows(m.score(users))
        return out

    explanation_kind = "model-share"

    def score_parts(self, users: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
        """Weighted, z-normalised score of each sub-model for ``items`` (they sum to ``score``)."""
        self.check_fitted()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        items = np.asarray(items, dtype=np.int64).reshape(len(users), -1)
        return {
            self._label(j): np.take_along_axis(w * zscore_rows(m.score(users)), items, axis=1)
            for j, (w, m) in enumerate(zip(self.weights_, self._subs, strict=True))
        }

    def fold_in_user(self, item_idx: np.ndarray) -> np.ndarray:
        self.check_fitted()
        out = np.zeros(self.n_items_, np.float32)
        for w, m in zip(self.weights_, self._subs, strict=True):
            if w != 0:
                out += w * zscore_rows(m.fold_in_user(item_idx)[None, :])[0]
        return out

    def forget_user_rows(self, idx: int) -> None:
        """Each sub-model forgets the user in its own way (e.g. kNN histories), then the fusion does."""
        self.check_fitted()
        for m in self._subs:
            m.forget_user_rows(idx)
        self.n_users_ -= 1

    @property
    def sub_models(self) -> list[Recommender]:
        """The fitted sub-models, in the order of ``models``."""
        self.check_fitted()
        return list(self._subs)

    def _label(self, j: int) -> str:
        names = self.sub_names_
        return names[j] if names.count(names[j]) == 1 else f"{names[j]}#{j}"

    # ------------------------------------------------------------------ persistence
    # A sub-model's array ``<key>_`` is stored as ``<key>__m{j}_``: the name keeps its leading ``user_`` (the
    # project-wide mark of user-aligned arrays) and its trailing ``_``.
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Own arrays plus every sub-model's, tagged: ``user_factors_`` → ``user_factors__m0_``."""
        out = super().state_arrays()
        for j, m in enumerate(self._subs):
            out.update({f"{k[:-1]}__m{j}_": v for k, v in m.state_arrays().items()})
        return out

    def state_meta(self) -> dict[str, Any]:
        meta = super().state_meta()
        meta["sub_meta_"] = [m.state_meta() for m in self._subs]
        return meta

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Recommender:
        from fusionrec.models.registry import create_model

        tagged = re.compile(r"^(?P<key>.+)__m(?P<j>\d+)_$")
        own: dict[str, np.ndarray] = {}
        per_sub: dict[int, dict[str, np.ndarray]] = {}
        for k, v in arrays.items():
            hit = tagged.match(k)
            if hit:
                per_sub.setdefault(int(hit["j"]), {})[hit["key"] + "_"] = v
            else:
                own[k] = v
        super().load_state(own, {k: v for k, v in meta.items() if k != "sub_meta_"})
        subs = []
        for j, (n, p) in enumerate(zip(self.sub_names_, self.sub_params_, strict=True)):
            m = create_model(n, p)
            m.load_state(per_sub.get(j, {}), meta["sub_meta_"][j])
            subs.append(m)
        self._subs = subs
        return self


def validation_weights(
    validate: Validator,
    blocks: Sequence[np.ndarray],
    users: np.ndarray,
    train: sp.csr_matrix,
    valid: sp.csr_matrix,
    metrics: Sequence[str],
    grid: Sequence[float] | None = None,
    *,
    labels: Sequence[str] | None = None,
    what: str = "fusion",
) -> tuple[np.ndarray, float]:
    """Weights of z-normalised score ``blocks`` (rows = ``users``) that maximise the mean of ``metrics`` on
    ``valid`` (train items masked, scored by the ``validate`` callback), by :func:`fit_weights`' coordinate
    search over ``grid``."""
    row = np.full(valid.shape[0], -1, np.int64)
    row[users] = np.arange(len(users))

    def objective(fused: np.ndarray) -> float:
        res = validate(lambda u: fused[row[u]], valid, train, metrics, batch_size=len(users))
        return float(np.mean([res[m] for m in metrics]))

    if labels is not None:
        solo = [objective(b) for b in blocks]
        log.info(
            "%s: valid %s per part %s",
            what,
            ",".join(metrics),
            {n: round(x, 4) for n, x in zip(labels, solo, strict=True)},
        )
    return fit_weights(blocks, objective, grid=tuple(grid or DEFAULT_GRID), init=np.ones(len(blocks)))
