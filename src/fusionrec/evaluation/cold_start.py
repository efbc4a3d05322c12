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
from fusionrec.evaluation.evaluator import VALIDATOR, evaluate_scores
from fusionrec.models.base import Recommender, mask_rows, top_k
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
    _check_cold_inputs(ds, model)
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
        **_mapping_info(feats, mapper, fit_seconds, map_seconds),
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


# ---------------------------------------------------------------------------------------------- full catalogue

#: per-user quantile exponents tried for the calibrated fusion (chosen on the valid part)
CALIBRATION_GAMMAS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0)


@dataclass
class FullCatalogueSplit:
    """A warm split with a fraction of the items withheld from training (half for valid, half for test).

    ``train`` holds no interaction of any cold item. ``valid``/``test`` hold the warm items' held-out
    interactions plus those of their half of the cold items: with ``targets="held-out"`` the ones the warm
    split holds out anyway (new items then weigh what their share of the catalogue does in what users do
    next), with ``targets="all"`` every interaction of the item (new items then make up most targets).
    """

    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    valid_cold: np.ndarray
    test_cold: np.ndarray

    @property
    def cold(self) -> np.ndarray:
        return np.union1d(self.valid_cold, self.test_cold)

    def warm_valid(self) -> sp.csr_matrix:
        """``valid`` without cold items: what early stopping can use before any item is placed by content."""
        return _columns(self.valid, np.setdiff1d(np.arange(self.valid.shape[1]), self.cold))


COLD_TARGETS = ("held-out", "all")


