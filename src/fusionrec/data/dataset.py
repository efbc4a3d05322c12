"""Core data containers: id maps, item content, named feature matrices, interactions and splits.

Everything downstream works in index space; raw ids live only here, in serving and in the CLI.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

# what a model predicts: a ranking of items (implicit feedback) or rating values (explicit feedback)
from fusionrec.data.methods import TASKS  # noqa: E402,F401  (re-exported; the CLI reads methods)
from fusionrec.errors import ConfigError, DataError, UnknownItemError, UnknownUserError

log = logging.getLogger("fusionrec")


class IdMap:
    """Bidirectional map between raw ids (kept as strings) and contiguous indices."""

    def __init__(self, raw_ids: Iterable[object]):
        ids = np.asarray([str(r) for r in raw_ids], dtype=object)
        index = {r: i for i, r in enumerate(ids)}
        if len(index) != len(ids):
            raise DataError("IdMap got duplicate raw ids; each id must appear once.")
        self._ids = ids
        self._index = index

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, raw: object) -> bool:
        return str(raw) in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    @property
    def raw_ids(self) -> np.ndarray:
        return self._ids

    def index(self, raw: object) -> int:
        try:
            return self._index[str(raw)]
        except KeyError:
            raise KeyError(str(raw)) from None

    def get(self, raw: object, default: int = -1) -> int:
        return self._index.get(str(raw), default)

    def indices(self, raws: Iterable[object], missing: int = -1) -> np.ndarray:
        """Indices of many raw ids; unknown ones become ``missing`` (use :meth:`require` to have them raise)."""
        return np.fromiter((self._index.get(str(r), missing) for r in raws), dtype=np.int64)

    def require(self, raws: Iterable[object], kind: str = "item") -> np.ndarray:
        """Indices of many raw ids; any unknown id raises ``UnknownUserError`` / ``UnknownItemError``
        (``kind`` "user" or "item"), never a -1 that numpy would read as the last row."""
        raws = list(raws)
        idx = self.indices(raws)
        if len(idx) and idx.min() < 0:
            unknown = [str(r) for r, i in zip(raws, idx.tolist(), strict=True) if i < 0]
            shown = ", ".join(repr(u) for u in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            error = UnknownUserError if kind == "user" else UnknownItemError
            raise error(f"{len(unknown)} {kind} id(s) unknown ({len(self)} known): {shown}")
        return idx

    def raw(self, idx: int | np.ndarray) -> str | np.ndarray:
        return self._ids[idx]

    def append(self, raw: object) -> int:
        """Add a new raw id at the end and return its index (used for cold items)."""
        key = str(raw)
        if key in self._index:
            raise DataError(f"id {key!r} already exists")
        self._index[key] = len(self._ids)
        self._ids = np.append(self._ids, np.asarray([key], dtype=object))
        return self._index[key]

    def to_list(self) -> list[str]:
        return [str(x) for x in self._ids]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self.to_list() == other.to_list()


@dataclass
class ItemContent:
    """Raw content per item, aligned with the item id map: text and optional local image / audio / video paths."""

    texts: list[str]
    image_paths: list[str | None]
    titles: list[str] | None = None
    extra: dict[str, list[str]] = field(default_factory=dict)  # e.g. genres, used by tests and reports
    audio_paths: list[str | None] | None = None  # None: no item has audio
    video_paths: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def paths(self, kind: str) -> list[str | None]:
        """Per-item file paths of one media kind (``image``, ``audio``, ``video``); None where absent."""
        by_kind = {"image": self.image_paths, "audio": self.audio_paths, "video": self.video_paths}
        if kind not in by_kind:
            raise DataError(f"item content has no {kind!r} paths (kinds: image, audio, video)")
        got = by_kind[kind]
        return list(got) if got is not None else [None] * len(self)

    def subset(self, idx: np.ndarray) -> ItemContent:
        pick = [int(i) for i in idx]

        def take(values: list | None) -> list | None:
            return None if values is None else [values[i] for i in pick]

        return ItemContent(
            texts=[self.texts[i] for i in pick],
            image_paths=[self.image_paths[i] for i in pick],
            titles=take(self.titles),
            extra={k: [v[i] for i in pick] for k, v in self.extra.items()},
            audio_paths=take(self.audio_paths),
            video_paths=take(self.video_paths),
        )


class Features(Mapping[str, np.ndarray]):
    """Named item feature matrices: ``{modality: (n_items, d) float32}`` plus a present-mask per modality.

    Rows whose mask is False carry no information (missing image, empty text); they are imputed with the
    mean of the present rows so every consumer sees a dense matrix, and models may use the mask to do better.
    """

    def __init__(
        self, matrices: Mapping[str, np.ndarray] | None = None, masks: Mapping[str, np.ndarray] | None = None
    ):
        self._values: dict[str, np.ndarray] = {}
        self._masks: dict[str, np.ndarray] = {}
        # modality → the extractor config that produced it (from manifest.json), so new items can be featurised alike
        self.extractors: dict[str, dict] = {}
        # learned extractor state (TF-IDF vocabulary, BoVW codebook, ...) as "modality/key" → array
        self.extractor_state: dict[str, np.ndarray] = {}
        for name, values in (matrices or {}).items():
            self.add(name, values, None if masks is None else masks.get(name))

    def add(
        self, name: str, values: np.ndarray, mask: np.ndarray | None = None, *, source: str | None = None
    ) -> None:
        """Add (or replace) a modality; rows holding NaN/inf are marked absent (``source`` names the file)."""
        values = np.asarray(values, dtype=np.float32)
        if values.ndim != 2:
            raise DataError(f"feature {name!r} must be 2-D (n_items, d); got shape {values.shape}")
        if self._values and values.shape[0] != self.n_items:
            raise DataError(
                f"feature {name!r} has {values.shape[0]} rows but other modalities have {self.n_items}; "
                "every feature file needs one row per item."
            )
        finite = np.isfinite(values).all(axis=1)
        if mask is None:
            mask = finite & (np.abs(values).sum(axis=1) > 0)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (values.shape[0],):
            raise DataError(f"mask of feature {name!r} has shape {mask.shape}; expected ({values.shape[0]},)")
        if (mask & ~finite).any():
            # a NaN/inf row used to be zeroed and kept "present", so models trained on zeros as content
            log.warning(
                "%s: %d row(s) hold NaN/inf values; marked absent (imputed)",
                source or f"feature {name!r}",
                int((mask & ~finite).sum()),
            )
            mask = mask & finite
        values = np.where(np.isfinite(values), values, 0.0).astype(np.float32)
        if mask.any() and not mask.all():
            values[~mask] = values[mask].mean(axis=0)
        self._values[name] = values
        self._masks[name] = mask

    @property
    def n_items(self) -> int:
        return next(iter(self._values.values())).shape[0] if self._values else 0

    def mask(self, name: str) -> np.ndarray:
        return self._masks[name]

    @property
    def masks(self) -> dict[str, np.ndarray]:
        return dict(self._masks)

    @property
    def dims(self) -> dict[str, int]:
        return {k: v.shape[1] for k, v in self._values.items()}

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._values[name]
        except KeyError:
            raise KeyError(
                f"no modality {name!r}; this data set has {sorted(self._values) or 'none'}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def select(self, names: Sequence[str] | None) -> Features:
        names = list(self._values) if names is None else list(names)
        out = Features({n: self[n] for n in names}, {n: self._masks[n] for n in names})
        out.extractors = {n: c for n, c in self.extractors.items() if n in names}
        out.extractor_state = {k: v for k, v in self.extractor_state.items() if k.split("/")[0] in names}
        return out

    def subset(self, idx: np.ndarray) -> Features:
        out = Features(
            {n: v[idx] for n, v in self._values.items()}, {n: m[idx] for n, m in self._masks.items()}
        )
        out.extractors = dict(self.extractors)
        out.extractor_state = dict(self.extractor_state)
        return out

    def append_rows(self, rows: Mapping[str, np.ndarray]) -> Features:
        """New Features with extra items appended; modalities missing from ``rows`` get an absent row."""
        out = Features()
        for name, values in self._values.items():
            if name in rows:
                new = np.asarray(rows[name], dtype=np.float32).reshape(1, -1)
                present = np.ones(1, dtype=bool)
            else:
                new = (
                    values[self._masks[name]].mean(axis=0, keepdims=True)
                    if self._masks[name].any()
                    else values[:1]
                )
                present = np.zeros(1, dtype=bool)
            out._values[name] = np.vstack([values, new]).astype(np.float32)
            out._masks[name] = np.concatenate([self._masks[name], present])
        out.extractors = dict(self.extractors)
        out.extractor_state = dict(self.extractor_state)
        return out


@dataclass
class Split:
    """Train / valid / test interaction matrices over the same users × items space."""

    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    name: str = "ratio"
    cold_items: np.ndarray | None = None  # item indices withheld from train (cold-item protocol)
    task: str = "ranking"  # "rating": the matrices hold rating values instead of 1.0

    @property
    def shape(self) -> tuple[int, int]:
        return self.train.shape  # type: ignore[return-value]


class Dataset:
    """Interactions (users × items), id maps, optional ratings/timestamps, item content and features.

    Interactions are kept as parallel arrays (one row per interaction) so that splits can be made from them;
    ``matrix()`` builds the CSR view. ``labels`` (0/1/2 = train/valid/test) is set when the data brings its
    own split (MMRec ``x_label``).
    """

    def __init__(
        self,
        users: np.ndarray,
        items: np.ndarray,
        user_ids: IdMap,
        item_ids: IdMap,
        *,
        ratings: np.ndarray | None = None,
        timestamps: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        content: ItemContent | None = None,
        features: Features | None = None,
        name: str = "dataset",
    ):
        self.users = np.asarray(users, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64)
        self.user_ids = user_ids
        self.item_ids = item_ids
        self.ratings = None if ratings is None else np.asarray(ratings, dtype=np.float32)
        self.timestamps = None if timestamps is None else np.asarray(timestamps, dtype=np.int64)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int8)
        self.content = content
        self.features = features if features is not None else Features()
        self.name = name
        n = len(self.users)
        for col, arr in (
            ("items", self.items),
            ("ratings", self.ratings),
            ("timestamps", self.timestamps),
            ("labels", self.labels),
        ):
            if arr is not None and len(arr) != n:
                raise DataError(f"{col} has {len(arr)} rows but users has {n}")
        if n and (self.users.max() >= len(user_ids) or self.items.max() >= len(item_ids)):
            raise DataError("interaction indices exceed the id maps")
        if content is not None and len(content) != len(item_ids):
            raise DataError(f"item content has {len(content)} rows for {len(item_ids)} items")
        self._check_features()

    def _check_features(self) -> None:
        if len(self.features) and self.features.n_items != self.n_items:
            raise DataError(
                f"features have {self.features.n_items} rows for {self.n_items} items; "
                "feature files need one row per item, in item-index order."
            )

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return len(self.users)

    def matrix(self, rows: np.ndarray | None = None, *, task: str = "ranking") -> sp.csr_matrix:
        """CSR users × items matrix (float32) of all interactions, or of the selected rows.

        ``task="ranking"`` (implicit feedback) stores 1.0 per interaction; ``task="rating"`` stores the
        rating values (a repeated (user, item) pair keeps its last rating).
        """
        if task not in TASKS:
            raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        rows = np.arange(self.n_interactions) if rows is None else np.asarray(rows)
        u, i = self.users[rows], self.items[rows]
        shape = (self.n_users, self.n_items)
        if task == "ranking":
            m = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=shape)
            m.sum_duplicates()
            m.data[:] = 1.0
            return m
        values = self.rating_values()[rows]
        # last occurrence of each (user, item) pair wins, as the loaders do with duplicate rows
        keys = u * self.n_items + i
        _, last = np.unique(keys[::-1], return_index=True)
        keep = len(keys) - 1 - last
        m = sp.csr_matrix((values[keep], (u[keep], i[keep])), shape=shape, dtype=np.float32)
        m.sort_indices()
        return m

    def rating_values(self) -> np.ndarray:
        """The explicit ratings, checked for a rating task (present, finite, non-zero)."""
        if self.ratings is None:
            raise DataError(
                f"the rating task needs ratings, but {self.name!r} has none; use a data set with a rating "
                "column (e.g. MovieLens ratings.csv, --rating-col) or the ranking task"
            )
        r = self.ratings
        if len(r) and not np.isfinite(r).all():
            raise DataError(f"{self.name!r}: some ratings are not finite numbers; clean the rating column")
        if (r == 0).any():
            # a sparse matrix cannot tell a stored 0 from a missing entry
            raise DataError(
                f"{self.name!r}: {int((r == 0).sum())} rating(s) are 0, which a sparse rating matrix cannot "
                "store; shift the scale (e.g. add 1 to every rating)"
            )
        return r

    def fingerprint(self) -> str:
        """A short hash identifying the interactions and id maps (stamped into artifacts)."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.users).tobytes())
        h.update(np.ascontiguousarray(self.items).tobytes())
        h.update("\n".join(self.user_ids.to_list()).encode())
        h.update("\n".join(self.item_ids.to_list()).encode())
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        mods = ", ".join(f"{k} {v}-d" for k, v in self.features.dims.items()) or "no features"
        return (
            f"Dataset({self.name!r}: {self.n_users} users, {self.n_items} items, "
            f"{self.n_interactions} interactions, {mods})"
        )

    def summary(self) -> dict[str, object]:
        density = self.n_interactions / max(1, self.n_users * self.n_items)
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "density": round(density, 6),
            "modalities": self.features.dims,
            "has_content": self.content is not None,
            "has_split": self.labels is not None,
        }

    def with_features(self, features: Features) -> Dataset:
        """This data set with other item features (everything else is shared, not copied)."""
        out = copy.copy(self)
        out.features = features
        out._check_features()
        return out
