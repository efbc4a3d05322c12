"""The cold-item protocol: can a model recommend items it never saw an interaction of?

``split_dataset(ds, "cold-items")`` withholds a fraction of the items with *all* their interactions (half
in valid, half in test); train holds none of them. The model is fitted on train; each cold item then gets a
vector from its content alone (the model's own ``item_vectors_from_features`` when it supports cold items,
else the ridge :class:`~fusionrec.models.cold.ContentMapper`); for every user with a held-out interaction
the cold items of the evaluated part are ranked and scored with the shared evaluator.

Baselines, defined honestly:

- ``random``: uniform random scores (the floor; expected Recall@K ≈ K / number of candidates);
- ``popularity (train)``: every cold item has zero training interactions, so train popularity ties them all;
  ties are broken at random, which makes it *identical* to ``random`` — reported to show it, not as a number
  to beat;
- ``popularity (content)``: a non-personalised list ordered by popularity predicted from content (ridge from
  the same features to log(1 + train interactions) on warm items) — the fair non-personalised baseline;
- ``content-knn``: personalised without collaborative filtering — cosine between each cold item's
  standardised content and the mean content of the user's training items;
- ``popularity (oracle)``: counts taken from the evaluated part itself. It peeks at the test interactions, so
  it is an upper reference for non-personalised lists, not a fair baseline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Dataset, Split
from fusionrec.data.graph import unit_rows
from fusionrec.data.splits import split_dataset
from fusionrec.errors import ConfigError, DataError
from fusionrec.evaluation.evaluator import evaluate_scores
from fusionrec.models.base import Recommender
from fusionrec.models.cold import ContentMapper, cold_item_vectors, fit_content_mapper

log = logging.getLogger("fusionrec")

COLD_METRICS = ("recall@20", "ndcg@20")


@dataclass
class ColdResult:
    """One row per method (the model and each baseline), plus what the protocol ran on."""

    rows: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, **self.info}


def evaluate_cold_items(
    ds: Dataset,
    model: Recommender,
    *,
    seed: int = 2026,
    cold_fraction: float = 0.2,
    on: str = "test",
    metrics: Sequence[str] = COLD_METRICS,
    modalities: Sequence[str] | None = None,
    reg: float | None = None,
    baselines: bool = True,
) -> ColdResult:
    """Fit ``model`` on a cold-item split of ``ds``; rank the held-out cold items by content-derived vectors.

    Parameters
    ----------
    ds
        Data with item features (at least one modality).
    model
        An unfitted inner-product model, or one that declares ``supports_cold_items``.
    seed, cold_fraction
        Passed to ``split_dataset(ds, "cold-items", ...)``.
    on
        "test" (default) or "valid": which half of the cold items is ranked.
    modalities, reg
        Content mapping options (default: every modality; penalty by GCV on warm items).
    """
    if not len(ds.features):
        raise DataError(
            "the cold-item protocol needs item features; attach them with --features "
            "(written by `fusionrec features`) or use data with *.npy feature files"
        )
    if not (model.is_inner_product or model.supports_cold_items):
        raise ConfigError(
            f"model {model.name!r} neither scores by inner products nor supports cold items; "
            "choose als, bpr or another factor model"
        )
    if on not in ("valid", "test"):
        raise ConfigError(f"on must be 'valid' or 'test'; got {on!r}")
    split = split_dataset(ds, "cold-items", seed=seed, cold_fraction=cold_fraction)
    assert split.cold_items is not None  # the cold-items split always sets it
    cold = split.cold_items
    feats = ds.features if modalities is None else ds.features.select(modalities)
    target = split.test if on == "test" else split.valid
    candidates = np.unique(target.indices)
    t0 = time.perf_counter()
    # No early stopping: valid holds only cold-item interactions, which the model cannot score before mapping.
    model.fit(split.train, feats)
    fit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    mapper = None if model.supports_cold_items else fit_content_mapper(model, feats, split.train, reg=reg)
    rows = {m: feats[m][candidates] for m in feats}
    V_cold = cold_item_vectors(model, rows, mapper)
    map_seconds = time.perf_counter() - t0
    U = np.asarray(model.user_vectors(), dtype=np.float32)
    n_items = split.train.shape[1]

    def model_scores(users: np.ndarray) -> np.ndarray:
        out = np.full((len(users), n_items), -np.inf, np.float32)
        out[:, candidates] = U[users] @ V_cold.T
        return out

    results = [_row(f"{model.name} + content", model_scores, target, candidates, metrics)]
    if baselines:
        results += _baselines(split, feats, target, candidates, metrics, seed)
    info = {
        "model": model.name,
        "params": model.get_params(),
        "on": on,
        "seed": seed,
        "cold_fraction": cold_fraction,
        "cold_items": len(cold),
        "candidates": int(len(candidates)),
        "users": int((np.diff(target.indptr) > 0).sum()),
        "modalities": list(feats),
        "mapping": "model"
        if mapper is None
        else {"reg": mapper.reg_, "fit_r2": round(mapper.fit_r2_, 4), "items": mapper.n_fit_},
        "fit_seconds": round(fit_seconds, 3),
        "map_seconds": round(map_seconds, 3),
    }
    return ColdResult(rows=results, info=info)


def _row(
    method: str, score_fn, target: sp.csr_matrix, candidates: np.ndarray, metrics: Sequence[str]
) -> dict[str, Any]:
    res = evaluate_scores(score_fn, target, None, metrics=metrics, candidate_items=candidates)
    return {"method": method, **{k: round(v, 6) for k, v in res.metrics.items()}}


def _baselines(
    split: Split, feats, target: sp.csr_matrix, candidates: np.ndarray, metrics: Sequence[str], seed: int
) -> list[dict[str, Any]]:
    n_users, n_items = split.train.shape
    # one random draw per (user, candidate); only candidates are ranked, so only they need a score
    draw = np.random.default_rng(seed).random((n_users, len(candidates)), dtype=np.float32)

    def random_scores(users: np.ndarray) -> np.ndarray:
        out = np.full((len(users), n_items), -np.inf, np.float32)
        out[:, candidates] = draw[users]
        return out

    def const(vec: np.ndarray):
        return lambda users: np.tile(vec, (len(users), 1))  # fresh: the evaluator masks in place

    train_pop = np.asarray(split.train.sum(axis=0)).ravel().astype(np.float32)
    # every cold item has train popularity 0; ties broken by the same random draw as "random"
    tie_broken = lambda users: train_pop[None, :] + random_scores(users)  # noqa: E731
    warm = np.flatnonzero(train_pop > 0)
    pop_map = ContentMapper().fit(feats, np.log1p(train_pop)[:, None], warm)
    content_pop = np.full(n_items, -np.inf, np.float32)
    content_pop[candidates] = pop_map.transform({m: feats[m][candidates] for m in feats})[:, 0]
    oracle_pop = np.asarray(target.sum(axis=0)).ravel().astype(np.float32)
    # content-kNN: standardised, per-modality L2-normalised content; user profile = mean over train items
    Z = _content_matrix(feats, warm)
    train_norm = sp.csr_matrix(split.train)
    deg = np.maximum(np.diff(train_norm.indptr), 1).astype(np.float32)
    profiles = unit_rows(np.asarray(train_norm @ Z) / deg[:, None])
    Zc = Z[candidates]

    def knn_scores(users: np.ndarray) -> np.ndarray:
        # cosine: both sides are unit rows (data/graph.unit_rows)
        out = np.full((len(users), n_items), -np.inf, np.float32)
        out[:, candidates] = profiles[users] @ Zc.T
        return out

    return [
        _row("random", random_scores, target, candidates, metrics),
        _row("popularity (train; all cold items tie)", tie_broken, target, candidates, metrics),
        _row("popularity (content)", const(content_pop), target, candidates, metrics),
        _row("content-knn", knn_scores, target, candidates, metrics),
        _row("popularity (oracle, peeks at test)", const(oracle_pop), target, candidates, metrics),
    ]


def _content_matrix(feats, rows: np.ndarray) -> np.ndarray:
    """Modalities z-scored on ``rows`` and row-L2-normalised each, concatenated, then normalised again."""
    blocks = []
    for m in feats:
        x = np.asarray(feats[m], dtype=np.float32)
        mu, sd = x[rows].mean(axis=0), x[rows].std(axis=0)
        z = (x - mu) / np.where(sd > 1e-8, sd, 1.0)
        blocks.append(unit_rows(z))
    return unit_rows(np.hstack(blocks))


def format_cold(result: ColdResult) -> str:
    """A small text table of a :class:`ColdResult`."""
    cols = [k for k in result.rows[0] if k != "method"]
    width = max(len(r["method"]) for r in result.rows)
    lines = [f"{'method':<{width}}  " + "  ".join(f"{c:>10}" for c in cols)]
    for r in result.rows:
        lines.append(f"{r['method']:<{width}}  " + "  ".join(f"{r[c]:>10.4f}" for c in cols))
    i = result.info
    lines.append(
        f"cold items {i['cold_items']} ({i['candidates']} ranked, {i['on']}), users {i['users']}, "
        f"modalities {i['modalities']}, mapping {i['mapping']}"
    )
    return "\n".join(lines)
