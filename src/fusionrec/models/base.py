"""The Recommender contract every model follows.

Models live in index space: ``fit`` takes a CSR users × items matrix (float32) and optional item ``Features``;
``score`` returns a dense ``(n_users, n_items)`` block; ``recommend`` (written once, here) masks seen items and
takes the top k. Learned state lives in attributes ending in ``_``; every array needed to score is a numpy
array so artifacts are plain data and serving needs no torch.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Features
from fusionrec.errors import ConfigError, DataError, NotFittedError, UnknownUserError
from fusionrec.params import convert_cli, type_errors
from fusionrec.ranking import mask_rows, ridge_fold_in, top_k

log = logging.getLogger("fusionrec")

ScoreFn = Callable[[np.ndarray], np.ndarray]

# Parameter names of earlier versions → the one name every model now uses for that idea.
RENAMED: dict[str, str] = {
    "knn_k": "neighbors",
    "mm_layers": "item_layers",
    "lambda_coeff": "fixed_graph_weight",
    "early_stop_metric": "valid_metric",
    "metric": "valid_metric",
    "feature_dim": "pca_dim",
    "content_factors": "content_dim",
    "proj_dim": "content_dim",
    "hidden": "attention_dim",
}


class Validator(Protocol):
    """Scores a model on held-out interactions for early stopping; the evaluator implements it."""

    def check(self, metrics: Sequence[str]) -> None:
        """Raise ``ConfigError`` for metric names the evaluator does not know (before any training)."""

    def __call__(
        self,
        score: ScoreFn,
        target: sp.csr_matrix,
        exclude: sp.csr_matrix | None,
        metrics: Sequence[str],
        *,
        batch_size: int = 1024,
    ) -> dict[str, float]:
        """Mean ``metrics`` of the lists ``score`` ranks for the users of ``target`` (``exclude`` masked)."""
        ...


@dataclass(frozen=True)
class WarmStart:
    """An earlier fit to start from: its learned state and, per user / item row of the new training matrix,
    the row it had in that fit (-1: new, it starts as a fresh fit would).

    ``arrays``/``meta`` are the earlier model's ``state_arrays()``/``state_meta()`` (its persistence format,
    so an artifact on disk is enough); the model itself decides which of them it can start from.
    """

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    user_rows: np.ndarray
    item_rows: np.ndarray

    @classmethod
    def from_model(cls, model: Recommender, user_rows: np.ndarray, item_rows: np.ndarray) -> WarmStart:
        return cls(
            arrays={k: np.asarray(v) for k, v in model.state_arrays().items()},
            meta=dict(model.state_meta()),
            user_rows=np.asarray(user_rows, dtype=np.int64),
            item_rows=np.asarray(item_rows, dtype=np.int64),
        )

    def take(self, old: np.ndarray, fresh: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``fresh`` with each row whose earlier row exists in ``old`` replaced by that row."""
        out = np.array(fresh, copy=True)
        known = (rows >= 0) & (rows < old.shape[0])
        out[known] = old[rows[known]]
        return out

    def known(self) -> tuple[int, int]:
        """How many users and items of the new matrix the earlier fit knew."""
        return int((self.user_rows >= 0).sum()), int((self.item_rows >= 0).sum())


