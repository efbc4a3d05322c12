"""Fit → artifact, the one path shared by the CLI, the demo, tuning and benchmarks."""

from __future__ import annotations

import logging
import time
from typing import Any

from fusionrec.artifacts import Artifact
from fusionrec.data.dataset import Dataset, Split
from fusionrec.models.base import Recommender
from fusionrec.models.registry import create_model

log = logging.getLogger("fusionrec")


def build_model(
    name: str, params: dict[str, Any] | None = None, *, seed: int | None = None, show_progress: bool = True
) -> Recommender:
    """Create a registered model; ``seed`` fills ``random_state`` unless the params set it."""
    params = dict(params or {})
    model = create_model(name, params)
    if seed is not None and "random_state" in model.param_defaults() and "random_state" not in params:
        model.random_state = seed
    model.show_progress = show_progress
    return model


def fit_artifact(
    ds: Dataset, split: Split, model: Recommender, *, split_name: str | None = None, seed: int | None = None
) -> tuple[Artifact, float]:
    """Fit ``model`` on the split's train part (valid for early stopping); returns the artifact and fit seconds."""
    features = ds.features if len(ds.features) else None
    t0 = time.perf_counter()
    model.fit(split.train, features, valid=split.valid if split.valid.nnz else None)
    seconds = time.perf_counter() - t0
    return make_artifact(ds, split, model, seconds=seconds, split_name=split_name, seed=seed), seconds


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
    }
    if features is not None and features.extractors:
        info["feature_extractors"] = features.extractors
    if ds.content is not None and ds.content.titles is not None:
        info["item_titles"] = ds.content.titles
    art = Artifact(
        model=model,
        user_ids=ds.user_ids,
        item_ids=ds.item_ids,
        train=split.train,
        features=features,
        info=info,
    )
    if features is not None:
        # fitted extractors (TF-IDF vocabulary, BoVW codebook, ...) travel with the artifact for new items
        art.extra_arrays.update({f"extractor/{k}": v for k, v in features.extractor_state.items()})
    return art
