"""The Recommender contract every model follows.

Models live in index space: ``fit`` takes a CSR users × items matrix (float32) and optional item ``Features``;
``score`` returns a dense ``(n_users, n_items)`` block; ``recommend`` (written once, here) masks seen items and
takes the top k. Learned state lives in attributes ending in ``_``; every array needed to score is a numpy
array so artifacts are plain data and serving needs no torch.
"""

from __future__ import annotations

import inspect
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Features
from fusionrec.errors import ConfigError, DataError, NotFittedError, UnknownUserError
from fusionrec.params import convert_cli, type_errors

log = logging.getLogger("fusionrec")


class Recommender:
    """Base class. Subclasses set ``name``, accept keyword-only hyperparameters and implement ``_fit``/``score``.

    Capabilities are declared, not guessed:

    - ``requires_features``: modalities the model cannot do without (``("*",)`` = at least one, any name);
    - ``uses_features``: whether item features change the model at all;
    - ``supports_cold_items``: whether ``item_vectors_from_features`` can place an item with content only;
    - ``is_inner_product``: ``score == user_vectors() @ item_vectors().T`` (serving may use an ANN index).
    """

    name: ClassVar[str] = "base"
    requires_features: ClassVar[tuple[str, ...]] = ()
    uses_features: ClassVar[bool] = False
    supports_cold_items: ClassVar[bool] = False
    is_inner_product: ClassVar[bool] = False
    is_torch: ClassVar[bool] = False
    # Progress bars during fit; not a hyperparameter (the CLI's --quiet turns it off per instance).
    show_progress: bool = True

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
    def from_params(cls, params: dict[str, Any]) -> Recommender:
        valid = cls.param_defaults()
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
        for key, value in params.items():
            if key == "metric" or key.endswith("_metric"):
                from fusionrec.evaluation.metrics import parse_metric  # evaluation imports this module

                try:
                    for spec in [value] if isinstance(value, str) else value or []:
                        parse_metric(str(spec))
                except ValueError as e:  # ConfigError is a ValueError too
                    raise ConfigError(f"model {cls.name!r} parameter {key}: {e}") from None
        return cls(**params)

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        user_items: sp.csr_matrix,
        features: Features | None = None,
        *,
        valid: sp.csr_matrix | None = None,
    ) -> Recommender:
        """Learn from ``user_items`` (binary CSR, users × items). ``valid`` enables early stopping where used."""
        user_items = as_csr(user_items)
        self._check_features(features)
        self._reset()
        self.n_users_, self.n_items_ = user_items.shape
        self._fit(user_items, features, valid=None if valid is None else as_csr(valid))
        self.fitted_ = True
        return self

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
        V = self.item_factors_
        item_idx = np.asarray(item_idx, dtype=np.int64)
        if len(item_idx) == 0:
            return np.zeros(V.shape[0], np.float32)
        Vi = V[item_idx]
        reg = float(getattr(self, "reg", 0.01) or 0.01) * max(1, len(item_idx))
        A = Vi.T @ Vi + reg * np.eye(V.shape[1], dtype=V.dtype)
        u = np.linalg.solve(A, Vi.sum(axis=0))
        return (V @ u).astype(np.float32)


# ---------------------------------------------------------------------------------------------- helpers


def as_csr(m: sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float32)
    m.sort_indices()
    return m


