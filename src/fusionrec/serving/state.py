"""What the server holds: one artifact in memory, read without locks, changed under locks, saved atomically.

Reads take the current :class:`Snapshot` (one attribute read) and never wait. A change (a new item, a
forgotten user) builds a new snapshot from a new artifact, writes that artifact to disk (atomic rename) and
then swaps the snapshot in, holding a thread lock and an ``flock`` on a file beside the artifact, so several
worker processes serving one artifact change it one at a time. Before answering, each request compares the
artifact's ``model.json`` (inode, mtime, size) with the one its snapshot came from and reloads when another
process changed it: a user forgotten through one worker is gone from all of them.

Items added at run time live beside the model, not inside it: the artifact's item id map, training matrix
(an empty column), features and titles grow by one row, and ``extra_arrays`` keeps what scores the new item —
its vector (inner-product models: from the model's own ``item_vectors_from_features`` or the ridge
:class:`~fusionrec.models.cold.ContentMapper`) or, for other models, its nearest catalogue items by content,
whose scores it borrows.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec import __version__
from fusionrec.artifacts import Artifact, forget_user, load_artifact, save_artifact
from fusionrec.data.dataset import IdMap
from fusionrec.errors import (
    ConfigError,
    DataError,
    FusionrecError,
    TooLargeError,
    UnknownItemError,
    UnknownUserError,
)
from fusionrec.models.cold import ContentMapper, cold_item_vectors, fit_content_mapper
from fusionrec.serving.index import ExactIndex, HNSWIndex, build_index

log = logging.getLogger("fusionrec")

ADDED_VECTORS = "serving/added_vectors"
ADDED_NEIGHBOURS = "serving/added_neighbours"
ADDED_WEIGHTS = "serving/added_weights"
MAPPER_PREFIX = "cold/"
EXTRACTOR_PREFIX = "extractor/"
N_NEIGHBOURS = 20
# ANN pays off while the candidates needed (k + the user's seen items) are a small part of the catalogue
ANN_MAX_FRACTION = 0.1
_ID_RE = re.compile(r"^[^\x00-\x1f\x7f/]{1,200}$")


class ConflictError(FusionrecError):
    """The request clashes with the current state (e.g. an item id that already exists)."""


class UnsupportedError(FusionrecError):
    """This artifact cannot do what was asked (e.g. featurise new items without recorded extractors)."""


class UnsupportedMediaError(FusionrecError):
    """An upload that is not what the endpoint accepts (e.g. not an image)."""


@dataclass
class Ranked:
    """Top items (indices into the snapshot's catalogue) with scores, and how they were found."""

    items: np.ndarray
    scores: np.ndarray
    source: str
    user: int = -1


@dataclass
class Snapshot:
    """An immutable view of one artifact revision, with everything precomputed that reads need."""

    art: Artifact
    disk_key: tuple[int, ...]
    n_model: int
    user_vecs: np.ndarray | None
    item_vecs: np.ndarray | None
    item_unit: np.ndarray | None
    index: ExactIndex | HNSWIndex | None
    seen: sp.csr_matrix
    popularity: np.ndarray
    unit_features: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    titles: list[str] | None
    added_nbrs: np.ndarray | None = None
    added_wts: np.ndarray | None = None
    mapper: ContentMapper | None = None
    loaded_at: float = field(default_factory=time.time)

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


# ---------------------------------------------------------------------------------------------- state


class ServingState:
    """The artifact at ``path`` as served: queries, fold-in, similar items, adding items, forgetting users.

    Parameters
    ----------
    path
        Artifact directory (written by ``fusionrec fit``); changes are saved back to it.
    index
        "auto"/"hnsw" (faiss HNSW for inner-product models) or "exact".
    watch
        Reload when another process changed the artifact on disk (checked per request by one ``stat``).
    """

    def __init__(self, path: str | Path, *, index: str = "auto", watch: bool = True) -> None:
        if index not in ("auto", "hnsw", "exact"):
            raise ConfigError(f"unknown index {index!r}; choose auto, hnsw or exact")
        self.path = Path(path)
        self.index_kind = index
        self.watch = watch
        self._lock = threading.RLock()
        self._lock_path = self.path.parent / f".{self.path.name}.lock"
        with self._file_lock():
            self._snap = self._load()

    # ------------------------------------------------------------------ snapshots
    def current(self) -> Snapshot:
        """The snapshot to answer from (reloaded first if the artifact changed on disk)."""
        snap = self._snap
        if self.watch and _disk_key(self.path) != snap.disk_key:
            # the writer holds the file lock until its rename is complete: never read a half-swapped artifact
            with self._lock, self._file_lock():
                if _disk_key(self.path) != self._snap.disk_key:
                    log.info("artifact %s changed on disk; reloading", self.path)
                    self._snap = self._load()
                snap = self._snap
        return snap

    def _load(self) -> Snapshot:
        key = _disk_key(self.path)
        return self._build(load_artifact(self.path), key)

    def _build(self, art: Artifact, disk_key: tuple[int, ...], prev: Snapshot | None = None) -> Snapshot:
        model = art.model
        n_items = len(art.item_ids)
        n_model = int(getattr(model, "n_items_", n_items))
        n_added = n_items - n_model
        if n_added < 0:
            raise DataError(f"{self.path}: the model scores {n_model} items but the id map lists {n_items}")
        user_vecs = item_vecs = item_unit = index = mapper = None
        nbrs = wts = None
        if model.is_inner_product:
            user_vecs = np.ascontiguousarray(model.user_vectors(), dtype=np.float32)
            base = np.asarray(model.item_vectors(), dtype=np.float32)
            added = np.asarray(art.extra_arrays.get(ADDED_VECTORS, np.zeros((0, base.shape[1]))), np.float32)
            if added.shape[0] != n_added:
                raise DataError(f"{self.path}: {n_added} added item(s) but {added.shape[0]} stored vector(s)")
            item_vecs = np.ascontiguousarray(np.vstack([base, added]))
            item_unit = item_vecs / np.maximum(np.linalg.norm(item_vecs, axis=1, keepdims=True), 1e-12)
            same_items = (
                prev is not None
                and prev.item_vecs is not None
                and prev.n_model == n_model
                and np.array_equal(prev.item_vecs[:n_model], base)
            )
            if same_items:
                # the model's items did not change: keep the index (added items are scored exactly) and map
                index, mapper = prev.index, prev.mapper  # type: ignore[union-attr]
            elif self.index_kind != "exact" and n_model > 0:
                index = build_index(base, "hnsw")
        elif n_added:
            nbrs = np.asarray(art.extra_arrays.get(ADDED_NEIGHBOURS), dtype=np.int64)
            wts = np.asarray(art.extra_arrays.get(ADDED_WEIGHTS), dtype=np.float32)
            if nbrs.ndim != 2 or nbrs.shape[0] != n_added:
                raise DataError(f"{self.path}: {n_added} added item(s) without stored content neighbours")
        seen = sp.csr_matrix(art.train, dtype=np.float32)
        if seen.shape[1] < n_items:  # tolerate artifacts whose train matrix predates added items
            pad = sp.csr_matrix((seen.shape[0], n_items - seen.shape[1]), dtype=np.float32)
            seen = sp.hstack([seen, pad], format="csr")
        seen.sort_indices()
        popularity = np.asarray(seen.sum(axis=0)).ravel().astype(np.float32)
        unit, masks = {}, {}
        if art.features is not None:
            if prev is not None and prev.art.features is art.features:
                unit, masks = prev.unit_features, prev.masks
            else:
                for m in art.features:
                    x = np.asarray(art.features[m], dtype=np.float32)
                    unit[m] = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
                    masks[m] = art.features.mask(m)
        titles = art.item_titles
        if titles is not None and len(titles) != n_items:
            titles = None
        return Snapshot(
            art=art,
            disk_key=disk_key,
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
            mapper=mapper,
        )

    # ------------------------------------------------------------------ reads
    def describe(self) -> dict[str, Any]:
        snap = self.current()
        art = snap.art
        return {
            "package_version": __version__,
            "artifact_package_version": art.info.get("package_version"),
            "model": snap.model.name,
            "params": snap.model.get_params(),
            "data_fingerprint": art.info.get("data_fingerprint"),
            "data_name": art.info.get("data_name"),
            "revision": snap.revision,
            "users": snap.n_users,
            "items": snap.n_items,
            "added_items": snap.n_items - snap.n_model,
            "modalities": sorted(snap.unit_features),
            "index": snap.index.kind if snap.index is not None else "exact",
        }

    def user_index(self, snap: Snapshot, raw_user: str) -> int:
        u = snap.art.user_ids.get(raw_user)
        if u < 0:
            raise UnknownUserError(
                f"user {raw_user!r} is not in the model (known users: {snap.n_users}). Fold it in with "
                "POST /recommendations and its recent items."
            )
        return u

    def item_indices(self, snap: Snapshot, raw_items: Sequence[str]) -> np.ndarray:
        idx = snap.art.item_ids.indices(raw_items)
        unknown = [str(r) for r, i in zip(raw_items, idx, strict=True) if i < 0]
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            raise UnknownItemError(
                f"{len(unknown)} item id(s) are not in the catalogue: {shown}. Use ids the model knows "
                "(see GET /items/{item_id}) or add new items with POST /items first."
            )
        return idx

    def item_index(self, snap: Snapshot, raw_item: str) -> int:
        return int(self.item_indices(snap, [raw_item])[0])

    def recommend_user(self, raw_user: str, k: int, *, exclude_seen: bool = True) -> tuple[Snapshot, Ranked]:
        snap = self.current()
        u = self.user_index(snap, raw_user)
        seen = _row(snap.seen, u) if exclude_seen else np.empty(0, np.int64)
        if snap.inner_product:
            ranked = _rank_vector(snap, snap.user_vecs[u], k, seen)  # type: ignore[index]
        else:
            scores = _extend_scores(snap, np.asarray(snap.model.score(np.array([u])), np.float32)[0])
            ranked = _rank_scores(scores, k, seen, "exact")
        ranked.user = u
        return snap, ranked

    def recommend_items(
        self, raw_items: Sequence[str], k: int, *, exclude_seen: bool = True
    ) -> tuple[Snapshot, Ranked]:
        """Recommendations for an unknown user known by the items it interacted with (fold-in)."""
        snap = self.current()
        idx = np.unique(self.item_indices(snap, list(raw_items))) if len(raw_items) else np.empty(0, np.int64)
        exclude = idx if exclude_seen else np.empty(0, np.int64)
        if len(idx) == 0:
            return snap, _rank_scores(snap.popularity.copy(), k, exclude, "popularity (no items given)")
        if snap.inner_product:
            V = snap.item_vecs[idx].astype(np.float64)  # type: ignore[index]
            # the same ridge solve as FactorModel.fold_in_user, over base and added items alike
            reg = float(getattr(snap.model, "reg", 0.01) or 0.01) * max(1, len(idx))
            u = np.linalg.solve(V.T @ V + reg * np.eye(V.shape[1]), V.sum(axis=0)).astype(np.float32)
            ranked = _rank_vector(snap, u, k, exclude)
            ranked.source = f"fold-in ({ranked.source})"
            return snap, ranked
        base = idx[idx < snap.n_model]
        if snap.added_nbrs is not None:  # added items stand in through their content neighbours
            base = np.unique(
                np.concatenate([base, snap.added_nbrs[idx[idx >= snap.n_model] - snap.n_model].ravel()])
            )
        try:
            scores = np.asarray(snap.model.fold_in_user(base), np.float32)[: snap.n_model]
            source = "fold-in"
        except NotImplementedError:
            scores = _cooccurrence_scores(snap, base)
            source = "fold-in (item co-occurrence pooling)"
        return snap, _rank_scores(_extend_scores(snap, scores), k, exclude, source)

    def similar_items(self, raw_item: str, k: int, modality: str = "all") -> tuple[Snapshot, Ranked]:
        snap = self.current()
        i = self.item_index(snap, raw_item)
        if modality == "all":
            if snap.item_unit is not None:
                sims = snap.item_unit @ snap.item_unit[i]
                source = "model item vectors (cosine)"
            elif snap.unit_features:
                sims = _fused_similarity(snap, i)
                source = "content, all modalities (mean cosine)"
            else:
                raise UnsupportedError(
                    f"model {snap.model.name!r} has no item vectors and the artifact holds no item features, "
                    "so there is nothing to compare items by; fit a factor model or attach features"
                )
        else:
            if modality not in snap.unit_features:
                have = sorted(snap.unit_features)
                raise ConfigError(f"no modality {modality!r} in this artifact; use one of {have + ['all']}")
            if not snap.masks[modality][i]:
                raise UnsupportedError(
                    f"item {raw_item!r} has no {modality} content; try another modality or 'all'"
                )
            sims = snap.unit_features[modality] @ snap.unit_features[modality][i]
            sims = np.where(snap.masks[modality], sims, -np.inf)
            source = f"{modality} features (cosine)"
        sims = np.asarray(sims, np.float32).copy()
        return snap, _rank_scores(sims, k, np.array([i]), source)

    def item_info(self, raw_item: str) -> dict[str, Any]:
        snap = self.current()
        i = self.item_index(snap, raw_item)
        return {
            "item_id": str(snap.art.item_ids.raw(i)),
            "title": snap.titles[i] if snap.titles is not None else None,
            "added": bool(i >= snap.n_model),
            "interactions": int(snap.popularity[i]),
            "modalities": [m for m in snap.masks if snap.masks[m][i]],
        }

    # ------------------------------------------------------------------ changes
    @contextmanager
    def _mutating(self) -> Iterator[Snapshot]:
        """Exclusive access across threads and processes, starting from the newest artifact on disk."""
        with self._lock, self._file_lock():
            if _disk_key(self.path) != self._snap.disk_key:
                self._snap = self._load()
            yield self._snap

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        with open(self._lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _commit(self, art: Artifact, prev: Snapshot) -> Snapshot:
        art.info["revision"] = int(prev.art.info.get("revision", 0)) + 1
        save_artifact(art, self.path)
        snap = self._build(art, _disk_key(self.path), prev)
        self._snap = snap
        return snap

    def forget_user(self, raw_user: str) -> dict[str, Any]:
        """Remove a user's id, interactions and vector from the served model and from the artifact on disk."""
        with self._mutating() as snap:
            self.user_index(snap, raw_user)
            try:
                new = forget_user(snap.art, raw_user)
            except ConfigError as e:
                raise UnsupportedError(str(e)) from None
            snap = self._commit(new, snap)
        log.info("forgot a user; %d users remain", snap.n_users)
        return {"user_id": raw_user, "forgotten": True, "users": snap.n_users, "revision": snap.revision}

    def add_item(
        self, raw_id: str, *, title: str | None = None, text: str | None = None, image: bytes | None = None
    ) -> dict[str, Any]:
        """Featurise a new item, give it a vector (or content neighbours) and persist it with the artifact."""
        raw_id = str(raw_id).strip()
        if not _ID_RE.match(raw_id):
            raise ConfigError("item id must be 1–200 characters without '/' or control characters")
        if text is not None and not text.strip():
            text = None
        if text is None and title:
            text = title
        if text is None and image is None:
            raise DataError("give the new item some content: a text (or title) and/or an image file")
        if image is not None:
            _check_image(image)
        with self._mutating() as snap:
            art = snap.art
            if raw_id in art.item_ids:
                raise ConflictError(
                    f"item {raw_id!r} already exists; choose a new id (or forget nothing: "
                    "items cannot be replaced)"
                )
            rows = self._extract(snap, text, image)
            features = art.features.append_rows(rows)
            extra = dict(art.extra_arrays)
            info = dict(art.info)
            mapper = None
            if snap.inner_product:
                mapper = self._mapper(snap, extra, info)
                vec = cold_item_vectors(art.model, {m: v[None, :] for m, v in rows.items()}, mapper)
                prev = extra.get(ADDED_VECTORS)
                extra[ADDED_VECTORS] = vec.astype(np.float32) if prev is None else np.vstack([prev, vec])
            else:
                nb, wt = _content_neighbours(snap, rows)
                for key, new in ((ADDED_NEIGHBOURS, nb), (ADDED_WEIGHTS, wt)):
                    prev = extra.get(key)
                    extra[key] = new[None, :] if prev is None else np.vstack([prev, new[None, :]])
            titles = list(snap.titles) if snap.titles is not None else [str(r) for r in art.item_ids]
            titles.append(title or raw_id)
            info["item_titles"] = titles
            info["added_items"] = int(info.get("added_items", 0)) + 1
            empty = sp.csr_matrix((art.train.shape[0], 1), dtype=np.float32)
            train = sp.hstack([sp.csr_matrix(art.train), empty], format="csr")
            new = Artifact(
                model=art.model,
                user_ids=art.user_ids,
                item_ids=IdMap([*art.item_ids, raw_id]),
                train=train,
                features=features,
                info=info,
                extra_arrays=extra,
            )
            snap = self._commit(new, snap)
            if mapper is not None:
                snap.mapper = mapper
        log.info("added item %r (%s)", raw_id, ", ".join(sorted(rows)))
        return {
            "item_id": raw_id,
            "title": title or raw_id,
            "modalities": sorted(rows),
            "missing_modalities": sorted(set(snap.unit_features) - set(rows)),
            "items": snap.n_items,
            "revision": snap.revision,
        }

    def _extract(self, snap: Snapshot, text: str | None, image: bytes | None) -> dict[str, np.ndarray]:
        art = snap.art
        if art.features is None or not len(art.features):
            raise UnsupportedError(
                "this artifact holds no item features, so a new item cannot be placed by "
                "its content; fit on data with features (`fusionrec features`)"
            )
        configs = dict(art.info.get("feature_extractors") or {})
        configs = {m: c for m, c in configs.items() if m in art.features}
        if not configs:
            raise UnsupportedError(
                "this artifact does not record how its item features were made (no feature_extractors in "
                "model.json), so new items cannot be featurised the same way; fit it on features written by "
                "`fusionrec features`"
            )
        from fusionrec.features import extract_item_features

        out: dict[str, np.ndarray] = {}
        for m, cfg in configs.items():
            state = {
                k[len(f"{EXTRACTOR_PREFIX}{m}/") :]: v
                for k, v in art.extra_arrays.items()
                if k.startswith(f"{EXTRACTOR_PREFIX}{m}/")
            }
            cfg = dict(cfg)
            if state:
                cfg.pop("state", None)
            elif cfg.get("state"):
                log.warning("modality %r: its extractor's learned state is not in the artifact; skipped", m)
                continue
            try:
                got = extract_item_features(
                    {m: cfg}, text=text, image_bytes_or_path=image, states={m: state} if state else None
                )
            except (FusionrecError, OSError, ImportError) as e:
                log.warning("modality %r: cannot rebuild its extractor (%s); skipped", m, e)
                continue
            if m in got:
                v = np.asarray(got[m], np.float32).ravel()
                if v.shape[0] != art.features.dims[m] or not np.isfinite(v).all():
                    log.warning(
                        "modality %r: extractor gave %d dims, features have %d; skipped",
                        m,
                        v.shape[0],
                        art.features.dims[m],
                    )
                    continue
                out[m] = v
        if not out:  # the upload was well-formed but its content is unusable: 415, as for a non-image
            raise UnsupportedMediaError(
                "no modality could be extracted from the given content (modalities: "
                f"{sorted(configs)}); send text for text modalities and a readable image for image ones"
            )
        return out

    def _mapper(
        self, snap: Snapshot, extra: dict[str, np.ndarray], info: dict[str, Any]
    ) -> ContentMapper | None:
        """The content → vector map of a model without its own cold-item support (fitted once, stored)."""
        model = snap.model
        if model.supports_cold_items:
            return None
        if snap.mapper is not None:
            return snap.mapper
        meta = info.get("cold_mapper")
        if meta and f"{MAPPER_PREFIX}weights" in extra:
            return ContentMapper.from_arrays(extra, meta, prefix=MAPPER_PREFIX)
        feats = snap.art.features
        assert feats is not None
        t0 = time.perf_counter()
        mapper = fit_content_mapper(
            model,
            {m: feats[m][: snap.n_model] for m in feats},
            sp.csr_matrix(snap.art.train)[:, : snap.n_model],
        )
        arrays, meta = mapper.to_arrays(MAPPER_PREFIX)
        extra.update(arrays)
        info["cold_mapper"] = meta
        log.info("fitted the content mapping in %.2fs", time.perf_counter() - t0)
        return mapper

    # ------------------------------------------------------------------ explanations
    def explain(self, snap: Snapshot, ranked: Ranked) -> list[dict[str, Any]]:
        """Per recommended item, its explanation: the model's own when it has one, else score-only."""
        items = ranked.items
        fallback = [{"kind": "score-only", "score": float(s)} for s in ranked.scores]
        if ranked.user < 0:
            return fallback
        try:
            from fusionrec.models.explain import explain_recommendations
        except ImportError:
            return fallback
        # items added at run time are not the model's own; -1 tells the explainer to skip them
        model_items = np.where(items < snap.n_model, items, -1)[None, :]
        try:
            exp = explain_recommendations(
                snap.model, np.array([ranked.user]), model_items, features=snap.art.features
            )
            parts = exp.to_dicts()[0]
        except NotImplementedError:
            return fallback
        except Exception as e:  # an explainer bug must not turn a good request into a 500
            log.warning("explanation failed (%s: %s); falling back to score-only", type(e).__name__, e)
            return fallback
        out = []
        for j, base in enumerate(fallback):
            contrib = parts[j] if j < len(parts) and items[j] < snap.n_model else None
            if contrib:
                out.append(
                    {
                        "kind": getattr(exp, "kind", "model"),
                        "score": base["score"],
                        "parts": {str(k): float(v) for k, v in contrib.items()},
                    }
                )
            else:
                out.append(base)
        return out


# ---------------------------------------------------------------------------------------------- helpers


def _disk_key(path: Path) -> tuple[int, ...]:
    try:
        st = os.stat(path / "model.json")
    except FileNotFoundError:
        return (0, 0, 0)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _row(m: sp.csr_matrix, r: int) -> np.ndarray:
    return m.indices[m.indptr[r] : m.indptr[r + 1]].astype(np.int64)


def _rank_scores(scores: np.ndarray, k: int, exclude: np.ndarray, source: str) -> Ranked:
    scores = np.asarray(scores, np.float32)
    if len(exclude):
        scores[exclude] = -np.inf
    finite = np.isfinite(scores)
    kk = min(k, int(finite.sum()))
    if kk <= 0:
        return Ranked(np.empty(0, np.int64), np.empty(0, np.float32), source)
    if kk < len(scores):
        cut = scores[np.argpartition(-scores, kk - 1)[:kk]].min()
        idx = np.flatnonzero(scores >= cut)  # every item tied at the cut competes, not an arbitrary few
    else:
        idx = np.flatnonzero(finite)
    order = np.lexsort((idx, -scores[idx]))  # score desc, index asc on ties: deterministic
    idx = idx[order][:kk]
    return Ranked(idx.astype(np.int64), scores[idx], source)


def _rank_vector(snap: Snapshot, q: np.ndarray, k: int, exclude: np.ndarray) -> Ranked:
    """Top-k for a query vector: ANN over the model's items (+ exact over added ones), or exact."""
    index = snap.index
    need = k + len(exclude)
    if isinstance(index, HNSWIndex) and need <= ANN_MAX_FRACTION * len(index):
        ids, scores = index.search(q, need)
        excluded = np.zeros(snap.n_items, bool)
        excluded[exclude] = True
        if len(exclude):
            keep = ~excluded[ids]
            ids, scores = ids[keep], scores[keep]
        if len(ids) >= min(k, snap.n_model - len(exclude)):
            if snap.n_items > snap.n_model:
                tail = np.arange(snap.n_model, snap.n_items)
                tail_scores = snap.item_vecs[snap.n_model :] @ q  # type: ignore[index]
                ok = ~excluded[tail]
                ids = np.concatenate([ids, tail[ok]])
                scores = np.concatenate([scores, tail_scores[ok]])
            order = np.lexsort((ids, -scores))[:k]
            return Ranked(ids[order], scores[order].astype(np.float32), "ann")
    scores = snap.item_vecs @ q  # type: ignore[operator]
    return _rank_scores(scores, k, exclude, "exact")


def _extend_scores(snap: Snapshot, base: np.ndarray) -> np.ndarray:
    """Base-model scores plus scores of added items, borrowed from their content neighbours."""
    base = np.asarray(base, np.float32)
    if snap.added_nbrs is None or not len(snap.added_nbrs):
        return base.copy()
    added = (base[snap.added_nbrs] * snap.added_wts).sum(axis=1)
    return np.concatenate([base, added.astype(np.float32)])


def _cooccurrence_scores(snap: Snapshot, items: np.ndarray) -> np.ndarray:
    """Item-kNN pooling for models without fold-in: summed cosine of co-occurrence with the given items."""
    X = snap.seen[:, : snap.n_model].tocsc()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=0)).ravel()) + 1e-12
    if len(items) == 0:
        return snap.popularity[: snap.n_model].copy()
    users = X[:, items] @ (1.0 / norms[items])
    scores = np.asarray(X.T @ users).ravel() / norms
    return scores.astype(np.float32)


