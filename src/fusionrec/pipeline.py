"""Fit → artifact, the one path shared by the CLI, the demo, tuning and benchmarks."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.artifacts import TRAIN_TIMES, Artifact
from fusionrec.data.dataset import Dataset, Split
from fusionrec.errors import ConfigError
from fusionrec.evaluation import VALIDATOR
from fusionrec.evaluation.evaluator import sample_users_of
from fusionrec.models.base import Recommender, WarmStart
from fusionrec.models.registry import create_model

log = logging.getLogger("fusionrec")


def build_model(
    name: str, params: dict[str, Any] | None = None, *, seed: int | None = None, show_progress: bool = True
) -> Recommender:
    """Create a registered model; ``seed`` fills ``random_state`` unless the params set it."""
    params = dict(params or {})
    model = create_model(name, params)
    check_metric_params(model)
    if seed is not None and "random_state" in model.param_defaults() and "random_state" not in params:
        model.random_state = seed
    model.show_progress = show_progress
    return model


def check_metric_params(model: Recommender) -> None:
    """A metric given as a model parameter (``valid_metric=recal@20``) is refused before fitting, with
    the valid names, instead of failing as a traceback when early stopping first runs."""
    from fusionrec.errors import ConfigError
    from fusionrec.evaluation.metrics import parse_metric
    from fusionrec.params import metric_list

    for key, value in model.get_params().items():
        if key == "metric" or key.endswith("_metric"):
            try:
                # "recall@20,ndcg@20" names several (late fusion and content-knn average them)
                for spec in metric_list(value):
                    parse_metric(spec)
            except ValueError as e:  # ConfigError is a ValueError too
                raise ConfigError(f"model {model.name!r} parameter {key}: {e}") from None


#: early stopping ranks every item for at most this many valid users (a seeded sample beyond it): ranking all
#: of a million users each epoch would cost more than the training itself
MAX_VALID_USERS = 20_000


def resolve_task(model: Recommender, task: str | None = None) -> str:
    """The task to fit ``model`` for: ``task`` when given (it must be the model's), else the model's own."""
    own = str(model.task)
    if task is None or task == own:
        return own
    if own == "rating":
        raise ConfigError(
            f"model {model.name!r} predicts ratings; fit it with --task rating (or pick a ranking model)"
        )
    hint = " (neural does with --param objective=mse)" if model.name == "neural" else ""
    raise ConfigError(
        f"model {model.name!r} ranks items and does not predict ratings{hint}; for --task rating choose "
        "biased-mf or neural with objective=mse"
    )


def fit_artifact(
    ds: Dataset,
    split: Split,
    model: Recommender,
    *,
    split_name: str | None = None,
    seed: int | None = None,
    warm_start: WarmStart | None = None,
) -> tuple[Artifact, float]:
    """Fit ``model`` on the split's train part (valid for early stopping); returns the artifact and fit seconds.

    ``warm_start`` (see :func:`warm_start_from`) starts the fit from an earlier artifact's model."""
    features = ds.features if len(ds.features) else None
    valid = split.valid if split.valid.nnz else None
    if valid is not None:
        valid = sample_users_of(valid, MAX_VALID_USERS, seed or 0)
    model.load_libraries()
    t0 = time.perf_counter()
    model.fit(
        split.train,
        features,
        valid=valid,
        validate=VALIDATOR if valid is not None else None,
        warm_start=warm_start,
    )
    seconds = time.perf_counter() - t0
    return make_artifact(ds, split, model, seconds=seconds, split_name=split_name, seed=seed), seconds


def warm_start_from(art: Artifact, ds: Dataset) -> WarmStart:
    """What a fit on ``ds`` needs to start from ``art``'s model: its state, and for each user and item of
    ``ds`` (by raw id) its row in the artifact, or -1 for one the artifact does not know."""
    return WarmStart.from_model(
        art.model,
        user_rows=art.user_ids.indices(ds.user_ids.raw_ids),
        item_rows=art.item_ids.indices(ds.item_ids.raw_ids),
    )


def keep_trained_in_train(split: Split, art: Artifact, ds: Dataset) -> tuple[Split, dict[str, int]]:
    """``split`` of ``ds`` with every interaction ``art`` was trained on (matched by raw ids) moved from valid
    and test back into train, and how many moved from each.

    A refit from ``art`` on data that grew is split afresh, so some pairs the artifact trained on land in
    valid or test: early stopping would favour the warm start for having seen them, and the test would
    reward it (on the demo data, ALS refitted on grown data scored 0.41 valid recall@20 against 0.26 cold).
    """
    users = ds.user_ids.indices(art.user_ids.raw_ids[: art.train.shape[0]])
    items = ds.item_ids.indices(art.item_ids.raw_ids[: art.train.shape[1]])
    old = sp.coo_matrix(art.train)
    rows, cols = users[old.row], items[old.col]
    known = (rows >= 0) & (cols >= 0)
    seen = sp.csr_matrix(
        (np.ones(int(known.sum()), np.float32), (rows[known], cols[known])), shape=split.train.shape
    )
    seen.data[:] = 1.0  # a pair listed twice counts once

    def without_seen(part: sp.csr_matrix) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        moved = sp.csr_matrix(part.multiply(seen), dtype=part.dtype)
        kept = sp.csr_matrix(part - moved)
        kept.eliminate_zeros()
        moved.eliminate_zeros()
        return kept, moved

    valid, from_valid = without_seen(split.valid)
    test, from_test = without_seen(split.test)
    train = sp.csr_matrix(split.train + from_valid + from_test)
    moved = {"valid": int(from_valid.nnz), "test": int(from_test.nnz)}
    return dataclasses.replace(split, train=train, valid=valid, test=test), moved


def make_artifact(
    ds: Dataset,
    split: Split,
    model: Recommender,
    *,
    seconds: float,
    split_name: str | None = None,
    seed: int | None = None,
) -> Artifact:
    """The artifact of ``model``, already fitted on ``split.train`` of ``ds`` in ``seconds``."""
    features = ds.features if len(ds.features) else None
    info: dict[str, Any] = {
        "data_fingerprint": ds.fingerprint(),
        "data_name": ds.name,
        "split": split_name or split.name,
        "seed": seed,
        "fit_seconds": round(seconds, 3),
        "task": split.task,
    }
    if features is not None and features.extractors:
        info["feature_extractors"] = features.extractors
    if ds.content is not None and ds.content.titles is not None:
        info["item_titles"] = ds.content.titles
    if ds.content is not None:
        info.update(_image_table(ds.content.image_paths))
    train = split.train
    if not train.has_canonical_format:  # stored interaction times are aligned with sorted nonzeros
        train = train.copy()
        train.sum_duplicates()
    art = Artifact(
        model=model,
        user_ids=ds.user_ids,
        item_ids=ds.item_ids,
        train=train,
        features=features,
        info=info,
    )
    if features is not None:
        # fitted extractors (TF-IDF vocabulary, BoVW codebook, ...) travel with the artifact for new items
        art.extra_arrays.update({f"extractor/{k}": v for k, v in features.extractor_state.items()})
    if ds.timestamps is not None:
        art.extra_arrays[TRAIN_TIMES] = interaction_times(ds, train)
    return art


def interaction_times(ds: Dataset, matrix: sp.csr_matrix) -> np.ndarray:
    """The timestamp of each nonzero of ``matrix`` (storage order): the latest of its (user, item) rows."""
    assert ds.timestamps is not None
    n_items = np.int64(ds.n_items)
    keys = ds.users * n_items + ds.items
    order = np.lexsort((ds.timestamps, keys))
    keys, times = keys[order], ds.timestamps[order]
    last = np.r_[keys[1:] != keys[:-1], True]
    keys, times = keys[last], times[last]
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    pos = np.searchsorted(keys, rows * n_items + matrix.indices)
    pos = np.minimum(pos, len(keys) - 1)
    found = keys[pos] == rows * n_items + matrix.indices
    return np.where(found, times[pos], 0).astype(np.int64)


def _image_table(paths: list[str | None]) -> dict[str, Any]:
    """The items' image files as one folder plus names relative to it (what the web page may serve)."""
    present = [os.path.abspath(p) for p in paths if p]
    if not present:
        return {}
    root = Path(os.path.commonpath([os.path.dirname(p) for p in present]))
    return {
        "image_root": str(root),
        "item_images": [os.path.relpath(os.path.abspath(p), root) if p else None for p in paths],
    }