def mask_rows(scores: np.ndarray, exclude: sp.csr_matrix, users: np.ndarray) -> None:
    """Set ``scores[r, j] = -inf`` for every item j in ``exclude[users[r]]`` (in place, vectorised)."""
    sub = exclude[users]
    rows = np.repeat(np.arange(len(users)), np.diff(sub.indptr))
    cols = sub.indices
    ok = cols < scores.shape[1]
    scores[rows[ok], cols[ok]] = -np.inf


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k by partial sort, best first; pads with -1 / -inf when fewer than k are finite."""
    n, m = scores.shape
    if k <= 0:
        raise ConfigError(f"k must be a positive integer; got {k}")
    kk = min(k, m)
    if kk < m:
        part = _top_partition(scores, kk)
    else:
        part = np.tile(np.arange(m), (n, 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    val = np.take_along_axis(part_scores, order, axis=1)
    idx = np.where(np.isfinite(val), idx, -1)
    if kk < k:
        idx = np.hstack([idx, np.full((n, k - kk), -1, idx.dtype)])
        val = np.hstack([val, np.full((n, k - kk), -np.inf, val.dtype)])
    return idx.astype(np.int64), val.astype(np.float32)


def _top_partition(scores: np.ndarray, kk: int) -> np.ndarray:
    """The same indices as ``argpartition(-scores, kk - 1, axis=1)[:, :kk]``, faster on large blocks.

    Top-k is the evaluator's costliest step after scoring. A row's ``kk``-th largest group maximum (groups
    of columns) bounds its ``kk``-th largest score from below, so only the few scores above it need
    sorting. Rows where that cannot give argpartition's exact answer (ties within the top ``kk`` or at the
    cut, fewer than ``kk`` candidates, NaN) are redone by argpartition itself, so ties resolve as before.
    """
    n, m = scores.shape
    size = min(64, m // (4 * kk))  # items per group; there are m // size ≥ 4·kk groups
    if scores.size < 200_000 or size < 4:
        return _argpartition_rows(scores, kk)
    groups = m // size
    # Group g holds columns g, g + groups, g + 2·groups, ... (a strided max is one vectorised pass).
    maxima = scores[:, : groups * size].reshape(n, size, groups).max(axis=1)
    bound = np.partition(maxima, groups - kk, axis=1)[:, groups - kk]
    flat = np.flatnonzero(scores >= bound[:, None])
    if len(flat) > 8 * kk * n:  # heavy ties (e.g. one score for many items): the filter does not pay
        return _argpartition_rows(scores, kk)
    rows, cols = np.divmod(flat, m)
    vals = scores.reshape(-1)[flat]
    # by row, then score descending, ties by column (two stable sorts beat lexsort here)
    order = np.argsort(-vals, kind="stable")
    order = order[np.argsort(rows[order], kind="stable")]
    cols, vals = cols[order], vals[order]
    counts = np.bincount(rows, minlength=n)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ok = counts >= kk
    pos = np.where(ok, first, 0)[:, None] + np.arange(kk)
    top_vals = vals[np.minimum(pos, len(vals) - 1)] if len(vals) else np.zeros((n, kk), scores.dtype)
    out = cols[np.minimum(pos, len(cols) - 1)] if len(cols) else np.zeros((n, kk), np.intp)
    nxt = np.minimum(first + kk, len(vals) - 1)
    tie_at_cut = (counts > kk) & (vals[nxt] == top_vals[:, -1]) if len(vals) else np.zeros(n, bool)
    bad = ~ok | tie_at_cut | (top_vals[:, 1:] == top_vals[:, :-1]).any(axis=1)
    bad_rows = np.flatnonzero(bad)
    if len(bad_rows):
        out[bad_rows] = _argpartition_rows(scores[bad_rows], kk)
    return out.astype(np.intp, copy=False)


def _argpartition_rows(scores: np.ndarray, kk: int) -> np.ndarray:
    """``argpartition(-scores, kk - 1)[:, :kk]``; large blocks split by rows over threads (identical result)."""
    n = scores.shape[0]

    def part(rows: slice) -> np.ndarray:
        return np.argpartition(-scores[rows], kk - 1, axis=1)[:, :kk]

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = min(cpus, 8, n, scores.size // 1_000_000)
    if workers <= 1:
        return part(slice(None))
    bounds = np.linspace(0, n, workers + 1).astype(int)
    chunks = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    with ThreadPoolExecutor(workers) as pool:
        return np.vstack(list(pool.map(part, chunks)))


def _is_jsonable(v: Any) -> bool:
    if isinstance(v, bool | int | float | str) or v is None:
        return True
    if isinstance(v, list | tuple):
        return all(_is_jsonable(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _is_jsonable(x) for k, x in v.items())
    return False