class Recommender:
    """Base class. Subclasses set ``name``, accept keyword-only hyperparameters and implement ``_fit``/``score``.

    Capabilities are declared, not guessed:

    - ``requires_features``: modalities the model cannot do without (``("*",)`` = at least one, any name);
    - ``uses_features``: whether item features change the model at all;
    - ``supports_cold_items``: whether ``item_vectors_from_features`` can place an item with content only;
    - ``is_inner_product``: ``score == user_vectors() @ item_vectors().T`` (serving may use an ANN index);
    - ``task``: ``"ranking"`` (scores order items; fitted on 1.0 per interaction) or ``"rating"`` (scores
      are predicted ratings; fitted on a matrix of rating values and evaluated by RMSE / MAE);
    - ``supports_warm_start``: whether ``fit(warm_start=...)`` starts from an earlier fit's state.
    """

    name: ClassVar[str] = "base"
    requires_features: ClassVar[tuple[str, ...]] = ()
    uses_features: ClassVar[bool] = False
    supports_cold_items: ClassVar[bool] = False
    is_inner_product: ClassVar[bool] = False
    is_torch: ClassVar[bool] = False
    #: what ``score_parts`` returns (see there)
    explanation_kind: ClassVar[str] = "score-decomposition"
    task: ClassVar[str] = "ranking"
    supports_warm_start: ClassVar[bool] = False
    # Progress bars during fit; not a hyperparameter (the CLI's --quiet turns it off per instance).
    show_progress: bool = True
    #: the ``warm_start`` given to the running ``fit`` (read by ``_fit``), else None
    _warm: WarmStart | None = None
    #: Hyper-parameters tuning may search: ``{param: ("int"|"float", low, high[, "log"])}`` or
    #: ``{param: ("categorical", [choices])}``; empty = nothing worth tuning. Checked against the constructor.
    search_space: ClassVar[dict[str, tuple]] = {}

    # ------------------------------------------------------------------ parameters
    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        sig = inspect.signature(cls.__init__)
        return {
            k: p.default
            for k, p in sig.parameters.items()
            if k != "self" and p.kind is inspect.Parameter.KEYWORD_ONLY
        }

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.param_defaults()}

    @classmethod
    def from_params(cls, params: dict[str, Any], *, upgrade: bool = False) -> Recommender:
        """An instance from a parameter dict; names from earlier versions are refused with the new name
        (``upgrade=True``, for stored artifacts, renames them instead)."""
        valid = cls.param_defaults()
        old = {k: RENAMED[k] for k in params if k in RENAMED and k not in valid and RENAMED[k] in valid}
        if old and upgrade:
            params = {old.get(k, k): v for k, v in params.items()}
        elif old:
            raise ConfigError(
                f"model {cls.name!r}: "
                + "; ".join(f"parameter {k!r} is now called {v!r}" for k, v in old.items())
                + " (one vocabulary across models)"
            )
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ConfigError(
                f"model {cls.name!r} has no parameter(s) {unknown}; valid: "
                + ", ".join(f"{k}={v!r}" for k, v in valid.items())
            )
        sig = inspect.signature(cls.__init__)
        try:  # values typed on the command line become their parameter's type
            params = convert_cli(params, sig, f"model {cls.name!r}")
        except ValueError as e:
            raise ConfigError(f"{e} (--param KEY=VALUE)") from None
        wrong = type_errors(params, sig)
        if wrong:
            raise ConfigError(f"model {cls.name!r}: parameter(s) of the wrong type: {'; '.join(wrong)}")
        return cls(**params)

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        user_items: sp.csr_matrix,
        features: Features | None = None,
        *,
        valid: sp.csr_matrix | None = None,
        validate: Validator | None = None,
        warm_start: WarmStart | None = None,
    ) -> Recommender:
        """Learn from ``user_items`` (binary CSR, users × items).

        ``valid`` with ``validate`` (the evaluator as a callback: ``fusionrec.evaluation.VALIDATOR``) enables
        early stopping and validation-weighted fusion where a model uses them; models never import the
        evaluation layer themselves. ``warm_start`` (models with ``supports_warm_start``) starts from an
        earlier fit of the same model instead of a random initialisation.
        """
        user_items = as_csr(user_items)
        self._check_features(features)
        if warm_start is not None:
            if not self.supports_warm_start:
                raise ConfigError(f"model {self.name!r} cannot start from an earlier fit; fit it cold")
            if warm_start.user_rows.shape != (user_items.shape[0],) or warm_start.item_rows.shape != (
                user_items.shape[1],
            ):
                raise ConfigError(
                    f"warm start: {len(warm_start.user_rows)} user and {len(warm_start.item_rows)} item rows "
                    f"for a {user_items.shape[0]}×{user_items.shape[1]} training matrix"
                )
        self._reset()
        self.n_users_, self.n_items_ = user_items.shape
        self._validator = validate
        self._warm = warm_start
        try:
            self._fit(user_items, features, valid=None if valid is None else as_csr(valid))
        finally:
            self._validator = None
            self._warm = None
        self.fitted_ = True
        return self

    def load_libraries(self) -> None:
        """Import what ``fit`` needs (``fit`` imports it anyway): timed fits call it first so that they measure
        training, not a first import (torch took 3.4-3.9 s to import here, under load)."""

    def _validator_for(self, purpose: str) -> Validator:
        """The validation callback given to ``fit``; a clear error when a model needs one and has none."""
        validator = getattr(self, "_validator", None)
        if validator is None:
            raise ConfigError(
                f"model {self.name!r} uses the validation data for {purpose}: pass "
                "validate=fusionrec.evaluation.VALIDATOR to fit() along with valid= (fit_artifact does)"
            )
        return validator

    def _fit(
        self, user_items: sp.csr_matrix, features: Features | None, *, valid: sp.csr_matrix | None
    ) -> None:
        raise NotImplementedError

    def _reset(self) -> None:
        """Forget learned state so a refit starts clean."""
        for k in [k for k in vars(self) if k.endswith("_")]:
            delattr(self, k)

    def _check_features(self, features: Features | None) -> None:
        req = self.requires_features
        if not req:
            return
        have = set(features) if features is not None else set()
        if req == ("*",):
            if not have:
                raise ConfigError(
                    f"model {self.name!r} needs item features (any modality) but the data has none; "
                    "run `fusionrec features` or use a data set with *.npy feature files"
                )
            return
        missing = [m for m in req if m not in have]
        if missing:
            raise ConfigError(
                f"model {self.name!r} needs modality {missing}; the data has {sorted(have) or 'none'}"
            )

    def check_fitted(self) -> None:
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"model {self.name!r} is not fitted; call fit() or load an artifact first")

    # ------------------------------------------------------------------ scoring
    def score(self, users: np.ndarray) -> np.ndarray:
        """Scores of every item for each user in ``users``: dense ``(len(users), n_items)`` float32.

        The array is fresh (not a view of model state): callers mask it in place.
        """
        raise NotImplementedError

    def score_parts(self, users: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
        """Why ``items`` ``(n, k)`` score what they do for ``users`` ``(n,)``: ``{part: (n, k) array}``.

        The one explanation method. Parts add up to the score; ``explanation_kind`` says what they are
        ("score-decomposition": terms of the model's own formula; "model-share": weighted sub-model scores).
        """
        raise NotImplementedError(f"{self.name} does not break its scores into parts")

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Scores of (user, item) pairs, ``users[n]`` × ``items[n]`` (predicted ratings for rating models).

        The default scores the distinct users in blocks and picks the pairs' items; models that can score
        a pair directly override it.
        """
        self.check_fitted()
        users = np.asarray(users, dtype=np.int64).ravel()
        items = np.asarray(items, dtype=np.int64).ravel()
        if users.shape != items.shape:
            raise ConfigError(f"predict got {len(users)} users for {len(items)} items; pass one per pair")
        out = np.empty(len(users), np.float32)
        uniq, row = np.unique(users, return_inverse=True)
        order = np.argsort(row, kind="stable")
        block = 256
        bounds = np.searchsorted(row[order], np.arange(0, len(uniq) + block, block))
        for b, start in enumerate(range(0, len(uniq), block)):
            sel = order[bounds[b] : bounds[b + 1]]
            scores = self.score(uniq[start : start + block])
            out[sel] = scores[row[sel] - start, items[sel]]
        return out

    def user_vectors(self) -> np.ndarray:
        raise NotImplementedError(f"{self.name} has no user vectors")

    def item_vectors(self) -> np.ndarray:
        raise NotImplementedError(f"{self.name} has no item vectors")

    def recommend(
        self,
        users: np.ndarray | int,
        k: int = 10,
        *,
        exclude: sp.csr_matrix | None = None,
        scores: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and scores per user, best first.

        ``exclude`` rows (aligned with ``users``' indices in the full user space) are masked out. Lists shorter
        than ``k`` (tiny catalogues) are padded with index -1 and score -inf.
        """
        self.check_fitted()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        n_users = int(getattr(self, "n_users_", 0))
        if scores is None and len(users) and (users.min() < 0 or users.max() >= n_users):
            # an unknown raw id looked up leniently is -1, which numpy would read as the last user
            bad = users[(users < 0) | (users >= n_users)]
            raise UnknownUserError(
                f"user index {int(bad[0])} is not in the model (users are 0..{n_users - 1}); look raw ids "
                "up with IdMap.require(), which raises for unknown ids"
            )
        # score() returns a fresh array (contract); caller-given scores are copied before masking
        scores = self.score(users) if scores is None else np.array(scores, dtype=np.float32, copy=True)
        if exclude is not None:
            mask_rows(scores, exclude, users)
        return top_k(scores, k)

    # ------------------------------------------------------------------ cold start
    def item_vectors_from_features(self, rows: dict[str, np.ndarray]) -> np.ndarray:
        """Vector(s) for item(s) known only by content: ``{modality: (n, d)}`` → ``(n, dim)``."""
        raise NotImplementedError(f"{self.name} cannot place items from content alone")

    def fold_in_user(self, item_idx: np.ndarray) -> np.ndarray:
        """Scores of every item for an unknown user who interacted with ``item_idx``."""
        raise NotImplementedError(f"{self.name} cannot fold in new users")

    def forget_user_rows(self, idx: int) -> None:
        """Remove user ``idx`` from the learned state, in place (a user asked to be forgotten).

        The default follows the naming convention: arrays named ``user_*_`` have one row per user (that row
        is deleted) and CSR parts named ``user_<name>_indptr_`` / ``_indices_`` / ``_data_`` have one row per
        user (that row is cut out). A model keeping per-user state otherwise overrides this; one whose other
        arrays could hold per-user rows is refused rather than left holding the user's data.
        """
        self.check_fitted()
        arrays = self.state_arrays()
        n_users = int(self.n_users_)
        packed = [
            n
            for n, v in arrays.items()
            if n.endswith("indptr_")
            and not n.startswith("user_")
            and len(v) == n_users + 1
            and n_users != self.n_items_
        ]
        if packed:
            raise ConfigError(
                f"model {self.name!r} keeps per-user state in {packed} that forgetting cannot remove; "
                "refit the model without this user instead"
            )
        csr_rows = {
            n[: -len("indptr_")]
            for n, v in arrays.items()
            if n.startswith("user_") and n.endswith("_indptr_") and len(v) == n_users + 1
        }
        for base in csr_rows:
            indptr = arrays[f"{base}indptr_"]
            lo, hi = int(indptr[idx]), int(indptr[idx + 1])
            for part in ("indices_", "data_"):
                if f"{base}{part}" in arrays:
                    setattr(self, f"{base}{part}", np.delete(arrays[f"{base}{part}"], np.s_[lo:hi]))
            setattr(
                self, f"{base}indptr_", np.concatenate([indptr[: idx + 1], indptr[idx + 2 :] - (hi - lo)])
            )
        for name, value in arrays.items():
            if (
                name.startswith("user_")
                and not any(name.startswith(b) for b in csr_rows)
                and value.ndim >= 1
                and value.shape[0] == n_users
            ):
                setattr(self, name, np.delete(value, idx, axis=0))
        self.n_users_ = n_users - 1
        self._after_load()

    # ------------------------------------------------------------------ persistence
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Every learned numpy array (attributes ending in ``_``); what artifacts store."""
        self.check_fitted()
        return {k: v for k, v in vars(self).items() if k.endswith("_") and isinstance(v, np.ndarray)}

    def state_meta(self) -> dict[str, Any]:
        """Learned scalars (ints, floats, strings, lists of them) ending in ``_``, stored as JSON."""
        out = {}
        for k, v in vars(self).items():
            if isinstance(v, np.generic):
                v = v.item()
            if k.endswith("_") and not isinstance(v, np.ndarray) and _is_jsonable(v):
                out[k] = v
        return out

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Recommender:
        for key in [*arrays, *meta]:
            # learned state is data in ``name_`` attributes; a file must not set methods or parameters
            if not (
                isinstance(key, str) and key.isidentifier() and key.endswith("_") and not key.startswith("_")
            ):
                raise DataError(f"model {self.name!r}: {key!r} is not a learned-state name (name_)")
        self._reset()
        for k, v in meta.items():
            setattr(self, k, v)
        for k, v in arrays.items():
            setattr(self, k, v)
        self._check_state_shapes(arrays)
        self._after_load()
        self.fitted_ = True
        return self

    def _check_state_shapes(self, arrays: dict[str, np.ndarray]) -> None:
        """Loaded state must agree with itself: ``user_*_`` arrays have one row per user, item factors one per
        item (an artifact whose user factors were cut short used to answer with a 500 on some users)."""
        n_users, n_items = getattr(self, "n_users_", None), getattr(self, "n_items_", None)
        for key, n in (("n_users_", n_users), ("n_items_", n_items)):
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise DataError(f"model {self.name!r}: {key} is {n!r}, not a count")
        assert isinstance(n_users, int) and isinstance(n_items, int)
        for k, v in arrays.items():
            if k.startswith("user_") and k.endswith("_indptr_"):
                want, got = n_users + 1, (v.shape[0] if v.ndim else -1)
            elif k.startswith("user_") and not k.endswith(("_indices_", "_data_")):
                want, got = n_users, (v.shape[0] if v.ndim else -1)
            elif k in ("item_factors_", "item_bias_"):
                want, got = n_items, (v.shape[0] if v.ndim else -1)
            else:
                continue
            if got != want:
                raise DataError(
                    f"model {self.name!r}: {k} has {got} rows but the model has "
                    f"{n_users} users and {n_items} items; the artifact is damaged, refit it"
                )

    def _after_load(self) -> None:
        """Hook for models that rebuild derived state (e.g. an index) after loading."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class FactorModel(Recommender):
    """A model whose score is ``user_factors_ @ item_factors_.T`` (+ optional ``item_bias_``)."""

    is_inner_product = True
    user_factors_: np.ndarray
    item_factors_: np.ndarray

    def score(self, users: np.ndarray) -> np.ndarray:
        self.check_fitted()
        users = np.asarray(users, dtype=np.int64)
        s = self.user_factors_[users] @ self.item_factors_.T
        return s.astype(np.float32, copy=False)

    def user_vectors(self) -> np.ndarray:
        self.check_fitted()
        return self.user_factors_

    def item_vectors(self) -> np.ndarray:
        self.check_fitted()
        return self.item_factors_

    def fold_in_user(self, item_idx: np.ndarray) -> np.ndarray:
        """Ridge solve for the user vector with item factors fixed, then score every item."""
        self.check_fitted()
        u = ridge_fold_in(self.item_factors_, item_idx, getattr(self, "reg", None))
        return (self.item_factors_ @ u).astype(np.float32)


# ---------------------------------------------------------------------------------------------- helpers


def as_csr(m: sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float32)
    m.sort_indices()
    return m


def _is_jsonable(v: Any) -> bool:
    if isinstance(v, bool | int | float | str) or v is None:
        return True
    if isinstance(v, list | tuple):
        return all(_is_jsonable(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _is_jsonable(x) for k, x in v.items())
    return False
