"""Item-feature preparation shared by the content-aware models (VBPR, the attention network, LATTICE).

Each modality is normalised with statistics learned at fit time; the statistics are kept as numpy state so
that an item known only by its content (cold start) is normalised exactly as the training items were.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from fusionrec.data.dataset import Features
from fusionrec.errors import ConfigError
from fusionrec.params import metric_list

log = logging.getLogger("fusionrec")

NORMALISATIONS = ("l2", "standard", "none")


def resolve_modalities(features: Features | None, modalities: Sequence[str] | str | None) -> list[str]:
    """The modalities a model uses: all of ``features`` (``None``/``"all"``) or the named ones, checked."""
    have = list(features) if features is not None else []
    if modalities is None or modalities == "all":
        return have
    names = [modalities] if isinstance(modalities, str) else list(modalities)
    missing = [n for n in names if n not in have]
    if missing:
        raise ConfigError(f"modalities {missing} are not in the data; it has {have or 'none'}")
    return names


def search_modality_weights(
    objective: Callable[[np.ndarray], float], n: int, grid: Sequence[float], *, rounds: int = 1
) -> tuple[np.ndarray, float]:
    """Per-modality weights that maximise ``objective`` by coordinate search from all 0 (the model without
    content), each weight in turn trying every ``grid`` value with the others held.

    The first pass only adds content; later passes (``rounds`` > 1) also try 0 again, so a modality taken in
    early that a later one makes useless is switched off. Returns ``(weights, best objective)``.
    """
    best_w = np.zeros(n)
    best = objective(best_w)
    for r in range(max(1, rounds)):
        changed = False
        for j in range(n):
            for value in grid:
                if value == best_w[j] or (r == 0 and value == 0):
                    continue
                trial = best_w.copy()
                trial[j] = value
                score = objective(trial)
                if score > best:
                    best_w, best, changed = trial, score, True
        if not changed:
            break
    return best_w, best


def content_weights_on_valid(
    model,
    scorer: Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]],
    user_items,
    valid,
    grid: Sequence[float],
    *,
    rounds: int = 1,
    on_trial: Callable[[np.ndarray, float], None] | None = None,
) -> np.ndarray:
    """Per-modality content weights of ``model`` (a content-ease or content-als): its ``content_weights`` if
    given (checked), 1 each without validation data, else the :func:`search_modality_weights` result on
    ``valid`` for ``model.valid_metric``. ``scorer(w)`` fits with weights ``w`` and returns the scores of a
    batch of users; ``on_trial(w, value)`` sees every trial (to keep the best fit)."""
    names = list(model.modalities_)
    if model.content_weights is not None:
        w = np.asarray(model.content_weights, dtype=np.float64)
        if w.shape != (len(names),) or (w < 0).any() or not np.isfinite(w).all():
            raise ConfigError(
                f"{model.name} content_weights need one non-negative value per modality {names}"
            )
        return w
    if valid is None or valid.nnz == 0:
        log.warning("%s: no validation data; every modality gets content weight 1", model.name)
        return np.ones(len(names))
    validate = model._validator_for("fitting the content weights")
    metrics = metric_list(model.valid_metric)
    validate.check(metrics)

    def objective(w: np.ndarray) -> float:
        res = validate(scorer(w), valid, user_items, metrics)
        value = float(np.mean([res[m] for m in metrics]))
        if on_trial is not None:
            on_trial(w, value)
        return value

    best_w, best = search_modality_weights(objective, len(names), grid, rounds=rounds)
    log.info("%s weights %s (valid %.4f)", model.name, dict(zip(names, best_w.tolist(), strict=True)), best)
    return best_w


class ContentMixin:
    """Fit-time feature normalisation and its replay on new rows.

    State it sets: ``modalities_`` (list of names, in order), ``feat_mean_{j}_`` and ``feat_scale_{j}_`` per
    modality ``j``. ``feature_norm`` (a hyperparameter of the model) is ``"l2"`` (centre, then unit rows),
    ``"standard"`` (centre and scale columns) or ``"none"``.
    """

    feature_norm: str
    modalities: Sequence[str] | str | None

    def _fit(self, user_items, features, *, valid=None) -> None:  # type: ignore[no-untyped-def]
        """Fit with BLAS limited to the trainer's thread count.

        numpy's OpenBLAS otherwise spins one thread per core: on a shared 2-core machine an eigendecomposition
        of a 1280 × 1280 Gram matrix took 10 s instead of 0.65 s, and every validation pass slowed alike.
        """
        from threadpoolctl import threadpool_limits

        from fusionrec.models._torch import default_threads

        with threadpool_limits(limits=default_threads(), user_api="blas"):
            super()._fit(user_items, features, valid=valid)  # type: ignore[misc]

    def _prepare_features(
        self, features: Features | None, n_items: int, raw: Sequence[str] = ()
    ) -> list[np.ndarray]:
        """Normalised matrices of the modalities used; ``raw`` ones (pixels, token ids) pass unchanged."""
        names = resolve_modalities(features, self.modalities)
        if not names or features is None:
            raise ConfigError(
                f"model {getattr(self, 'name', '?')!r} needs item features; load a data set with feature "
                "files (e.g. an MMRec directory with *_feat.npy) or run `fusionrec features`"
            )
        if features.n_items != n_items:
            raise ConfigError(f"features have {features.n_items} rows for {n_items} items")
        if self.feature_norm not in NORMALISATIONS:
            raise ConfigError(f"unknown feature_norm {self.feature_norm!r}; choose one of {NORMALISATIONS}")
        self.modalities_ = list(names)
        self.raw_modalities_ = [n for n in names if n in set(raw)]
        out = []
        for j, n in enumerate(names):
            x = np.asarray(features[n], dtype=np.float32)
            identity = self.feature_norm == "none" or n in self.raw_modalities_
            mean = np.zeros(x.shape[1], np.float32) if identity else x.mean(axis=0)
            scale = np.ones(x.shape[1], np.float32)
            if self.feature_norm == "standard" and not identity:
                scale = 1.0 / np.maximum(x.std(axis=0), 1e-8)
            setattr(self, f"feat_mean_{j}_", mean.astype(np.float32))
            setattr(self, f"feat_scale_{j}_", scale.astype(np.float32))
            out.append(self._normalise(j, x))
        return out

    def _normalise(self, j: int, x: np.ndarray) -> np.ndarray:
        mean, scale = getattr(self, f"feat_mean_{j}_"), getattr(self, f"feat_scale_{j}_")
        x = np.asarray(x, dtype=np.float32).reshape(-1, len(mean))
        if x.shape[1] != len(mean):
            raise ConfigError(
                f"modality {self.modalities_[j]!r} has {len(mean)} dimensions; got {x.shape[1]}"
            )
        z = (x - mean) * scale
        if self.feature_norm == "l2" and self.modalities_[j] not in getattr(self, "raw_modalities_", ()):
            z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-8)
        return z.astype(np.float32)

    def _rows_for_new_items(self, rows: Mapping[str, np.ndarray]) -> tuple[list[np.ndarray], int]:
        """Normalised feature rows of new items; a modality missing from ``rows`` gets the training mean."""
        unknown = sorted(set(rows) - set(self.modalities_))
        if unknown:
            raise ConfigError(f"unknown modality {unknown}; this model uses {self.modalities_}")
        sizes = {np.asarray(v).reshape(-1, np.asarray(v).shape[-1]).shape[0] for v in rows.values()}
        if len(sizes) != 1:
            raise ConfigError("every modality in rows needs the same number of items")
        n = sizes.pop() if sizes else 1
        out = []
        for j, name in enumerate(self.modalities_):
            dim = len(getattr(self, f"feat_mean_{j}_"))
            if name in rows:
                out.append(self._normalise(j, np.asarray(rows[name], dtype=np.float32).reshape(n, dim)))
            else:  # absent: the training mean, as Features imputes missing rows
                mean = getattr(self, f"feat_mean_{j}_")
                out.append(np.repeat(self._normalise(j, mean[None, :]), n, axis=0))
        return out, n


def principal_basis(x: np.ndarray, dim: int | None) -> np.ndarray | None:
    """Top-``dim`` principal directions ``(d, dim)`` of the rows of ``x`` (already centred), or ``None`` when
    ``dim`` is ``None`` or not smaller than ``d``.

    Used to shrink wide pretrained features (1280-d CNN pools) once before training: a model's projection
    ``E`` then learns on ``dim`` columns, and ``basis @ E`` is the exported map from raw features, so cold
    items still go from raw features to vectors in one product.
    """
    x = np.asarray(x, dtype=np.float64)
    if dim is None or dim >= x.shape[1]:
        return None
    if dim < 1:
        raise ConfigError(f"pca_dim must be a positive integer or None; got {dim}")
    vals, vecs = np.linalg.eigh(x.T @ x)
    basis = vecs[:, np.argsort(-vals)[:dim]]
    # fix each direction's sign (largest-magnitude entry positive) so that equal data gives equal bases
    sign = np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(dim)])
    return (basis * np.where(sign == 0, 1.0, sign)).astype(np.float32)
