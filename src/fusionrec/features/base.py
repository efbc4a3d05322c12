"""The extractor protocol, a per-run report, and the name → extractor registry.

An extractor turns raw item content into one dense matrix: ``transform(items) -> (values, present)``
with ``values`` ``(n_items, d)`` float32 and ``present`` a bool mask (False = no content or unreadable
content; the row is then all zeros and :class:`~fusionrec.data.dataset.Features` imputes it). Extractors
that learn from the corpus (BoVW codebook, TF-IDF vocabulary, LDA topics) implement ``fit``; their learned
arrays round-trip through ``state()`` / ``load_state()`` so a server can rebuild the very same extractor.
``config()`` identifies the output completely (name, model, dims, parameters and, for fitted extractors,
a hash of the learned state): the feature store keys its cache by it. A config read back from a file is
data: :func:`validate_extractor_config` checks it against this registry before anything is built from it.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fusionrec.data.dataset import ItemContent
from fusionrec.errors import ConfigError, DataError, NotFittedError
from fusionrec.features.registry import EXTRACTORS, extractor_choices
from fusionrec.params import convert_cli, type_errors

log = logging.getLogger("fusionrec")


@dataclass
class Failure:
    """One item whose content could not be used (logged, counted, and treated as absent)."""

    index: int
    source: str
    reason: str


@dataclass
class ExtractionReport:
    """What one extraction did: counts, failures and timing (returned to callers and logged at the end)."""

    modality: str
    extractor: str
    n_items: int = 0
    n_present: int = 0
    n_no_content: int = 0
    n_cached: int = 0
    n_extracted: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    fit_seconds: float = 0.0

    @property
    def n_failed(self) -> int:
        return len(self.failures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "modality": self.modality,
            "extractor": self.extractor,
            "items": self.n_items,
            "present": self.n_present,
            "no_content": self.n_no_content,
            "failed": self.n_failed,
            "cached": self.n_cached,
            "extracted": self.n_extracted,
            "seconds": round(self.seconds, 3),
            "fit_seconds": round(self.fit_seconds, 3),
            "failures": [{"index": f.index, "source": f.source, "reason": f.reason} for f in self.failures],
        }

    def summary(self) -> str:
        return (
            f"{self.modality} ({self.extractor}): {self.n_present}/{self.n_items} present, "
            f"{self.n_no_content} without content, {self.n_failed} unreadable; {self.n_extracted} extracted, "
            f"{self.n_cached} from cache, {self.seconds:.1f}s"
        )


class Extractor:
    """Base class of every feature extractor.

    Subclasses set ``name`` and ``kind`` (one of :data:`KINDS`), keep constructor arguments as attributes of the
    same name (they become ``config()["params"]``), and implement ``_transform(batch_of_sources)``, which
    returns ``(values, present)`` for one batch and records unusable items with ``self._fail``.

    Parameters
    ----------
    batch_size
        Items per forward pass / progress-bar step.
    show_progress
        Draw a tqdm progress bar during ``transform``.
    """

    name = "extractor"
    kind = "text"
    needs_fit = False
    #: constructor arguments that do not change the output (left out of ``config()``)
    runtime_params: tuple[str, ...] = ("batch_size", "show_progress")

    def __init__(self, *, batch_size: int = 64, show_progress: bool = False):
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.last_failures: list[Failure] = []

    # -------------------------------------------------------------------------------------------- API

    @property
    def dim(self) -> int:
        """Width of the output rows (known after ``fit`` for fitted extractors)."""
        raise NotImplementedError

    @property
    def model(self) -> str:
        """A short name of the underlying model / method, stamped into ``config()``."""
        return self.name

    def get_params(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        names = [p for p in sig.parameters if p != "self" and p not in self.runtime_params]
        return {p: _jsonable(getattr(self, p)) for p in names}

    def config(self) -> dict[str, Any]:
        """JSON-able dict that identifies this extractor's output (cache key, manifests, rebuilding)."""
        self._check_fitted()
        cfg: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "model": self.model,
            "dims": self.dim,
            "params": self.get_params(),
        }
        if self.needs_fit:
            cfg["state_sha256"] = state_hash(self.state())
        return cfg

    def fit(self, items: ItemContent | Sequence[Any]) -> Extractor:
        """Learn corpus-dependent state (no-op for pretrained extractors); returns ``self``."""
        sources = [s for s in self.sources(items) if has_content(s)]
        if self.needs_fit:
            if not sources:
                raise DataError(f"{self.name}: no item has {self.kind} content to fit on")
            self._fit(sources)
        return self

    def transform(self, items: ItemContent | Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """``(values (n, d) float32, present (n,) bool)`` for ``items``; absent rows are zeros."""
        self._check_fitted()
        sources = self.sources(items)
        self.last_failures = []
        n = len(sources)
        values = np.zeros((n, self.dim), np.float32)
        present = np.zeros(n, bool)
        have = [i for i, s in enumerate(sources) if has_content(s)]
        if not have:
            return values, present
        for start, vals, ok in self._batches([sources[i] for i in have]):
            idx = np.asarray(have[start : start + len(ok)])
            values[idx] = vals
            present[idx] = ok
        # failures were recorded with batch-local positions; map them back to item indices
        for f in self.last_failures:
            f.index = have[f.index]
        return values, present

    def fit_transform(self, items: ItemContent | Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        return self.fit(items).transform(items)

    def state(self) -> dict[str, np.ndarray]:
        """Learned arrays (empty for pretrained extractors); ``load_state`` restores them."""
        return {}

    def load_state(self, arrays: dict[str, np.ndarray]) -> Extractor:
        return self

    def close(self) -> None:
        """Release worker pools / sessions (optional)."""

    # -------------------------------------------------------------------------------------------- hooks

    def sources(self, items: ItemContent | Sequence[Any]) -> list[Any]:
        """The per-item inputs this extractor reads: texts, image paths/bytes, audio or video paths."""
        if isinstance(items, ItemContent):
            return list(items.texts) if self.kind == "text" else items.paths(self.kind)
        if isinstance(items, str | bytes):
            raise ConfigError(f"{self.name}: pass a list of items, not a single {type(items).__name__}")
        return list(items)

    def _fit(self, sources: list[Any]) -> None:  # pragma: no cover - fitted extractors override
        raise NotImplementedError

    def _transform(self, batch: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _batches(self, sources: list[Any]):
        """Yield ``(start, values, present)`` per batch; subclasses may overlap decoding with compute."""
        from tqdm.auto import tqdm

        with tqdm(
            total=len(sources),
            desc=f"{self.name} features",
            unit=self.kind[:3] if self.kind == "image" else "txt",
            disable=not self.show_progress,
            leave=False,
        ) as bar:
            step = self._chunk_size()
            for start in range(0, len(sources), step):
                batch = sources[start : start + step]
                offset = len(self.last_failures)
                vals, ok = self._transform(batch)
                for f in self.last_failures[offset:]:
                    f.index += start
                bar.update(len(batch))
                yield start, vals, ok

    def _decoded(
        self,
        sources: list[Any],
        decode: Any,
        *,
        desc: str,
        unit: str,
        expected: tuple[type[Exception], ...] | None = None,
        report_failures: bool = True,
    ):
        """Decode ``sources`` on ``self.workers`` threads, ``batch_size`` at a time, under a progress bar.

        Yields ``(start, decoded)`` per chunk. A source that could not be decoded is None in ``decoded`` and,
        with ``report_failures``, recorded as a failure of this extraction (``expected``: the exceptions whose
        message is the reason, default an image that does not decode).
        """
        from tqdm.auto import tqdm

        from fusionrec.features.images import ImageDecodeError, decode_many, describe_source

        with tqdm(
            total=len(sources), desc=desc, unit=unit, disable=not self.show_progress, leave=False
        ) as bar:
            for start, decoded, errors in decode_many(
                sources,
                decode,
                workers=self.workers,  # type: ignore[attr-defined]
                chunk=self.batch_size,
                expected=expected or (ImageDecodeError,),
            ):
                if report_failures:
                    for j, err in enumerate(errors):
                        if err is not None:
                            self._fail(start + j, describe_source(sources[start + j]), err)
                yield start, decoded
                bar.update(len(decoded))

    def _chunk_size(self) -> int:
        """Items handed to ``_transform`` at once (one progress-bar step)."""
        return self.batch_size

    def _fail(self, index: int, source: Any, reason: str) -> None:
        src = source if isinstance(source, str) else f"<{type(source).__name__}>"
        log.warning("%s: skipped %s: %s", self.name, src, reason)
        self.last_failures.append(Failure(index, str(src), reason))

    def _check_fitted(self) -> None:
        if self.needs_fit and not self.is_fitted:
            raise NotFittedError(
                f"{self.name} extractor is not fitted; call fit(items) (or load_state) first"
            )

    @property
    def is_fitted(self) -> bool:
        return not self.needs_fit

    @classmethod
    def check_untrusted_params(cls, params: dict[str, Any], *, where: str) -> None:
        """Refuse parameter values read from a file (``where``) that would import or run code; the default
        extractor has none."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


# ------------------------------------------------------------------------------------------------ helpers


def has_content(source: Any) -> bool:
    """False for None / NaN / empty or whitespace-only strings / empty bytes."""
    if source is None:
        return False
    if isinstance(source, float) and np.isnan(source):
        return False
    if isinstance(source, str):
        return bool(source.strip())
    if isinstance(source, bytes | bytearray):
        return len(source) > 0
    return True


def state_hash(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(k.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def config_key(config: dict[str, Any]) -> str:
    """Stable short hash of a config dict (the feature store's directory name)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def encode_strings(words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as ``(utf8 bytes uint8, end offsets int64)``: numeric arrays safetensors and npz both hold."""
    data = [w.encode("utf-8") for w in words]
    ends = np.cumsum([len(b) for b in data], dtype=np.int64)
    return np.frombuffer(b"".join(data), dtype=np.uint8).copy(), ends


def decode_strings(buf: np.ndarray, ends: np.ndarray) -> list[str]:
    raw = np.asarray(buf, np.uint8).tobytes()
    starts = np.concatenate([[0], np.asarray(ends, np.int64)[:-1]])
    return [raw[a:b].decode("utf-8") for a, b in zip(starts.tolist(), np.asarray(ends).tolist(), strict=True)]


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ registry


def extractor_kind(name: str) -> str:
    if name not in EXTRACTORS:
        raise ConfigError(f"unknown extractor {name!r}; choose one of {', '.join(EXTRACTORS)}")
    return EXTRACTORS[name][1]


def extractor_for(kind: str, name: str, **params: Any) -> Extractor:
    """The extractor ``name`` for modality kind ``kind``.

    For ``video`` an image extractor's name means the ``frames`` extractor with that image extractor per
    frame: parameters the frames extractor takes stay with it, the others go to the image extractor.
    """
    got = extractor_kind(name)
    if kind == "video" and got == "image":
        name, got, params = "frames", "video", {**params, "image": name}
    if got != kind:
        raise ConfigError(
            f"{name!r} extracts {got} features, not {kind}; choose one of {', '.join(extractor_choices(kind))}"
        )
    if name == "frames":  # parameters the frames extractor does not take belong to its image extractor
        own = set(accepted_params("frames"))
        image_params = {k: v for k, v in params.items() if k not in own}
        params = {k: v for k, v in params.items() if k in own}
        if image_params:
            params["image_params"] = {**(params.get("image_params") or {}), **image_params}
    return get_extractor(name, **params)


def get_extractor(name: str, **params: Any) -> Extractor:
    """Build an extractor by name.

    Image extractors: ``cnn``, ``bovw``, ``color``; text: ``sentence``, ``tfidf``, ``lda``, ``wordvec``;
    audio: ``mfcc``; video: ``frames`` (sampled frames through an image extractor, pooled).

    Unknown parameters raise :class:`ConfigError` listing the accepted ones.
    """
    target, _ = EXTRACTORS.get(name, (None, None))
    if target is None:
        raise ConfigError(f"unknown extractor {name!r}; choose one of {', '.join(EXTRACTORS)}")
    module, cls_name = target.split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    accepted = accepted_params(cls)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(f"extractor {name!r} has no parameter(s) {unknown}; it accepts {sorted(accepted)}")
    try:  # values typed on the command line become their parameter's type
        params = convert_cli(params, inspect.signature(cls.__init__), f"extractor {name!r}")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return cls(**params)


def accepted_params(cls_or_name: type | str) -> list[str]:
    if isinstance(cls_or_name, str):
        module, cls_name = EXTRACTORS[cls_or_name][0].split(":")
        cls_or_name = getattr(importlib.import_module(module), cls_name)
    sig = inspect.signature(cls_or_name.__init__)
    return [p for p in sig.parameters if p != "self"]


def validate_extractor_config(config: Any, *, where: str) -> dict[str, Any]:
    """Check an extractor config read from a file (``where``) against the registry; returns it.

    The name must be registered, its kind match, and every parameter be one the extractor accepts, with a
    value of the annotated type. Nothing the config names is imported or called: only the registry's own
    modules are looked at, and each extractor refuses values that would run code
    (:meth:`Extractor.check_untrusted_params`, e.g. a CNN backbone given as ``module:callable``). Raises
    :class:`ConfigError` naming ``where``.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: an extractor config must be a JSON object, not {type(config).__name__}")
    name = config.get("name")
    if not isinstance(name, str) or name not in EXTRACTORS:
        raise ConfigError(
            f"{where}: unknown extractor {name!r}; registered extractors are {', '.join(EXTRACTORS)}"
        )
    module, cls_name = EXTRACTORS[name][0].split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    kind = config.get("kind", cls.kind)
    if kind != cls.kind:
        raise ConfigError(f"{where}: extractor {name!r} reads {cls.kind} content, not {kind!r}")
    params = config.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: extractor {name!r} params must be a JSON object")
    sig = inspect.signature(cls.__init__)
    unknown = sorted(k for k in params if k == "self" or k not in sig.parameters)
    if unknown:
        raise ConfigError(
            f"{where}: extractor {name!r} has no parameter(s) {unknown}; it accepts {accepted_params(cls)}"
        )
    wrong = type_errors(params, sig)
    if wrong:
        raise ConfigError(
            f"{where}: extractor {name!r} has parameter(s) of the wrong type: {'; '.join(wrong)}"
        )
    cls.check_untrusted_params(params, where=where)
    return config


def validate_extractor_configs(configs: Any, *, where: str) -> dict[str, dict[str, Any]]:
    """:func:`validate_extractor_config` for each modality of a ``{modality: config}`` mapping."""
    if not isinstance(configs, dict):
        raise ConfigError(f"{where}: extractors must be a JSON object of modality → config")
    return {
        str(m): validate_extractor_config(c, where=f"{where} (modality {m!r})") for m, c in configs.items()
    }


def extractor_from_config(
    config: dict[str, Any],
    state: dict[str, np.ndarray] | None = None,
    *,
    trusted: bool = False,
    **runtime: Any,
) -> Extractor:
    """Rebuild the extractor a ``config()`` describes (plus its learned ``state`` for fitted extractors).

    Configs come from manifests and artifacts, so they are validated against the registry first
    (:func:`validate_extractor_config`); ``trusted=True`` skips that for a config built in this process.
    """
    if not trusted:
        validate_extractor_config(config, where="extractor config")
    ext = get_extractor(config["name"], **config.get("params", {}), **runtime)
    if ext.needs_fit:
        if state is None:
            raise ConfigError(
                f"extractor {config['name']!r} learns from the corpus; pass its saved state (the "
                "<modality>/* arrays of extractors.safetensors written next to the features)"
            )
        ext.load_state(state)
        got = state_hash(ext.state())
        if config.get("state_sha256") and got != config["state_sha256"]:
            raise ConfigError(
                f"extractor {config['name']!r}: saved state hash {got} does not match the "
                f"manifest's {config['state_sha256']}; the state file belongs to another run"
            )
    return ext


def export_onnx_atomic(module: Any, args: tuple, path: Any, **names: Any) -> None:
    """``torch.onnx.export`` of ``module`` on example ``args`` to ``path``, through a temporary file in the same
    directory renamed into place (a reader never sees half a model). ``names``: ``input_names``,
    ``output_names``, ``dynamic_axes``."""
    import os
    import tempfile
    import warnings
    from pathlib import Path

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter is chatty about deprecations
            torch.onnx.export(module, args, tmp, opset_version=17, dynamo=False, **names)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
