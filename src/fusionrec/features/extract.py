"""Extraction pipeline: content hashes → cache lookup → extract only what is new → ``Features``.

``extract_features(ds, image="cnn", text="sentence")`` is the one-call API; ``run_extraction`` returns
the reports and extractor configs too (the CLI writes them into the manifest); ``extract_item_features``
featurises one new item with the extractors a manifest describes (the HTTP server's cold-item path).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.data.dataset import Dataset, Features, ItemContent
from fusionrec.data.feature_dir import STATE_FILE, read_states
from fusionrec.errors import ConfigError, DataError
from fusionrec.features.base import (
    ExtractionReport,
    Extractor,
    Failure,
    config_key,
    extractor_for,
    extractor_from_config,
    extractor_kind,
)
from fusionrec.features.store import FeatureStore, content_keys

log = logging.getLogger("fusionrec")

CacheSpec = FeatureStore | str | Path | bool | None


@dataclass
class ExtractionResult:
    """Features plus, per modality, the run report, the extractor config and its learned state."""

    features: Features
    reports: dict[str, ExtractionReport] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    states: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        """Extra manifest entries: what each extraction did (counts, unreadable files, seconds)."""
        return {"extraction": {n: r.to_dict() for n, r in self.reports.items()}}


def _store(cache: CacheSpec) -> FeatureStore | None:
    if cache is False:
        return None
    if isinstance(cache, FeatureStore):
        return cache
    if cache is None or cache is True:
        return FeatureStore()
    return FeatureStore(cache)


def _content(items: Dataset | ItemContent) -> ItemContent:
    if isinstance(items, Dataset):
        if items.content is None:
            raise DataError(
                f"data set {items.name!r} carries no item content (texts / image paths) to extract features "
                "from; MovieLens directories and tables with an items file do (--items for generic tables)"
            )
        return items.content
    return items


def with_image_dir(items: Dataset | ItemContent, image_dir: str | Path) -> ItemContent:
    """Item content whose image paths point into ``image_dir`` (``<raw id>.<ext>``; None when absent)."""
    if not isinstance(items, Dataset):
        raise ConfigError("image_dir= needs a Dataset (its raw item ids name the image files)")
    folder = Path(image_dir).expanduser()
    if not folder.is_dir():
        raise DataError(f"image directory {folder} does not exist")
    by_stem: dict[str, str] = {}
    for f in sorted(folder.iterdir()):
        if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp") and f.stem not in by_stem:
            by_stem[f.stem] = str(f)
    paths = [by_stem.get(raw) for raw in items.item_ids]
    found = sum(p is not None for p in paths)
    if not found:
        raise DataError(
            f"{folder}: no image named after an item id (expected e.g. {items.item_ids.raw(0)}.jpg)"
        )
    log.info("images: %d of %d items have a file in %s", found, items.n_items, folder)
    base = items.content or ItemContent(texts=[""] * items.n_items, image_paths=[None] * items.n_items)
    return dataclasses.replace(base, image_paths=paths)


def _make(
    spec: str | Extractor, params: Mapping[str, Any] | None, show_progress: bool, kind: str
) -> Extractor:
    if isinstance(spec, Extractor):
        return spec
    if "show_progress" not in (params or {}):
        params = {**(params or {}), "show_progress": show_progress}
    return extractor_for(kind, spec, **params)


def extract_modality(
    extractor: Extractor,
    items: ItemContent | Sequence[Any],
    *,
    modality: str | None = None,
    store: FeatureStore | None = None,
    shard: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, ExtractionReport]:
    """Run one extractor over ``items`` with the cache; returns ``(values, present, report)``.

    ``shard=(i, n)`` extracts only the uncached contents whose hash falls in part ``i`` of ``n`` (into the
    store; the returned rows of other parts are left absent): ``n`` processes fill the cache together, then
    one run without a shard assembles every row from it.

    Only items whose content hash is not cached under the extractor's config are extracted; identical content
    is extracted once. Fitted extractors are fitted on the items with content (their state is cached too,
    keyed by the content hashes and parameters, so an unchanged corpus is not refitted).
    """
    t0 = time.perf_counter()
    modality = modality or extractor.kind
    sources = extractor.sources(items)
    n = len(sources)
    report = ExtractionReport(modality=modality, extractor=extractor.name, n_items=n)
    # files above the extractor's size limit are refused before they are hashed (or read at all)
    keys, unreadable = content_keys(sources, extractor.kind, getattr(extractor, "max_bytes", None))
    for i, reason in unreadable.items():
        log.warning("%s: skipped %s: %s", extractor.name, sources[i], reason)
    if extractor.needs_fit and not extractor.is_fitted:
        tf = time.perf_counter()
        _fit(extractor, sources, keys, store)
        report.fit_seconds = time.perf_counter() - tf
    config = extractor.config()
    d = int(config["dims"])
    values = np.zeros((n, d), np.float32)
    present = np.zeros(n, bool)
    reasons = [""] * n
    have = [i for i in range(n) if keys[i] is not None]
    uniq = list(dict.fromkeys(keys[i] for i in have))  # type: ignore[misc]
    pos = {k: j for j, k in enumerate(uniq)}
    u_vals = np.zeros((len(uniq), d), np.float32)
    u_pres = np.zeros(len(uniq), bool)
    u_reason = [""] * len(uniq)
    hit = np.zeros(len(uniq), bool)
    if store is not None and uniq:
        u_vals, u_pres, hit, u_reason = store.lookup(config, uniq)  # type: ignore[arg-type]
    todo = np.flatnonzero(~hit)
    if shard is not None:
        todo = todo[[shard_of(uniq[j], shard[1]) == shard[0] for j in todo]]
    if len(todo):
        first = {}
        for i in have:
            first.setdefault(keys[i], i)
        todo_src = [sources[first[uniq[j]]] for j in todo]
        v, p = extractor.transform(todo_src)
        u_vals[todo] = v
        u_pres[todo] = p
        for f in extractor.last_failures:
            u_reason[int(todo[f.index])] = f.reason or "unreadable"
        if store is not None:
            store.put(config, [uniq[j] for j in todo], v, p, [u_reason[j] for j in todo])
    for i in have:
        j = pos[keys[i]]
        values[i] = u_vals[j]
        present[i] = u_pres[j]
        reasons[i] = u_reason[j]
    for i, reason in unreadable.items():
        reasons[i] = reason
    report.n_cached = int(hit.sum())
    report.n_extracted = len(todo)
    report.n_present = int(present.sum())
    report.failures = [Failure(i, _describe(sources[i]), reasons[i]) for i in range(n) if reasons[i]]
    cached_failures = [f for f in report.failures if keys[f.index] is not None and hit[pos[keys[f.index]]]]
    for f in cached_failures:  # re-runs still name every unusable file
        log.warning("%s: skipped %s: %s (cached)", extractor.name, f.source, f.reason)
    report.n_no_content = n - len(have) - len(unreadable)
    report.seconds = time.perf_counter() - t0
    return values, present, report


def shard_of(key: str, n_shards: int) -> int:
    """The part (0..n-1) a content hash belongs to: identical content always lands in one part."""
    return int(key[:12], 16) % n_shards


def _describe(source: Any) -> str:
    return f"<{len(source)} bytes>" if isinstance(source, bytes | bytearray) else str(source)


def _fit(
    extractor: Extractor, sources: list[Any], keys: list[str | None], store: FeatureStore | None
) -> None:
    fit_sources = [s for s, k in zip(sources, keys, strict=True) if k is not None]
    if not fit_sources:
        raise DataError(f"{extractor.name}: no item has {extractor.kind} content to fit on")
    fit_key = None
    if store is not None:
        h = hashlib.sha256(
            json.dumps(
                {"name": extractor.name, "params": extractor.get_params()}, sort_keys=True, default=str
            ).encode()
        )
        for k in sorted(k for k in keys if k is not None):
            h.update(k.encode())
        fit_key = h.hexdigest()[:24]
        state = store.get_state(fit_key)
        if state is not None:
            extractor.load_state(state)
            log.info("%s: reusing the state fitted on this corpus earlier", extractor.name)
            return
    extractor.fit(fit_sources)
    if store is not None and fit_key is not None:
        store.put_state(fit_key, extractor.state())


def run_extraction(
    items: Dataset | ItemContent,
    *,
    image: str | Extractor | None = "cnn",
    text: str | Extractor | None = "sentence",
    audio: str | Extractor | None = None,
    video: str | Extractor | None = None,
    soundtrack: str | Extractor | None = None,
    image_params: Mapping[str, Any] | None = None,
    text_params: Mapping[str, Any] | None = None,
    audio_params: Mapping[str, Any] | None = None,
    video_params: Mapping[str, Any] | None = None,
    soundtrack_params: Mapping[str, Any] | None = None,
    image_name: str = "image",
    text_name: str = "text",
    audio_name: str = "audio",
    video_name: str = "video",
    soundtrack_name: str = "soundtrack",
    image_dir: str | Path | None = None,
    cache: CacheSpec = None,
    show_progress: bool = False,
    shard: tuple[int, int] | None = None,
) -> ExtractionResult:
    """Extract the requested modalities of ``items``: features, extractor configs, states and reports.

    Parameters
    ----------
    items
        A ``Dataset`` with content, or an ``ItemContent``.
    image, text, audio, video
        Extractor names (``cnn``/``bovw``/``color``; ``sentence``/``tfidf``/``lda``/``wordvec``; ``mfcc``;
        ``frames`` or any image extractor's name, applied per sampled frame), extractor instances, or None to
        skip the modality.
    soundtrack
        Audio extractor run over the *video* files (their soundtracks), as a modality of its own; a video
        without sound is absent there, not a failure.
    image_params, text_params, audio_params, video_params, soundtrack_params
        Extractor parameters, e.g. ``{"arch": "resnet18", "weights": "r18.pth"}`` or ``{"fps": 2}``.
    image_name, text_name, audio_name, video_name, soundtrack_name
        Modality names in the result.
    image_dir
        Read item images from ``<image_dir>/<raw item id>.(jpg|jpeg|png|webp)`` instead of the content's
        own image paths (``items`` must then be a ``Dataset``, for the raw ids).
    cache
        A directory / ``FeatureStore`` for the content-hash cache, None for the default cache directory,
        False to disable caching.
    show_progress
        tqdm progress bars.
    shard
        ``(i, n)`` fills the cache with part ``i`` of ``n`` only (see :func:`extract_modality`).
    """
    content = _content(items)
    if image_dir is not None:
        content = with_image_dir(items, image_dir)
    store = _store(cache)
    if shard is not None:
        i, n = shard
        if not 0 <= i < n:
            raise ConfigError(f"shard {i}/{n}: the part must lie in 0..{n - 1}")
        if store is None:
            raise ConfigError("sharded extraction fills the feature cache; it cannot run with the cache off")
    result = ExtractionResult(features=Features())
    # (modality name, extractor spec, params, extractor kind, which content it reads)
    plan = []
    for name, spec, params, kind, reads in (
        (image_name, image, image_params, "image", "image"),
        (text_name, text, text_params, "text", "text"),
        (audio_name, audio, audio_params, "audio", "audio"),
        (video_name, video, video_params, "video", "video"),
        (soundtrack_name, soundtrack, soundtrack_params, "audio", "video"),
    ):
        if spec is None:
            continue
        if isinstance(spec, Extractor) and spec.kind != kind:
            raise ConfigError(f"{spec.name!r} is a {spec.kind} extractor; pass it as {spec.kind}=")
        if (
            isinstance(spec, str)
            and extractor_kind(spec) != kind
            and not (kind == "video" and extractor_kind(spec) == "image")
        ):
            got = extractor_kind(spec)
            raise ConfigError(f"{spec!r} is a {got} extractor; pass it as {got}=")
        if reads == "video" and kind == "audio" and not isinstance(spec, Extractor):
            # a silent video has no soundtrack: absent, not a broken file
            params = {"require_stream": False, **(params or {})}
        plan.append((name, spec, params, kind, reads))
    if len({p[0] for p in plan}) != len(plan):
        raise ConfigError(
            "every extracted modality needs its own name (image, text, audio, video, soundtrack)"
        )
    for name, spec, params, kind, reads in plan:
        extractor = _make(spec, params, show_progress, kind)
        sources: ItemContent | list[Any] = content if reads == kind else content.paths(reads)
        try:
            values, present, report = extract_modality(
                extractor, sources, modality=name, store=store, shard=shard
            )
            config = extractor.config()
            state = extractor.state()
        finally:
            if not isinstance(spec, Extractor):
                extractor.close()
        if state:
            config["state"] = STATE_FILE
        if reads != kind:
            config["reads"] = reads  # the soundtrack: an audio extractor over the video files
        result.configs[name] = config
        result.states[name] = state
        result.features.add(name, values, present)
        # recorded on the Features so writers put them in manifest.json / extractors.safetensors
        result.features.extractors[name] = config
        result.features.extractor_state.update({f"{name}/{k}": np.asarray(v) for k, v in state.items()})
        result.reports[name] = report
        # debug: the caller reports it (`fusionrec features` prints each summary once, on stdout)
        log.debug("%s", report.summary())
        if report.n_present == 0:
            log.warning("%s: no item has usable %s content; the modality is all imputed", name, reads)
    return result


def extract_features(items: Dataset | ItemContent, **options: Any) -> Features:
    """Item features of a data set (or ``ItemContent``), one matrix per requested modality.

    Takes the keyword options of :func:`run_extraction` except ``shard`` (a part of the items is not a
    feature set) and returns its ``features``: ``(n_items, d)`` float32 per modality with present-masks
    (missing/unreadable content is absent and imputed with the mean of present rows).
    """
    if "shard" in options:
        raise ConfigError("extract_features extracts every item; fill the cache by parts with run_extraction")
    return run_extraction(items, **options).features


# ------------------------------------------------------------------------------------------------ one item

_ITEM_EXTRACTORS: dict[str, tuple[Extractor, threading.Lock]] = {}
_ITEM_LOCK = threading.Lock()


def _item_extractor(
    config: Mapping[str, Any],
    base_dir: Path | None,
    states: Mapping[str, Mapping[str, np.ndarray]] | None,
    modality: str,
) -> tuple[Extractor, threading.Lock]:
    state = None
    if states is not None and modality in states:
        state = dict(states[modality])
    elif config.get("state"):
        if base_dir is None:
            raise ConfigError(
                f"extractor for {modality!r} needs its state file {config['state']}; pass base_dir= "
                "(the directory holding the manifest) or states="
            )
        state = read_states(Path(base_dir)).get(modality)
        if state is None:
            raise ConfigError(f"{base_dir}: no learned state for modality {modality!r} in {STATE_FILE}")
    key = config_key({k: v for k, v in config.items() if k != "state"}) + modality
    with _ITEM_LOCK:
        entry = _ITEM_EXTRACTORS.get(key)
        if entry is None:
            entry = (extractor_from_config(dict(config), state), threading.Lock())
            _ITEM_EXTRACTORS[key] = entry
    return entry


def extract_item_features(
    extractor_configs: Mapping[str, Mapping[str, Any]],
    *,
    text: str | None = None,
    image_bytes_or_path: bytes | str | Path | None = None,
    base_dir: str | Path | None = None,
    states: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    media_paths: Mapping[str, str | Path] | None = None,
) -> dict[str, np.ndarray]:
    """Featurise ONE item with the extractors a feature manifest describes.

    Parameters
    ----------
    extractor_configs
        ``manifest["extractors"]``: ``{modality: config}`` as written by ``fusionrec features``.
    text, image_bytes_or_path
        The item's content; either may be None.
    base_dir
        Directory of the manifest, to find fitted extractors' learned state (``extractors.safetensors``).
    states
        Learned states given directly (``{modality: arrays}``) instead of files.
    media_paths
        The item's audio / video files by kind, e.g. ``{"video": "clip.mp4"}`` (a soundtrack modality reads
        the video file).

    Returns
    -------
    dict
        ``{modality: (d,) float32}`` for each modality whose content was given and usable; a modality that is
        missing (no text, no image, unreadable image) is left out, so ``Features.append_rows`` marks it
        absent.
        Built extractors are kept in memory, so repeated calls do not reload models.
    """
    out: dict[str, np.ndarray] = {}
    base = Path(base_dir) if base_dir is not None else None
    for modality, config in extractor_configs.items():
        kind = config.get("reads") or config.get("kind") or extractor_kind(str(config["name"]))
        if kind == "text":
            source: Any = text
        elif kind == "image":
            source = image_bytes_or_path
        else:
            source = (media_paths or {}).get(kind)
        if source is None:
            continue
        if isinstance(source, Path):
            source = str(source)
        ext, lock = _item_extractor(config, base, states, modality)
        with lock:  # one request at a time per extractor: lazy loading and failure lists are not shared-safe
            values, present = ext.transform([source])
            failures = list(ext.last_failures)
        if present[0]:
            out[modality] = values[0]
        elif failures:
            log.warning("%s: item content unusable: %s", modality, failures[0].reason)
    return out
