"""Artifacts on disk: data, not code.

An artifact is a directory:

- ``model.json``: model name, hyperparameters, learned scalars, package version, data fingerprint;
- ``arrays.safetensors``: every learned array;
- ``idmaps.json``: raw user and item ids in index order;
- ``train.npz``: the training interactions (CSR parts) used to exclude seen items;
- optional ``features.safetensors`` + ``extra.json`` (item features for cold start / similar items, titles).

It is written to a temporary sibling directory and renamed, so a crash leaves no half artifact; it is loaded
with ``allow_pickle=False`` and never unpickles anything.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file

from fusionrec import __version__
from fusionrec.data.dataset import Features, IdMap
from fusionrec.errors import DataError
from fusionrec.models.base import Recommender
from fusionrec.models.registry import get_model_class

FORMAT_VERSION = 1


@dataclass
class Artifact:
    """A fitted model together with what is needed to serve it by raw ids."""

    model: Recommender
    user_ids: IdMap
    item_ids: IdMap
    train: sp.csr_matrix
    features: Features | None = None
    info: dict[str, Any] = field(default_factory=dict)  # fingerprint, split, metrics, titles, ...

    @property
    def item_titles(self) -> list[str] | None:
        return self.info.get("item_titles")


def save_artifact(art: Artifact, path: str | Path) -> Path:
    """Write ``art`` atomically to ``path`` (replacing an existing artifact there)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        model = art.model
        arrays = {k: np.ascontiguousarray(v) for k, v in model.state_arrays().items()}
        save_file(arrays, str(tmp / "arrays.safetensors"))
        meta = {
            "format": FORMAT_VERSION,
            "package_version": __version__,
            "model": model.name,
            "params": model.get_params(),
            "state": model.state_meta(),
            **{k: v for k, v in art.info.items() if k != "item_titles"},
        }
        (tmp / "model.json").write_text(json.dumps(meta, indent=2, default=_json_default))
        (tmp / "idmaps.json").write_text(json.dumps({"users": art.user_ids.to_list(), "items": art.item_ids.to_list()}))
        train = sp.csr_matrix(art.train)
        np.savez(tmp / "train.npz", indptr=train.indptr, indices=train.indices, shape=np.asarray(train.shape))
        if art.features is not None and len(art.features):
            feats = {name: np.ascontiguousarray(art.features[name]) for name in art.features}
            feats.update({f"{name}__mask": art.features.mask(name).astype(np.uint8) for name in art.features})
            save_file(feats, str(tmp / "features.safetensors"))
        if art.item_titles is not None:
            (tmp / "extra.json").write_text(json.dumps({"item_titles": art.item_titles}))
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_artifact(path: str | Path) -> Artifact:
    path = Path(path)
    meta_file = path / "model.json"
    if not meta_file.exists():
        raise DataError(f"{path}: not an artifact (no model.json); create one with `fusionrec fit ... --out {path}`")
    meta = json.loads(meta_file.read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise DataError(f"{path}: artifact format {meta.get('format')} is not supported (expected {FORMAT_VERSION})")
    cls = get_model_class(meta["model"])
    model = cls.from_params(meta.get("params", {}))
    arrays = load_file(str(path / "arrays.safetensors"))
    model.load_state(arrays, meta.get("state", {}))
    ids = json.loads((path / "idmaps.json").read_text())
    with np.load(path / "train.npz", allow_pickle=False) as z:
        shape = tuple(int(x) for x in z["shape"])
        indptr, indices = z["indptr"], z["indices"]
        train = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=shape)
    features = None
    if (path / "features.safetensors").exists():
        raw = load_file(str(path / "features.safetensors"))
        names = [k for k in raw if not k.endswith("__mask")]
        features = Features({n: raw[n] for n in names}, {n: raw[f"{n}__mask"].astype(bool) for n in names})
    info = {k: v for k, v in meta.items() if k not in ("format", "params", "state", "model")}
    if (path / "extra.json").exists():
        info.update(json.loads((path / "extra.json").read_text()))
    return Artifact(model=model, user_ids=IdMap(ids["users"]), item_ids=IdMap(ids["items"]), train=train,
                    features=features, info=info)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple | set):
        return list(o)
    raise TypeError(f"cannot store {type(o).__name__} in model.json")
