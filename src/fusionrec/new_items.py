"""Adding an item to a fitted artifact by its content: the one implementation behind ``POST /items`` and
:meth:`fusionrec.Recommender.add_item`.

Items added at run time live beside the model, not inside it: the artifact's item id map, training matrix
(an empty column), features and titles grow by one row, and ``extra_arrays`` keeps what scores the new item —
its vector (inner-product models: from the model's own ``item_vectors_from_features`` or the ridge
:class:`~fusionrec.models.cold.ContentMapper`, stretched onto the warm items' scale) or, for other models,
its nearest catalogue items by content, whose scores it borrows (stretched the same way at query time).
The placement itself is :func:`fusionrec.models.cold.place_new_items`, which the clone protocol
(``fusionrec cold --protocol clone``) measures.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.artifacts import Artifact
from fusionrec.data.dataset import IdMap
from fusionrec.data.graph import unit_rows
from fusionrec.errors import (
    ConfigError,
    ConflictError,
    DataError,
    FusionrecError,
    TooLargeError,
    UnsupportedError,
    UnsupportedMediaError,
)
from fusionrec.models.cold import (
    ContentMapper,
    fit_content_mapper,
    fit_neighbour_expansion,
    place_new_items,
)
from fusionrec.recommend import ADDED_NEIGHBOURS, ADDED_VECTORS, ADDED_WEIGHTS

log = logging.getLogger("fusionrec")

MAPPER_PREFIX = "cold/"
EXTRACTOR_PREFIX = "extractor/"
_ID_RE = re.compile(r"^[^\x00-\x1f\x7f/]{1,200}$")


@dataclass
class AddedItem:
    """The artifact with the new item, what was extracted for it, and the content map (to reuse)."""

    artifact: Artifact
    item_id: str
    title: str
    modalities: list[str]
    mapper: ContentMapper | None


def add_item(
    art: Artifact,
    raw_id: str,
    *,
    title: str | None = None,
    text: str | None = None,
    image: bytes | str | None = None,
    features: Mapping[str, np.ndarray] | None = None,
    mapper: ContentMapper | None = None,
    neighbour_expansion: float | None = None,
    unit_features: Mapping[str, np.ndarray] | None = None,
) -> AddedItem:
    """``art`` with one more item, placed by its content; ``art`` itself is left unchanged.

    ``text``/``image`` are featurised with the artifact's own extractors; ``features`` gives the rows
    directly instead (``{modality: (d,)}``). ``mapper`` / ``neighbour_expansion``: the placement fitted on
    this artifact's model before (:func:`prepare`; fitted here otherwise); either is stored in the artifact.
    ``unit_features``: the catalogue's unit-norm feature rows, when the caller holds them already (a query
    view does), so they are not normalised again per item.
    """
    raw_id = str(raw_id).strip()
    if not _ID_RE.match(raw_id):
        raise ConfigError("item id must be 1–200 characters without '/' or control characters")
    if features is None:
        if text is not None and not text.strip():
            text = None
        if text is None and title:
            text = title
        if text is None and image is None:
            raise DataError("give the new item some content: a text (or title) and/or an image file")
        if isinstance(image, bytes):
            check_image(image)
    if raw_id in art.item_ids:
        raise ConflictError(
            f"item {raw_id!r} already exists; choose a new id (or forget nothing: items cannot be replaced)"
        )
    rows = _given_rows(art, features) if features is not None else extract_rows(art, text, image)
    model = art.model
    n_model = int(getattr(model, "n_items_", len(art.item_ids)))
    extra = dict(art.extra_arrays)
    info = dict(art.info)
    feats = art.features
    assert feats is not None  # checked by _given_rows / extract_rows
    if model.is_inner_product:
        mapper = _mapper(art, mapper, extra, info, n_model)
        placed = place_new_items(model, {m: v[None, :] for m, v in rows.items()}, mapper=mapper)
        prev = extra.get(ADDED_VECTORS)
        vec = placed.vectors
        assert vec is not None
        extra[ADDED_VECTORS] = vec if prev is None else np.vstack([prev, vec])
    else:
        given = unit_features or {}
        unit = {m: (given[m] if m in given else unit_rows(feats[m]))[:n_model] for m in rows}
        present = {m: feats.mask(m)[:n_model] for m in rows}
        eligible = _popular(art, n_model) > 0
        placed = place_new_items(
            model, {m: v[None, :] for m, v in rows.items()}, unit=unit, present=present, eligible=eligible
        )
        for key, new in ((ADDED_NEIGHBOURS, placed.neighbours), (ADDED_WEIGHTS, placed.weights)):
            prev = extra.get(key)
            extra[key] = new if prev is None else np.vstack([prev, new])
        if "cold_calibration" not in info:
            if neighbour_expansion is None:
                neighbour_expansion = _neighbour_expansion(art, n_model, eligible)
            info["cold_calibration"] = {"neighbour_expansion": float(neighbour_expansion)}
    titles = list(art.item_titles) if art.item_titles is not None else [str(r) for r in art.item_ids]
    if len(titles) != len(art.item_ids):
        titles = [str(r) for r in art.item_ids]
    titles.append(title or raw_id)
    info["item_titles"] = titles
    info["added_items"] = int(info.get("added_items", 0)) + 1
    empty = sp.csr_matrix((art.train.shape[0], 1), dtype=np.float32)
    new = Artifact(
        model=model,
        user_ids=art.user_ids,
        item_ids=IdMap([*art.item_ids, raw_id]),
        train=sp.hstack([sp.csr_matrix(art.train), empty], format="csr"),
        features=feats.append_rows(rows),
        info=info,
        extra_arrays=extra,
    )
    log.info("added item %r (%s)", raw_id, ", ".join(sorted(rows)))
    return AddedItem(new, raw_id, title or raw_id, sorted(rows), mapper)


@dataclass
class Prepared:
    """What :func:`prepare` readied: seconds per step, the content map, the neighbour-score stretch."""

    seconds: dict[str, float]
    mapper: ContentMapper | None = None
    neighbour_expansion: float | None = None


def prepare(art: Artifact, mapper: ContentMapper | None = None) -> Prepared:
    """What the first new item would otherwise wait for: every extractor built and run once
    (:func:`warm_extractors`), and the placement fitted — the content map (inner-product models without
    their own cold-item support) or the stretch of borrowed neighbour scores (models without item vectors);
    kept in memory and stored with the first added item. An artifact without features has nothing to
    prepare."""
    seconds: dict[str, float] = {}
    if art.features is None or not len(art.features):
        return Prepared(seconds, mapper)
    try:
        seconds.update(warm_extractors(art))
    except UnsupportedError as e:
        log.info("new items: %s", e)
    model = art.model
    if model.is_inner_product and not model.supports_cold_items and mapper is None:
        t0 = time.perf_counter()
        n_model = int(getattr(model, "n_items_", len(art.item_ids)))
        # stored with the first item added (copies here: the artifact on disk is not rewritten at start)
        mapper = _mapper(art, None, dict(art.extra_arrays), dict(art.info), n_model)
        seconds["content map"] = round(time.perf_counter() - t0, 3)
    expansion = None
    if not model.is_inner_product and "cold_calibration" not in art.info:
        t0 = time.perf_counter()
        n_model = int(getattr(model, "n_items_", len(art.item_ids)))
        expansion = _neighbour_expansion(art, n_model, _popular(art, n_model) > 0)
        seconds["score calibration"] = round(time.perf_counter() - t0, 3)
    return Prepared(seconds, mapper, expansion)


def warm_extractors(art: Artifact) -> dict[str, float]:
    """Build every extractor the artifact's features were made with and run each once on a tiny input,
    so the first new item does not pay for loading models (or exporting them to ONNX, cached on disk
    across restarts). Returns the seconds per modality; a modality that cannot be built is logged and
    left out (``POST /items`` then skips it, as it would have)."""
    from fusionrec.features import extract_item_features

    seconds: dict[str, float] = {}
    for m, (cfg, state) in _extractor_configs(art).items():
        kind = cfg.get("reads") or cfg.get("kind")
        t0 = time.perf_counter()
        try:
            if kind == "text":
                extract_item_features({m: cfg}, text="warm-up", states={m: state} if state else None)
            elif kind == "image":
                extract_item_features(
                    {m: cfg}, image_bytes_or_path=_tiny_png(), states={m: state} if state else None
                )
            else:
                continue  # audio/video extractors read files; nothing to warm from memory
        except (FusionrecError, OSError, ImportError) as e:
            log.warning("modality %r: cannot build its extractor (%s); new items will lack it", m, e)
            continue
        seconds[m] = round(time.perf_counter() - t0, 3)
    if seconds:
        log.info("extractors ready: %s", ", ".join(f"{m} {s:.1f}s" for m, s in seconds.items()))
    return seconds


# ---------------------------------------------------------------------------------------------- internals


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (128, 96, 64)).save(buf, format="PNG")
    return buf.getvalue()


def _given_rows(art: Artifact, features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if art.features is None or not len(art.features):
        raise UnsupportedError(_NO_FEATURES)
    rows: dict[str, np.ndarray] = {}
    for m, v in features.items():
        if m not in art.features:
            raise DataError(f"no modality {m!r} in this model's features ({sorted(art.features)})")
        row = np.asarray(v, np.float32).ravel()
        if row.shape[0] != art.features.dims[m] or not np.isfinite(row).all():
            raise DataError(
                f"features[{m!r}] must be {art.features.dims[m]} finite numbers; got shape {np.shape(v)}"
            )
        rows[m] = row
    if not rows:
        raise DataError("give the new item at least one feature row")
    return rows


_NO_FEATURES = (
    "this artifact holds no item features, so a new item cannot be placed by its content; fit on data "
    "with features (`fusionrec features`)"
)


def _extractor_configs(art: Artifact) -> dict[str, tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """``{modality: (extractor config, learned state)}`` for the modalities the artifact can featurise."""
    if art.features is None or not len(art.features):
        raise UnsupportedError(_NO_FEATURES)
    configs = dict(art.info.get("feature_extractors") or {})
    configs = {m: c for m, c in configs.items() if m in art.features}
    if not configs:
        raise UnsupportedError(
            "this artifact does not record how its item features were made (no feature_extractors in "
            "model.json), so new items cannot be featurised the same way; fit it on features written by "
            "`fusionrec features`"
        )
    out = {}
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
        out[m] = (cfg, state)
    return out


def extract_rows(art: Artifact, text: str | None, image: bytes | str | None) -> dict[str, np.ndarray]:
    """One feature row per modality the artifact's extractors can make from ``text`` / ``image``."""
    from fusionrec.features import extract_item_features

    out: dict[str, np.ndarray] = {}
    configs = _extractor_configs(art)
    for m, (cfg, state) in configs.items():
        try:
            got = extract_item_features(
                {m: cfg}, text=text, image_bytes_or_path=image, states={m: state} if state else None
            )
        except (FusionrecError, OSError, ImportError) as e:
            log.warning("modality %r: cannot rebuild its extractor (%s); skipped", m, e)
            continue
        if m in got:
            v = np.asarray(got[m], np.float32).ravel()
            dims = art.features.dims[m]  # type: ignore[union-attr]
            if v.shape[0] != dims or not np.isfinite(v).all():
                log.warning(
                    "modality %r: extractor gave %d dims, features have %d; skipped", m, v.shape[0], dims
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
    art: Artifact,
    mapper: ContentMapper | None,
    extra: dict[str, np.ndarray],
    info: dict[str, Any],
    n_model: int,
) -> ContentMapper | None:
    """The content → vector map of a model without its own cold-item support: fitted once and stored in
    ``extra``/``info`` (a map stored before the calibration existed is refitted, so new items get
    calibrated vectors)."""
    model = art.model
    if model.supports_cold_items:
        return None
    meta = info.get("cold_mapper")
    stored = bool(meta) and "expansion" in meta and f"{MAPPER_PREFIX}weights" in extra
    if mapper is None and stored:
        return ContentMapper.from_arrays(extra, meta, prefix=MAPPER_PREFIX)
    if mapper is None:
        feats = art.features
        assert feats is not None
        t0 = time.perf_counter()
        mapper = fit_content_mapper(
            model, {m: feats[m][:n_model] for m in feats}, sp.csr_matrix(art.train)[:, :n_model]
        )
        log.info("fitted the content mapping in %.2fs", time.perf_counter() - t0)
    if not stored:
        arrays, meta = mapper.to_arrays(MAPPER_PREFIX)
        extra.update(arrays)
        info["cold_mapper"] = meta
    return mapper


def _popular(art: Artifact, n_model: int) -> np.ndarray:
    return np.bincount(sp.csr_matrix(art.train).indices, minlength=art.train.shape[1])[:n_model]


def _neighbour_expansion(art: Artifact, n_model: int, eligible: np.ndarray) -> float:
    feats = art.features
    assert feats is not None
    t0 = time.perf_counter()
    unit = {m: unit_rows(feats[m][:n_model]) for m in feats}
    present = {m: feats.mask(m)[:n_model] for m in feats}
    a = fit_neighbour_expansion(art.model, unit, present, eligible)
    log.info("fitted the new-item score calibration (expansion %.2f) in %.2fs", a, time.perf_counter() - t0)
    return a


def check_image(data: bytes) -> None:
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
