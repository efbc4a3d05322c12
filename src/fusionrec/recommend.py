"""The query core: every recommendation by raw ids is answered here, for the CLI, the Python API and the server.

Queries read an :class:`ArtifactView` (one artifact revision with what reads need precomputed); the server
keeps one per snapshot, the CLI builds one per call. Four queries:

- :func:`rank_user`: a known user (seen items hidden);
- :func:`rank_fold_in`: an unknown user from the items it interacted with (a set: repeats count once);
- :func:`rank_similar`: items like one item, by the model's item vectors or by one/all content modalities;
- :func:`explain`: per recommended item, the model's breakdown of its score.

:func:`recommend_for_user`, :func:`recommend_for_items` and :func:`similar_items` wrap them by raw ids and
return plain rows. Items added at run time (``serving.catalog``) live beside the model in the artifact's
``extra_arrays``: a vector for inner-product models, else the content neighbours whose scores they borrow.
So do users whose interactions arrived after fitting (:mod:`fusionrec.interactions`): an inner-product
model's user is served by its stored fold-in vector, any other model's by a fold-in of its whole history.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.artifacts import LIVE_USER_VECTORS, LIVE_USERS, Artifact
from fusionrec.data.graph import column_cosine, fused_cosine, unit_rows
from fusionrec.errors import ConfigError, DataError, UnknownItemError, UnknownUserError, UnsupportedError
from fusionrec.ranking import reserve_slots, reserved_slots, ridge_fold_in, top_k_items

log = logging.getLogger("fusionrec")

# extra_arrays keys of items added at run time (kept as written by earlier versions)
ADDED_VECTORS = "serving/added_vectors"
ADDED_NEIGHBOURS = "serving/added_neighbours"
ADDED_WEIGHTS = "serving/added_weights"
# ANN pays off while the candidates needed (k + the user's seen items) are a small part of the catalogue
ANN_MAX_FRACTION = 0.1


@dataclass
class Ranked:
    """Top items (indices into the view's catalogue) with scores, and how they were found."""

    items: np.ndarray
    scores: np.ndarray
    source: str
    user: int = -1


@dataclass
class ArtifactView:
    """One artifact revision as queries read it: vectors, seen items, unit-norm content, added items.

    ``index`` (optional) proposes candidates for inner-product queries: anything with ``kind``, ``len`` and
    ``search(query, n) -> (ids, exact scores)``; ``kind == "hnsw"`` marks an approximate one.
    """

    art: Artifact
    n_model: int
    user_vecs: np.ndarray | None
    item_vecs: np.ndarray | None
    item_unit: np.ndarray | None
    index: Any
    seen: sp.csr_matrix
    popularity: np.ndarray
    unit_features: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    titles: list[str] | None
    added_nbrs: np.ndarray | None = None
    added_wts: np.ndarray | None = None
    same_model_items: bool = False  # built from a previous revision whose model items were the same
    live: np.ndarray | None = None  # per user: served by fold-in over its history, not the model's row
    # share of each list held for items added at run time (exploration; 0: none), and the stretch that
    # puts the scores they borrow from content neighbours on the warm items' scale
    new_item_share: float = 0.0
    added_expansion: float = 1.0

    @property
    def model(self):
        return self.art.model

    @property
    def n_items(self) -> int:
        return len(self.art.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.art.user_ids)

    @property
    def revision(self) -> int:
        return int(self.art.info.get("revision", 0))

    @property
    def inner_product(self) -> bool:
        return self.item_vecs is not None

    def is_live(self, u: int) -> bool:
        """Whether user ``u`` got interactions after fitting (its list comes from a fold-in)."""
        return self.live is not None and bool(self.live[u])

    @classmethod
    def build(
        cls,
        art: Artifact,
        *,
        make_index: Callable[[np.ndarray], Any] | None = None,
        prev: ArtifactView | None = None,
        where: str = "artifact",
        new_item_share: float = 0.0,
    ) -> ArtifactView:
        """Precompute what queries read; ``prev`` (the revision before) lends what did not change.

        ``new_item_share``: up to that share of every list goes to added items (see :func:`rank_user`).
        """
        reserved_slots(10, new_item_share)  # refuse a share outside [0, 1] here, not per query
        model = art.model
        n_items = len(art.item_ids)
        n_model = int(getattr(model, "n_items_", n_items))
        n_added = n_items - n_model
        if n_added < 0:
            raise DataError(f"{where}: the model scores {n_model} items but the id map lists {n_items}")
        user_vecs = item_vecs = item_unit = index = None
        nbrs = wts = None
        same_items = False
        n_users = len(art.user_ids)
        live_idx = np.asarray(art.extra_arrays.get(LIVE_USERS, np.zeros(0, np.int64)), np.int64)
        if len(live_idx) and (live_idx.min() < 0 or live_idx.max() >= n_users):
            raise DataError(f"{where}: a live user index is outside 0..{n_users - 1}")
        n_model_users = int(getattr(model, "n_users_", n_users))
        if n_users < n_model_users or np.count_nonzero(live_idx >= n_model_users) != n_users - n_model_users:
            raise DataError(
                f"{where}: the model has {n_model_users} users and {len(live_idx)} live one(s), which do not "
                f"cover the {n_users} users of the id map"
            )
        live = np.zeros(n_users, bool)
        live[live_idx] = True
        if model.is_inner_product:
            user_vecs = np.asarray(model.user_vectors(), dtype=np.float32)
            base = np.asarray(model.item_vectors(), dtype=np.float32)
            added = np.asarray(art.extra_arrays.get(ADDED_VECTORS, np.zeros((0, base.shape[1]))), np.float32)
            if added.shape[0] != n_added:
                raise DataError(f"{where}: {n_added} added item(s) but {added.shape[0]} stored vector(s)")
            item_vecs = np.ascontiguousarray(np.vstack([base, added]))
            user_vecs = _with_live_vectors(art, user_vecs, live_idx, n_users, where)
            item_unit = unit_rows(item_vecs)
            same_items = (
                prev is not None
                and prev.item_vecs is not None
                and prev.n_model == n_model
                and np.array_equal(prev.item_vecs[:n_model], base)
            )
            if same_items:
                index = prev.index  # type: ignore[union-attr]  # added items are scored exactly beside it
            elif make_index is not None and n_model > 0:
                index = make_index(base)
        elif n_added:
            nbrs = np.asarray(art.extra_arrays.get(ADDED_NEIGHBOURS), dtype=np.int64)
            wts = np.asarray(art.extra_arrays.get(ADDED_WEIGHTS), dtype=np.float32)
            if nbrs.ndim != 2 or nbrs.shape[0] != n_added:
                raise DataError(f"{where}: {n_added} added item(s) without stored content neighbours")
        seen = sp.csr_matrix(art.train, dtype=np.float32)
        if seen.shape[1] < n_items:  # tolerate artifacts whose train matrix predates added items
            pad = sp.csr_matrix((seen.shape[0], n_items - seen.shape[1]), dtype=np.float32)
            seen = sp.hstack([seen, pad], format="csr")
        seen.sort_indices()
        # interactions per item (a rating artifact's train matrix holds rating values, not 1.0)
        popularity = np.bincount(seen.indices, minlength=seen.shape[1]).astype(np.float32)
        unit: dict[str, np.ndarray] = {}
        masks: dict[str, np.ndarray] = {}
        if art.features is not None:
            if prev is not None and prev.art.features is art.features:
                unit, masks = prev.unit_features, prev.masks
            else:
                for m in art.features:
                    unit[m] = unit_rows(art.features[m])
                    masks[m] = art.features.mask(m)
        titles = art.item_titles
        if titles is not None and len(titles) != n_items:
            titles = None
        return cls(
            art=art,
            n_model=n_model,
            user_vecs=user_vecs,
            item_vecs=item_vecs,
            item_unit=item_unit,
            index=index,
            seen=seen,
            popularity=popularity,
            unit_features=unit,
            masks=masks,
            titles=titles,
            added_nbrs=nbrs,
            added_wts=wts,
            same_model_items=bool(model.is_inner_product and same_items),
            live=live if len(live_idx) else None,
            new_item_share=float(new_item_share),
            added_expansion=float((art.info.get("cold_calibration") or {}).get("neighbour_expansion", 1.0)),
        )


def _with_live_vectors(
    art: Artifact, model_vecs: np.ndarray, live_idx: np.ndarray, n_users: int, where: str
) -> np.ndarray:
    """Every user's vector: the model's rows, replaced (or, for users added later, extended) by live ones."""
    n_model = model_vecs.shape[0]
    if not len(live_idx):
        return np.ascontiguousarray(model_vecs)
    vecs = np.asarray(art.extra_arrays.get(LIVE_USER_VECTORS, np.zeros((0, 0))), np.float32)
    if vecs.shape != (len(live_idx), model_vecs.shape[1]):
        raise DataError(
            f"{where}: {len(live_idx)} live user(s) need ({len(live_idx)}, {model_vecs.shape[1]}) vectors; "
            f"got {vecs.shape}"
        )
    out = np.zeros((n_users, model_vecs.shape[1]), np.float32)
    out[:n_model] = model_vecs
    out[live_idx] = vecs
    return out


# ---------------------------------------------------------------------------------------------- ids


def user_index(view: ArtifactView, raw_user: str) -> int:
    u = view.art.user_ids.get(raw_user)
    if u < 0:
        raise UnknownUserError(
            f"user {raw_user!r} is not in the model (known users: {view.n_users}). Fold it in from its "
            "recent items instead (POST /recommendations, or `fusionrec recommend --items`)."
        )
    return u


def item_indices(view: ArtifactView, raw_items: Sequence[str]) -> np.ndarray:
    idx = view.art.item_ids.indices(raw_items)
    unknown = [str(r) for r, i in zip(raw_items, idx, strict=True) if i < 0]
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise UnknownItemError(
            f"{len(unknown)} item id(s) are not in the catalogue: {shown}. Use ids the model knows "
            "(see GET /items/{item_id}) or add new items with POST /items first."
        )
    return np.asarray(idx, dtype=np.int64)


def item_index(view: ArtifactView, raw_item: str) -> int:
    return int(item_indices(view, [raw_item])[0])


def item_info(view: ArtifactView, raw_item: str) -> dict[str, Any]:
    i = item_index(view, raw_item)
    return {
        "item_id": str(view.art.item_ids.raw(i)),
        "title": view.titles[i] if view.titles is not None else None,
        "added": bool(i >= view.n_model),
        "interactions": int(view.popularity[i]),
        "modalities": [m for m in view.masks if view.masks[m][i]],
    }


# ---------------------------------------------------------------------------------------------- queries


def rank_user(view: ArtifactView, u: int, k: int, *, exclude_seen: bool = True) -> Ranked:
    """Top ``k`` for known user index ``u`` (its training items hidden unless ``exclude_seen`` is False).

    With ``view.new_item_share`` > 0, ``floor(share * k)`` slots go to the user's best items added at run
    time (by their calibrated scores) when fewer of them made the list on their own.
    """
    check_k(k)
    seen = _row(view.seen, u) if exclude_seen else np.empty(0, np.int64)
    if view.inner_product:
        q = view.user_vecs[u]  # type: ignore[index]
        ranked = _rank_vector(view, q, k, seen)
        scores = None
    elif view.is_live(u):  # its newer interactions are not in the model: fold its whole history in
        ranked = rank_fold_in(view, _row(view.seen, u), k, exclude_seen=exclude_seen)
        ranked.user = u
        return ranked
    else:
        scores = extend_scores(view, np.asarray(view.model.score(np.array([u])), np.float32)[0])
        ranked = _rank_scores(scores, k, seen, "exact")
        q = None
    ranked = _explore(view, ranked, k, seen, q, scores)
    ranked.user = u
    return ranked


def rank_fold_in(view: ArtifactView, item_idx: np.ndarray, k: int, *, exclude_seen: bool = True) -> Ranked:
    """Top ``k`` for an unknown user who interacted with ``item_idx``, a set: repeated items count once."""
    check_k(k)
    idx = np.unique(np.asarray(item_idx, dtype=np.int64))
    exclude = idx if exclude_seen else np.empty(0, np.int64)
    if len(idx) == 0:
        return _rank_scores(view.popularity, k, exclude, "popularity (no items given)")
    if view.inner_product:
        # the model's own ridge fold-in, over base and added items alike
        u = ridge_fold_in(view.item_vecs, idx, getattr(view.model, "reg", None))  # type: ignore[arg-type]
        ranked = _explore(view, _rank_vector(view, u, k, exclude), k, exclude, u, None)
        ranked.source = f"fold-in ({ranked.source})"
        return ranked
    scores, source = _fold_in_scores(view, idx)
    return _explore(view, _rank_scores(scores, k, exclude, source), k, exclude, None, scores)


def _fold_in_scores(view: ArtifactView, idx: np.ndarray) -> tuple[np.ndarray, str]:
    """Every item's score for an unknown user of a model without vectors, from its (unique) items."""
    base = idx[idx < view.n_model]
    if view.added_nbrs is not None:  # added items stand in through their content neighbours
        base = np.unique(
            np.concatenate([base, view.added_nbrs[idx[idx >= view.n_model] - view.n_model].ravel()])
        )
    try:
        scores = np.asarray(view.model.fold_in_user(base), np.float32)[: view.n_model]
        source = "fold-in"
    except NotImplementedError:
        scores = cooccurrence_scores(view, base)
        source = "fold-in (item co-occurrence pooling)"
    return extend_scores(view, scores), source


def score_users(view: ArtifactView, users: np.ndarray) -> np.ndarray:
    """Scores of every catalogue item (added ones included) for a block of user indices, ``(n, n_items)``,
    as :func:`rank_user` ranks them (seen items not masked)."""
    users = np.asarray(users, dtype=np.int64)
    if view.inner_product:
        return np.asarray(view.user_vecs[users] @ view.item_vecs.T, np.float32)  # type: ignore[index,union-attr]
    live = view.live[users] if view.live is not None else np.zeros(len(users), bool)
    out = np.empty((len(users), view.n_items), np.float32)
    if (~live).any():
        own = np.asarray(view.model.score(users[~live]), np.float32)[:, : view.n_model]
        out[~live] = extend_scores(view, own)
    for j in np.flatnonzero(live):  # one fold-in per user whose interactions arrived after fitting
        out[j] = _fold_in_scores(view, _row(view.seen, int(users[j])))[0]
    return out


def rank_similar(view: ArtifactView, i: int, k: int, modality: str = "all") -> Ranked:
    """Items most like item ``i``: by the model's item vectors (cosine), else by content."""
    check_k(k)
    if modality == "all":
        if view.item_unit is not None:
            sims = view.item_unit @ view.item_unit[i]
            source = "model item vectors (cosine)"
        elif view.unit_features:
            have = {m: u[i] for m, u in view.unit_features.items() if view.masks[m][i]}
            if not have:
                raise UnsupportedError("this item has no content in any modality to compare by")
            sims = fused_cosine(have, view.unit_features, view.masks)[0]
            source = "content, all modalities (mean cosine)"
        else:
            raise UnsupportedError(
                f"model {view.model.name!r} has no item vectors and the artifact holds no item features, "
                "so there is nothing to compare items by; fit a factor model or attach features"
            )
    else:
        if modality not in view.unit_features:
            have_m = sorted(view.unit_features)
            raise ConfigError(f"no modality {modality!r} in this artifact; use one of {have_m + ['all']}")
        if not view.masks[modality][i]:
            raise UnsupportedError(  # 409, declared: the request is fine, the item lacks that content
                f"item {view.art.item_ids.raw(i)!r} has no {modality} content; try another modality or 'all'"
            )
        sims = fused_cosine({modality: view.unit_features[modality][i]}, view.unit_features, view.masks)[0]
        source = f"{modality} features (cosine)"
    return _rank_scores(sims, k, np.array([i]), source)


def explain(view: ArtifactView, ranked: Ranked) -> list[dict[str, Any]]:
    """Per recommended item, its explanation: the model's ``score_parts`` where it has them, else score-only."""
    items = ranked.items
    fallback = [{"kind": "score-only", "score": float(s)} for s in ranked.scores]
    if ranked.user < 0 or view.is_live(ranked.user):  # the model's own row does not explain a live list
        return fallback
    from fusionrec.models.explain import explain_recommendations

    # items added at run time are not the model's own; -1 tells the explainer to skip them
    model_items = np.where(items < view.n_model, items, -1)[None, :]
    try:
        exp = explain_recommendations(
            view.model, np.array([ranked.user]), model_items, features=view.art.features
        )
        parts = exp.to_dicts()[0]
    except NotImplementedError:
        return fallback
    except Exception as e:  # an explainer bug must not turn a good request into an error
        log.warning("explanation failed (%s: %s); falling back to score-only", type(e).__name__, e)
        return fallback
    out = []
    for j, base in enumerate(fallback):
        contrib = parts[j] if j < len(parts) and items[j] < view.n_model else None
        if contrib:
            out.append(
                {
                    "kind": getattr(exp, "kind", "model"),
                    "score": base["score"],
                    "parts": {str(p): float(v) for p, v in contrib.items()},
                }
            )
        else:
            out.append(base)
    return out


def cooccurrence_scores(view: ArtifactView, items: np.ndarray) -> np.ndarray:
    """Item-kNN pooling for models without fold-in: summed cosine of co-occurrence with the given items."""
    if len(items) == 0:
        return view.popularity[: view.n_model].copy()
    return column_cosine(view.seen[:, : view.n_model], items)


# ---------------------------------------------------------------------------------------------- by raw ids


def view_of(source: Artifact | ArtifactView) -> ArtifactView:
    return source if isinstance(source, ArtifactView) else ArtifactView.build(source)


def rows(view: ArtifactView, ranked: Ranked, explanations: list[dict[str, Any]] | None = None) -> list[dict]:
    """``[{"rank", "item_id", "score", "title"?, "explanation"?}]`` for a ranked list."""
    raw = view.art.item_ids.raw_ids
    out = []
    for j, (i, s) in enumerate(zip(ranked.items.tolist(), ranked.scores.tolist(), strict=True)):
        row: dict[str, Any] = {"rank": j + 1, "item_id": str(raw[i]), "score": float(s)}
        if view.titles is not None:
            row["title"] = view.titles[i]
        if explanations is not None:
            row["explanation"] = explanations[j]
        out.append(row)
    return out


def recommend_for_user(
    source: Artifact | ArtifactView,
    user_id: str,
    *,
    k: int = 10,
    exclude_seen: bool = True,
    explain: bool = False,
) -> list[dict[str, Any]]:
    """Top ``k`` rows for a known raw user id."""
    view = view_of(source)
    ranked = rank_user(view, user_index(view, user_id), k, exclude_seen=exclude_seen)
    out = rows(view, ranked, _explain(view, ranked) if explain else None)
    if explain and view.model.task == "rating":
        for r, rating in zip(out, predicted_ratings(view.art, [r["score"] for r in out]), strict=True):
            r["predicted_rating"] = rating
    return out


def predicted_ratings(art: Artifact, scores: list[float]) -> list[float]:
    """A rating model's scores as ratings on the training scale (clipped to the training ratings' range)."""
    values = np.asarray(scores, dtype=np.float64)
    if art.train.nnz:
        values = np.clip(values, float(art.train.data.min()), float(art.train.data.max()))
    return [float(v) for v in values]


def recommend_for_items(
    source: Artifact | ArtifactView, item_ids: Sequence[str], *, k: int = 10, exclude_seen: bool = True
) -> list[dict[str, Any]]:
    """Top ``k`` rows for a user the model does not know, from the raw ids of the items it interacted with."""
    view = view_of(source)
    return rows(view, rank_fold_in(view, item_indices(view, list(item_ids)), k, exclude_seen=exclude_seen))


def similar_items(
    source: Artifact | ArtifactView, item_id: str, *, k: int = 10, modality: str = "all"
) -> list[dict[str, Any]]:
    """Top ``k`` rows of items like raw item ``item_id`` (``modality``: a content modality or "all")."""
    view = view_of(source)
    return rows(view, rank_similar(view, item_index(view, item_id), k, modality))


_explain = explain


def check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0:
        raise ConfigError(f"k must be a positive integer; got {k!r}")


# ---------------------------------------------------------------------------------------------- internals


def _row(m: sp.csr_matrix, r: int) -> np.ndarray:
    return m.indices[m.indptr[r] : m.indptr[r + 1]].astype(np.int64)


def _rank_scores(scores: np.ndarray, k: int, exclude: np.ndarray, source: str) -> Ranked:
    items, vals = top_k_items(scores, k, exclude)
    return Ranked(items, vals, source)


def _rank_vector(view: ArtifactView, q: np.ndarray, k: int, exclude: np.ndarray) -> Ranked:
    """Top-k for a query vector: ANN over the model's items (+ exact over added ones), or exact."""
    index = view.index
    need = k + len(exclude)
    if index is not None and index.kind == "hnsw" and need <= ANN_MAX_FRACTION * len(index):
        ids, scores = index.search(q, need)
        excluded = np.zeros(view.n_items, bool)
        excluded[exclude] = True
        keep = ~excluded[ids]
        ids, scores = ids[keep], scores[keep]
        if len(ids) >= min(k, view.n_model - len(exclude)):
            if view.n_items > view.n_model:
                tail = np.arange(view.n_model, view.n_items)
                tail_scores = view.item_vecs[view.n_model :] @ q  # type: ignore[index]
                ok = ~excluded[tail]
                ids = np.concatenate([ids, tail[ok]])
                scores = np.concatenate([scores, tail_scores[ok]])
            by_id = np.argsort(ids, kind="stable")  # so that ties go to the lower item index
            ids, scores = ids[by_id], scores[by_id]
            pos, vals = top_k_items(scores, k)
            return Ranked(ids[pos].astype(np.int64), vals, "ann")
    return _rank_scores(view.item_vecs @ q, k, exclude, "exact")  # type: ignore[operator]


def extend_scores(view: ArtifactView, base: np.ndarray) -> np.ndarray:
    """Base-model scores of one user ``(n,)`` or a block ``(b, n)`` plus the scores of added items,
    borrowed from their content neighbours (calibrated: see :func:`~fusionrec.models.cold.neighbour_scores`)."""
    from fusionrec.models.cold import neighbour_scores

    base = np.asarray(base, np.float32)
    if view.added_nbrs is None or not len(view.added_nbrs):
        return base.copy()
    added = neighbour_scores(
        base,
        view.added_nbrs,
        view.added_wts,  # type: ignore[arg-type]
        expansion=view.added_expansion,
        eligible=view.popularity[: view.n_model] > 0,
    )
    return np.concatenate([base, added], axis=-1)


def _explore(
    view: ArtifactView,
    ranked: Ranked,
    k: int,
    exclude: np.ndarray,
    q: np.ndarray | None,
    scores: np.ndarray | None,
) -> Ranked:
    """``ranked`` with the view's exploration quota of added items filled (scores: exact, calibrated)."""
    n_slots = reserved_slots(k, view.new_item_share)
    if n_slots <= 0 or view.n_items <= view.n_model:
        return ranked
    if q is not None:
        new_scores = view.item_vecs[view.n_model :] @ q  # type: ignore[index]
    else:
        new_scores = np.asarray(scores)[view.n_model :]
    excluded = exclude[exclude >= view.n_model] - view.n_model
    pool, pool_scores = top_k_items(new_scores, n_slots, excluded)
    items, vals = reserve_slots(ranked.items, ranked.scores, pool + view.n_model, pool_scores, n_slots)
    return Ranked(items, vals, ranked.source, ranked.user)