def full_catalogue_split(
    ds: Dataset, *, seed: int = 2026, cold_fraction: float = 0.2, targets: str = "held-out"
) -> FullCatalogueSplit:
    """The data's own split (else ratio 8:1:1, ``seed``) with ``cold_fraction`` of the items withheld."""
    if not 0 < cold_fraction < 1:
        raise ConfigError(f"cold fraction must be in (0, 1); got {cold_fraction}")
    if targets not in COLD_TARGETS:
        raise ConfigError(f"cold targets must be one of {COLD_TARGETS}; got {targets!r}")
    base = split_dataset(ds, None, seed=seed)
    n_items = ds.n_items
    order = np.random.RandomState(seed).permutation(n_items)
    n_cold = max(2, int(round(cold_fraction * n_items)))
    valid_cold, test_cold = np.sort(order[: n_cold // 2]), np.sort(order[n_cold // 2 : n_cold])
    warm = np.setdiff1d(np.arange(n_items), order[:n_cold])
    train = _columns(base.train, warm)
    if targets == "all":
        every = (base.train + base.valid + base.test).tocsr()
        every.data[:] = 1.0
        valid = (_columns(base.valid, warm) + _columns(every, valid_cold)).tocsr()
        test = (_columns(base.test, warm) + _columns(every, test_cold)).tocsr()
    else:  # a cold item's interactions the warm split trains on are never seen by anyone
        valid = _columns(base.valid, np.union1d(warm, valid_cold))
        test = _columns(base.test, np.union1d(warm, test_cold))
    return FullCatalogueSplit(train=train, valid=valid, test=test, valid_cold=valid_cold, test_cold=test_cold)


def _columns(m: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    """``m`` with every column outside ``keep`` zeroed (shape unchanged)."""
    d = np.zeros(m.shape[1], np.float32)
    d[keep] = 1.0
    out = sp.csr_matrix(m @ sp.diags(d))
    out.eliminate_zeros()
    out.sort_indices()
    return out


def evaluate_full_catalogue(
    ds: Dataset,
    model: Recommender,
    *,
    seed: int = 2026,
    cold_fraction: float = 0.2,
    metrics: Sequence[str] = COLD_METRICS,
    modalities: Sequence[str] | None = None,
    reg: float | None = None,
    targets: str = "held-out",
    tolerance: float = 0.01,
) -> ColdResult:
    """New items compete with every warm item in each user's full ranking.

    ``model`` is fitted on the warm train part (early stopping on warm valid items only); the cold items
    get vectors from content (as in :func:`evaluate_cold_items`). Every method ranks all warm items plus the
    test half of the cold items for each user; metrics are reported on the new items only (users with a
    held-out interaction on one; a hit is a new item in the top K of the full list) and on all held-out
    items (``targets``: see :class:`FullCatalogueSplit`). ``share@K`` is the mean fraction of top-K slots
    held by new items, ``reach@K`` the fraction of new items that enter at least one user's top K. Train and
    valid items are masked when testing.

    Methods: the model alone (new items are never recommended); the model with content-placed vectors, raw
    and calibrated (:func:`~fusionrec.models.cold.calibrate_cold_scores`, ``gamma`` chosen on the valid
    half of the cold items: the smallest, i.e. the most exposure for new items, whose mean of ``metrics`` on
    all valid items is within ``tolerance`` (relative) of the best gamma's); the model with content-kNN
    scores for new items, calibrated the same way; and two baselines over the full catalogue: content-kNN
    (every item scored by its content's cosine with the user's mean content) and popularity (train counts
    for warm items, popularity predicted from content for new ones).
    """
    from fusionrec.models.cold import calibrate_cold_scores

    _check_cold_inputs(ds, model)
    if not 0 <= tolerance < 1:
        raise ConfigError(f"tolerance must be in [0, 1); got {tolerance}")
    fc = full_catalogue_split(ds, seed=seed, cold_fraction=cold_fraction, targets=targets)
    feats = ds.features if modalities is None else ds.features.select(modalities)
    n_items = fc.train.shape[1]
    cold = fc.cold
    warm = np.setdiff1d(np.arange(n_items), cold)
    t0 = time.perf_counter()
    warm_valid = fc.warm_valid()
    model.fit(
        fc.train,
        feats,
        valid=warm_valid if warm_valid.nnz else None,
        validate=VALIDATOR if warm_valid.nnz else None,
    )
    fit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    mapper = None if model.supports_cold_items else fit_content_mapper(model, feats, fc.train, reg=reg)
    V_cold = cold_item_vectors(model, {m: feats[m][cold] for m in feats}, mapper)
    # what POST /items stores: the map's vectors stretched onto the warm items' scale (no per-user step)
    V_served = V_cold if mapper is None else mapper.calibrated(V_cold)
    map_seconds = time.perf_counter() - t0
    U = np.asarray(model.user_vectors(), dtype=np.float32)
    # baselines' ingredients: content vectors, user content profiles, popularity (train, and from content)
    train_pop = np.asarray(fc.train.sum(axis=0)).ravel().astype(np.float32)
    Z = _content_matrix(feats, warm)
    deg = np.maximum(np.diff(fc.train.indptr), 1).astype(np.float32)
    profiles = np.asarray(fc.train @ Z) / deg[:, None]
    profiles /= np.maximum(np.linalg.norm(profiles, axis=1, keepdims=True), 1e-12)
    pop_map = ContentMapper().fit(feats, np.log1p(train_pop)[:, None], warm[train_pop[warm] > 0])
    popularity = np.log1p(train_pop)
    popularity[cold] = pop_map.transform({m: feats[m][cold] for m in feats})[:, 0]
    col = np.full(n_items, -1, np.int64)
    col[cold] = np.arange(len(cold))

    def scorer(method: str, part_cold: np.ndarray, exclude: sp.csr_matrix, gamma: float = 1.0):
        """Score function over warm items + ``part_cold`` (other cold items -inf) for ``method``."""
        others = np.setdiff1d(cold, part_cold)

        def fn(users: np.ndarray) -> np.ndarray:
            if method in ("content-knn", "popularity"):
                s = profiles[users] @ Z.T if method == "content-knn" else np.tile(popularity, (len(users), 1))
                s = s.astype(np.float32)
            else:
                s = model.score(users).astype(np.float32, copy=True)
                s[:, cold] = -np.inf
                if method != "warm":
                    if method.startswith("knn"):
                        raw = profiles[users] @ Z[part_cold].T
                    elif method == "model served":
                        raw = U[users] @ V_served[col[part_cold]].T
                    else:
                        raw = U[users] @ V_cold[col[part_cold]].T
                    if method.endswith("calibrated"):
                        masked = s[:, warm].copy()
                        mask_rows(masked, exclude[:, warm], users)
                        raw = calibrate_cold_scores(raw, masked, gamma)
                    s[:, part_cold] = raw
            s[:, others] = -np.inf
            return s

        return fn

    def run(method: str, part: str, gamma: float = 1.0) -> dict[str, float]:
        target = fc.test if part == "test" else fc.valid
        part_cold = fc.test_cold if part == "test" else fc.valid_cold
        exclude = (fc.train + fc.valid).tocsr() if part == "test" else fc.train
        fn = scorer(method, part_cold, exclude, gamma)
        cands = np.union1d(warm, part_cold)
        every = evaluate_scores(fn, target, exclude, metrics=metrics, candidate_items=cands).metrics
        out = {f"all {k}": v for k, v in every.items()}
        if part == "test":
            new = evaluate_scores(
                fn, _columns(target, part_cold), exclude, metrics=metrics, candidate_items=cands
            ).metrics
            out = {**{f"new {k}": v for k, v in new.items()}, **out}
            out.update(_exposure(fn, target, exclude, cands, part_cold, max(_ks(metrics))))
        return out

    chosen: dict[str, float] = {}
    for method in ("model calibrated", "knn calibrated"):
        # the mean of every metric on all valid items: steadier than one when new items are few
        valid_scores = {g: float(np.mean(list(run(method, "valid", g).values()))) for g in CALIBRATION_GAMMAS}
        best = max(valid_scores.values())
        # the most exposure for new items (smallest gamma) that costs at most `tolerance` of the best
        chosen[method] = min(g for g, v in valid_scores.items() if v >= best * (1.0 - tolerance))
        log.info(
            "full catalogue: %s gamma %s (valid mean of %s by gamma %s)",
            method,
            chosen[method],
            list(metrics),
            {g: round(v, 4) for g, v in valid_scores.items()},
        )
    labels = {
        "warm": f"{model.name} (new items never recommended)",
        "model raw": f"{model.name} + content vectors (raw scores)",
        "model served": f"{model.name} + content vectors (as served: stretched map)",
        "model calibrated": f"{model.name} + content vectors (calibrated)",
        "knn calibrated": f"{model.name} + content-knn for new items (calibrated)",
        "content-knn": "content-knn (every item)",
        "popularity": "popularity (new items: predicted from content)",
    }
    rows = []
    for method, label in labels.items():
        values = run(method, "test", chosen.get(method, 1.0))
        rows.append({"method": label, **{k: round(v, 6) for k, v in values.items()}})
    info = {
        "protocol": "full-catalogue",
        "targets": targets,
        "model": model.name,
        "params": model.get_params(),
        "seed": seed,
        "cold_fraction": cold_fraction,
        "cold_items": int(len(cold)),
        "new_items_ranked": int(len(fc.test_cold)),
        "warm_items": int(len(warm)),
        "users_with_new_items": int((np.diff(_columns(fc.test, fc.test_cold).indptr) > 0).sum()),
        "users": int((np.diff(fc.test.indptr) > 0).sum()),
        "gamma": chosen,
        "tolerance": tolerance,
        **_mapping_info(feats, mapper, fit_seconds, map_seconds),
    }
    return ColdResult(rows=rows, info=info)


def _mapping_info(feats, mapper, fit_seconds: float, map_seconds: float) -> dict[str, Any]:
    """What both protocols report about placing new items: modalities, the content map, the time taken."""
    return {
        "modalities": list(feats),
        "mapping": "model"
        if mapper is None
        else {"reg": mapper.reg_, "fit_r2": round(mapper.fit_r2_, 4), "items": mapper.n_fit_},
        "fit_seconds": round(fit_seconds, 3),
        "map_seconds": round(map_seconds, 3),
    }


def _ks(metrics: Sequence[str]) -> list[int]:
    from fusionrec.evaluation.metrics import parse_metric

    return [parse_metric(m)[1] for m in metrics]


def _exposure(
    fn, target: sp.csr_matrix, exclude: sp.csr_matrix, cands: np.ndarray, new: np.ndarray, k: int
) -> dict[str, float]:
    """Mean share of top-k slots held by ``new`` items, and the fraction of them in at least one top k."""
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    not_cand = np.ones(target.shape[1], bool)
    not_cand[cands] = False
    is_new = np.zeros(target.shape[1] + 1, bool)  # last slot: the -1 padding
    is_new[new] = True
    shares, reached = [], np.zeros(target.shape[1] + 1, bool)
    for start in range(0, len(users), 1024):
        block = users[start : start + 1024]
        s = np.asarray(fn(block), dtype=np.float32)
        mask_rows(s, exclude, block)
        s[:, not_cand] = -np.inf
        idx, _ = top_k(s, k)
        shares.append(is_new[idx].mean(axis=1))
        reached[idx[is_new[idx]]] = True
    return {
        f"share@{k}": float(np.concatenate(shares).mean()) if shares else 0.0,
        f"reach@{k}": float(reached[new].mean()) if len(new) else 0.0,
    }


def format_full_catalogue(result: ColdResult) -> str:
    """A text table of :func:`evaluate_full_catalogue`'s result."""
    cols = [k for k in result.rows[0] if k != "method"]
    width = max(len(r["method"]) for r in result.rows)
    widths = [max(8, len(c)) for c in cols]
    lines = [f"{'method':<{width}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True))]
    for r in result.rows:
        lines.append(
            f"{r['method']:<{width}}  "
            + "  ".join(f"{r[c]:>{w}.4f}" for c, w in zip(cols, widths, strict=True))
        )
    i = result.info
    lines.append(
        f"new items {i['new_items_ranked']} ranked among {i['warm_items']} warm ones for {i['users']} users "
        f"({i['users_with_new_items']} with a new item); calibration gamma {i['gamma']} (chosen on valid); "
        f"mapping {i['mapping']}"
    )
    return "\n".join(lines)


def _check_cold_inputs(ds: Dataset, model: Recommender, *, neighbours: bool = False) -> None:
    """The cold-item protocols need item features and a model that can place items it never saw
    (``neighbours``: or any model, whose new items borrow their content neighbours' scores)."""
    if not len(ds.features):
        raise DataError(
            "the cold-item protocol needs item features; attach them with --features "
            "(written by `fusionrec features`) or use data with *.npy feature files"
        )
    if not (neighbours or model.is_inner_product or model.supports_cold_items):
        raise ConfigError(
            f"model {model.name!r} neither scores by inner products nor supports cold items; "
            "choose als, bpr-torch or another factor model"
        )


# ---------------------------------------------------------------------------------------------- clones

CLONE_K = 20


def evaluate_clones(
    ds: Dataset,
    model: Recommender,
    *,
    seed: int = 2026,
    n_clones: int = 50,
    min_fans: int = 20,
    k: int = CLONE_K,
    new_item_share: float = 0.1,
    modalities: Sequence[str] | None = None,
    reg: float | None = None,
) -> ColdResult:
    """The clone protocol: do exact copies of known items, added by content only, reach the originals' fans?

    ``model`` is fitted on the 8:1:1 split's train part of ``ds`` (valid for early stopping and fusion
    weights). ``n_clones`` items with at least ``min_fans`` train users and content in every modality are
    drawn (seeded) and added again under new ids with the same feature rows and no interactions, placed
    exactly as ``POST /items`` places a new item (:func:`~fusionrec.models.cold.place_new_items`: a vector
    from the content map for inner-product models, content neighbours otherwise) — all of them at once,
    as a catalogue that grew by ``n_clones`` items. For every fan (a user with the original in train) each
    clone is ranked in the full catalogue (every warm item the fan has not seen, every clone): with the
    original hidden like the fan's other seen items (as served), and with the original left in the list
    (the clone then competes with its twin). The original's own rank (itself not hidden, no clones) is the
    reference. Reported over (fan, clone) pairs: the median rank and the share of pairs with the clone in
    the top ``k``, for raw and calibrated placement; and the top-``k`` share when ``new_item_share`` of
    each list is reserved for new items (:func:`~fusionrec.ranking.reserve_slots`, as the server does).

    The content map and the calibration are fitted on the warm items, originals included (as the server
    fits them on its catalogue): a clone's content was seen, so this measures how well placement and
    calibration carry a known signal; the full-catalogue protocol measures truly new items.
    """
    from fusionrec.models.cold import fit_neighbour_expansion, neighbour_scores, place_new_items
    from fusionrec.ranking import reserve_slots, reserved_slots

    _check_cold_inputs(ds, model, neighbours=True)
    if n_clones < 1 or min_fans < 1:
        raise ConfigError(f"n_clones and min_fans must be positive; got {n_clones} and {min_fans}")
    n_slots = reserved_slots(k, new_item_share)
    feats = ds.features if modalities is None else ds.features.select(modalities)
    split = split_dataset(ds, "ratio", seed=seed)
    train = sp.csr_matrix(split.train, dtype=np.float32)
    t0 = time.perf_counter()
    model.fit(train, feats, valid=split.valid, validate=VALIDATOR)
    fit_seconds = time.perf_counter() - t0
    n_items = train.shape[1]
    fans_of = sp.csc_matrix(train)
    n_fans = np.diff(fans_of.indptr)
    full = np.logical_and.reduce([feats.mask(m) for m in feats])
    pool = np.flatnonzero((n_fans >= min_fans) & full)
    if len(pool) == 0:
        raise DataError(
            f"no item has {min_fans} or more train users and content in every modality; lower --min-fans"
        )
    rng = np.random.default_rng(seed)
    originals = np.sort(rng.choice(pool, size=min(n_clones, len(pool)), replace=False))
    rows = {m: np.asarray(feats[m][originals], np.float32) for m in feats}
    eligible = n_fans > 0
    t0 = time.perf_counter()
    if model.is_inner_product:
        mapper = None if model.supports_cold_items else fit_content_mapper(model, feats, train, reg=reg)
        raw_v = place_new_items(model, rows, mapper=mapper, calibrated=False).vectors
        cal_v = place_new_items(model, rows, mapper=mapper, calibrated=True).vectors
        U = np.asarray(model.user_vectors(), np.float32)

        def clone_scores(users: np.ndarray, base: np.ndarray, calibrated: bool) -> np.ndarray:
            return U[users] @ (cal_v if calibrated else raw_v).T  # type: ignore[union-attr]

        calibration: dict[str, Any] = {
            "placement": "model" if mapper is None else "content map",
            "expansion": None if mapper is None else round(mapper.expansion_, 4),
        }
    else:
        unit = {m: unit_rows(np.asarray(feats[m], np.float32)) for m in feats}
        present = {m: feats.mask(m) for m in feats}
        placed = place_new_items(model, rows, unit=unit, present=present, eligible=eligible)
        expansion = fit_neighbour_expansion(model, unit, present, eligible)

        def clone_scores(users: np.ndarray, base: np.ndarray, calibrated: bool) -> np.ndarray:
            return neighbour_scores(
                base,
                placed.neighbours,  # type: ignore[arg-type]
                placed.weights,  # type: ignore[arg-type]
                expansion=expansion if calibrated else 1.0,
                eligible=eligible,
            )

        calibration = {"placement": "content neighbours", "expansion": round(expansion, 4)}
    place_seconds = time.perf_counter() - t0

    ranks: dict[str, list[np.ndarray]] = {
        key: [] for key in ("original", "raw", "raw present", "cal", "cal present")
    }
    explored: dict[str, list[np.ndarray]] = {"raw": [], "cal": []}
    for j, o in enumerate(originals):
        fans = fans_of.indices[fans_of.indptr[o] : fans_of.indptr[o + 1]].astype(np.int64)
        scores = np.asarray(model.score(fans), np.float32)[:, :n_items]
        own = scores[:, o].copy()
        base = scores.copy()
        mask_rows(base, train, fans)  # every seen item hidden, the original too (as served) ...
        present_base = base.copy()
        present_base[:, o] = own  # ... or the original left in the list
        ranks["original"].append(1 + (present_base > own[:, None]).sum(axis=1))
        for name, calibrated in (("raw", False), ("cal", True)):
            clones = clone_scores(fans, scores, calibrated)
            mine = clones[:, j]
            higher_clones = (clones > mine[:, None]).sum(axis=1)
            ranks[name].append(1 + (base > mine[:, None]).sum(axis=1) + higher_clones)
            ranks[f"{name} present"].append(1 + (present_base > mine[:, None]).sum(axis=1) + higher_clones)
            if n_slots:
                block = np.hstack([base, clones])
                top, top_scores = top_k(block, k)
                pool_idx, pool_scores = top_k(clones, n_slots)
                hit = np.zeros(len(fans), bool)
                for r in range(len(fans)):
                    items, _ = reserve_slots(
                        top[r], top_scores[r], pool_idx[r] + n_items, pool_scores[r], n_slots
                    )
                    hit[r] = (n_items + j) in items
                explored[name].append(hit)
    joined = {key: np.concatenate(v) for key, v in ranks.items()}
    labels = {
        "original": f"original ({model.name}, no clones)",
        "raw": "clone, raw content scores (before)",
        "cal": "clone, calibrated (after)",
    }
    result_rows = []
    for key, label in labels.items():
        pair_ranks = joined[key]
        row: dict[str, Any] = {
            "method": label,
            "median rank": float(np.median(pair_ranks)),
            f"top-{k} share": round(float((pair_ranks <= k).mean()), 6),
        }
        if key != "original":
            rp = joined[f"{key} present"]
            row["median rank (original present)"] = float(np.median(rp))
            row[f"top-{k} share (original present)"] = round(float((rp <= k).mean()), 6)
            if n_slots:
                row[f"top-{k} share (new-item share {new_item_share:g})"] = round(
                    float(np.concatenate(explored[key]).mean()), 6
                )
        result_rows.append(row)
    info = {
        "protocol": "clone",
        "model": model.name,
        "params": model.get_params(),
        "seed": seed,
        "clones": int(len(originals)),
        "min_fans": min_fans,
        "pairs": int(len(joined["original"])),
        "items": int(n_items),
        "k": k,
        "new_item_share": new_item_share,
        "reserved_slots": n_slots,
        "calibration": calibration,
        "modalities": list(feats),
        "fit_seconds": round(fit_seconds, 3),
        "place_seconds": round(place_seconds, 3),
    }
    return ColdResult(rows=result_rows, info=info)


def format_clones(result: ColdResult) -> str:
    """A text table of :func:`evaluate_clones`' result."""
    cols: list[str] = []
    for r in result.rows:
        cols += [c for c in r if c != "method" and c not in cols]
    width = max(len(r["method"]) for r in result.rows)
    lines = [f"{'method':<{width}}  " + "  ".join(f"{c:>{max(8, len(c))}}" for c in cols)]
    for r in result.rows:
        cells = []
        for c in cols:
            w = max(8, len(c))
            v = r.get(c)
            cells.append(f"{'—':>{w}}" if v is None else f"{v:>{w}.4g}" if "rank" in c else f"{v:>{w}.4f}")
        lines.append(f"{r['method']:<{width}}  " + "  ".join(cells))
    i = result.info
    lines.append(
        f"{i['clones']} clones of items with >= {i['min_fans']} train users, {i['pairs']} (fan, clone) pairs, "
        f"ranked among {i['items']} items + the clones; calibration {i['calibration']}; "
        f"new-item share {i['new_item_share']} ({i['reserved_slots']} of {i['k']} slots)"
    )
    return "\n".join(lines)
