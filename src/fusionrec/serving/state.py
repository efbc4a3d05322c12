"""What the server holds: one artifact in memory, read without locks, changed under locks, saved atomically.

Reads take the current :class:`Snapshot` (one attribute read) and never wait; they are answered by the query
core (:mod:`fusionrec.recommend`) from the snapshot's :class:`~fusionrec.recommend.ArtifactView`. A change
(``serving.catalog``: a new item, a forgotten user) builds a new artifact inside :meth:`ServingState.mutating`,
which holds a thread lock and an ``flock`` on a file beside the artifact, so several worker processes serving
one artifact change it one at a time; :meth:`ServingState.commit` writes it to disk (atomic rename) and swaps
the snapshot in. Before answering, each request compares the artifact's ``model.json`` (inode, mtime, size)
with the one its snapshot came from and reloads when another process changed it: a user forgotten through
one worker is gone from all of them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusionrec import __version__
from fusionrec.artifacts import Artifact, load_artifact, save_artifact
from fusionrec.errors import ConfigError, ConflictError, UnsupportedError, UnsupportedMediaError
from fusionrec.models.cold import ContentMapper
from fusionrec.ranking import reserved_slots
from fusionrec.recommend import ArtifactView, Ranked
from fusionrec.serving.index import build_index

log = logging.getLogger("fusionrec")

# re-exported for the HTTP layer
__all__ = ["ConflictError", "Ranked", "ServingState", "Snapshot", "UnsupportedError", "UnsupportedMediaError"]


@dataclass
class Snapshot:
    """One artifact revision as served: its query view, where it came from on disk, the new-item placement.

    Attributes the view has (``art``, ``model``, ``n_items``, ``titles``, ...) read through to it.
    """

    view: ArtifactView
    disk_key: tuple[int, ...]
    mapper: ContentMapper | None = None
    neighbour_expansion: float | None = None  # fitted at start for models without item vectors
    loaded_at: float = field(default_factory=time.time)

    def __getattr__(self, name: str) -> Any:
        if name == "view":  # not yet set (copy/unpickle): no recursion
            raise AttributeError(name)
        return getattr(self.view, name)


class ServingState:
    """The artifact at ``path`` as served: the current snapshot, reloads, and exclusive changes.

    Parameters
    ----------
    path
        Artifact directory (written by ``fusionrec fit``); changes are saved back to it.
    index
        "auto"/"hnsw" (faiss HNSW for inner-product models) or "exact".
    watch
        Reload when another process changed the artifact on disk (checked per request by one ``stat``).
    new_item_share
        Up to this share of every list goes to items added at run time (exploration; 0: none).
    """

    def __init__(
        self, path: str | Path, *, index: str = "auto", watch: bool = True, new_item_share: float = 0.0
    ) -> None:
        if index not in ("auto", "hnsw", "exact"):
            raise ConfigError(f"unknown index {index!r}; choose auto, hnsw or exact")
        reserved_slots(10, new_item_share)  # a share outside [0, 1] fails here, at start
        self.path = Path(path)
        self.index_kind = index
        self.watch = watch
        self.new_item_share = float(new_item_share)
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
        make_index = None if self.index_kind == "exact" else (lambda base: build_index(base, "hnsw"))
        view = ArtifactView.build(
            art,
            make_index=make_index,
            prev=prev.view if prev is not None else None,
            where=str(self.path),
            new_item_share=self.new_item_share,
        )
        # the model's items did not change: the content map fitted on them still holds
        mapper = prev.mapper if prev is not None and view.same_model_items else None
        return Snapshot(view=view, disk_key=disk_key, mapper=mapper)

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
            "new_item_share": self.new_item_share,
        }

    def warm_up(self) -> dict[str, float]:
        """Get ``POST /items`` ready before the first one: build the feature extractors (ONNX export cached
        on disk) and fit the content map a new item's vector comes from. Returns seconds per step."""
        from fusionrec.new_items import prepare

        with self._lock:
            snap = self._snap
            ready = prepare(snap.art, snap.mapper)
            if ready.mapper is not None and snap.mapper is None:
                snap.mapper = ready.mapper
            snap.neighbour_expansion = ready.neighbour_expansion
        return ready.seconds

    # ------------------------------------------------------------------ changes
    @contextmanager
    def mutating(self) -> Iterator[Snapshot]:
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

    def commit(self, art: Artifact, prev: Snapshot) -> Snapshot:
        """Save ``art`` as the next revision (inside :meth:`mutating`) and serve it from now on."""
        art.info["revision"] = int(prev.art.info.get("revision", 0)) + 1
        save_artifact(art, self.path)
        snap = self._build(art, _disk_key(self.path), prev)
        self._snap = snap
        return snap


def _disk_key(path: Path) -> tuple[int, ...]:
    try:
        st = os.stat(path / "model.json")
    except FileNotFoundError:
        return (0, 0, 0)
    return (st.st_ino, st.st_mtime_ns, st.st_size)