def _fused_similarity(snap: Snapshot, i: int) -> np.ndarray:
    total = np.zeros(snap.n_items, np.float32)
    count = np.zeros(snap.n_items, np.float32)
    for m, unit in snap.unit_features.items():
        if not snap.masks[m][i]:
            continue
        ok = snap.masks[m]
        total += np.where(ok, unit @ unit[i], 0.0)
        count += ok
    if not count.any():
        raise UnsupportedError("this item has no content in any modality to compare by")
    return np.where(count > 0, total / np.maximum(count, 1), -np.inf).astype(np.float32)


def _content_neighbours(snap: Snapshot, rows: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The model items nearest to new content (mean cosine over its modalities) and their weights."""
    n = snap.n_model
    total = np.zeros(n, np.float32)
    count = np.zeros(n, np.float32)
    for m, v in rows.items():
        unit = snap.unit_features[m][:n]
        q = v / max(float(np.linalg.norm(v)), 1e-12)
        ok = snap.masks[m][:n]
        total += np.where(ok, unit @ q, 0.0)
        count += ok
    sims = np.where(count > 0, total / np.maximum(count, 1), -np.inf)
    sims[snap.popularity[:n] <= 0] = -np.inf  # items the model never saw interactions of lend no signal
    k = min(N_NEIGHBOURS, int(np.isfinite(sims).sum()))
    if k <= 0:
        raise UnsupportedError("no catalogue item with interactions shares content with the new item")
    nb = np.argpartition(-sims, k - 1)[:k]
    w = np.maximum(sims[nb], 0.0)
    w = w / w.sum() if w.sum() > 0 else np.full(k, 1.0 / k)
    if k < N_NEIGHBOURS:  # pad to a fixed width (weight 0) so rows stack
        nb = np.concatenate([nb, np.full(N_NEIGHBOURS - k, nb[0])])
        w = np.concatenate([w, np.zeros(N_NEIGHBOURS - k)])
    return nb.astype(np.int64), w.astype(np.float32)


def _check_image(data: bytes) -> None:
    """Refuse uploads that are not decodable images (415), before any extractor sees them."""
    from fusionrec.features.images import ImageDecodeError, ImageTooLargeError, open_rgb

    try:
        open_rgb(data)
    except ImageTooLargeError as e:  # a decompression bomb is refused from its header, before decoding
        raise TooLargeError(f"the image upload is too large: {e}") from None
    except ImageDecodeError as e:
        raise UnsupportedMediaError(
            f"the image upload is not a readable image ({e}); send a JPEG, PNG or WebP file"
        ) from None
