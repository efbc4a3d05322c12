"""Changes to the served catalogue: adding an item at run time, taking in new interactions, forgetting a user.

All run inside :meth:`ServingState.mutating` (exclusive across threads and worker processes) and end with
:meth:`ServingState.commit` (saved atomically, then served). Items added at run time live beside the model,
not inside it: the artifact's item id map, training matrix (an empty column), features and titles grow by one
row, and ``extra_arrays`` keeps what scores the new item — its vector (inner-product models: from the
model's own ``item_vectors_from_features`` or the ridge :class:`~fusionrec.models.cold.ContentMapper`) or,
for other models, its nearest catalogue items by content, whose scores it borrows.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.artifacts import Artifact
from fusionrec.artifacts import forget_user as forget_artifact_user
from fusionrec.data.dataset import IdMap
from fusionrec.data.graph import fused_cosine
from fusionrec.errors import (
    ConfigError,
    ConflictError,
    DataError,
    FusionrecError,
    TooLargeError,
    UnsupportedError,
    UnsupportedMediaError,
)
from fusionrec.interactions import apply_interactions
from fusionrec.models.cold import ContentMapper, cold_item_vectors, fit_content_mapper
from fusionrec.ranking import top_k_items
from fusionrec.recommend import ADDED_NEIGHBOURS, ADDED_VECTORS, ADDED_WEIGHTS, user_index
from fusionrec.serving.state import ServingState, Snapshot

log = logging.getLogger("fusionrec")

MAPPER_PREFIX = "cold/"
EXTRACTOR_PREFIX = "extractor/"
# catalogue items an added item of a non-inner-product model borrows its scores from
CONTENT_NEIGHBOURS = 20
_ID_RE = re.compile(r"^[^\x00-\x1f\x7f/]{1,200}$")


def forget_user(state: ServingState, raw_user: str) -> dict[str, Any]:
    """Remove a user's id, interactions and vector from the served model and from the artifact on disk."""
    with state.mutating() as snap:
        user_index(snap.view, raw_user)
        try:
            new = forget_artifact_user(snap.art, raw_user)
        except ConfigError as e:
            raise UnsupportedError(str(e)) from None
        snap = state.commit(new, snap)
    log.info("forgot a user; %d users remain", snap.n_users)
    return {"user_id": raw_user, "forgotten": True, "users": snap.n_users, "revision": snap.revision}


def add_interactions(
    state: ServingState,
    users: Sequence[str],
    items: Sequence[str],
    times: Sequence[int | None],
) -> dict[str, Any]:
    """Apply a batch of (user, item, time) events to the served artifact (:mod:`fusionrec.interactions`)."""
    t0 = time.perf_counter()
    with state.mutating() as snap:
        applied = apply_interactions(snap.view, users, items, times)
        snap = state.commit(applied.artifact, snap)
    out = {**applied.summary(), "revision": snap.revision}
    log.info(
        "took in %d interaction(s): %d user(s) created, %d updated (%.3fs)",
        applied.events,
        applied.users_created,
        applied.users_updated,
        time.perf_counter() - t0,
    )
    return out


def add_item(
    state: ServingState,
    raw_id: str,
    *,
    title: str | None = None,
    text: str | None = None,
    image: bytes | None = None,
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
    with state.mutating() as snap:
        art = snap.art
        if raw_id in art.item_ids:
            raise ConflictError(
                f"item {raw_id!r} already exists; choose a new id (or forget nothing: "
                "items cannot be replaced)"
            )
        rows = _extract(snap, text, image)
        features = art.features.append_rows(rows)
        extra = dict(art.extra_arrays)
        info = dict(art.info)
        mapper = None
        if snap.inner_product:
            mapper = _mapper(snap, extra, info)
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
        snap = state.commit(new, snap)
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


def _extract(snap: Snapshot, text: str | None, image: bytes | None) -> dict[str, np.ndarray]:
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


def _mapper(snap: Snapshot, extra: dict[str, np.ndarray], info: dict[str, Any]) -> ContentMapper | None:
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


def _content_neighbours(snap: Snapshot, rows: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The model items nearest to new content (mean cosine over its modalities) and their weights."""
    n = snap.n_model
    unit = {m: snap.unit_features[m][:n] for m in rows}
    present = {m: snap.masks[m][:n] for m in rows}
    sims = fused_cosine(rows, unit, present)[0]
    sims[snap.popularity[:n] <= 0] = -np.inf  # items the model never saw interactions of lend no signal
    nb, top = top_k_items(sims, CONTENT_NEIGHBOURS)
    k = len(nb)
    if k <= 0:
        raise UnsupportedError("no catalogue item with interactions shares content with the new item")
    w = np.maximum(top, 0.0)
    w = w / w.sum() if w.sum() > 0 else np.full(k, 1.0 / k)
    if k < CONTENT_NEIGHBOURS:  # pad to a fixed width (weight 0) so rows stack
        nb = np.concatenate([nb, np.full(CONTENT_NEIGHBOURS - k, nb[0])])
        w = np.concatenate([w, np.zeros(CONTENT_NEIGHBOURS - k)])
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
