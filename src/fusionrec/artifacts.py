"""Artifacts on disk: data, not code.

An artifact is a directory:

- ``model.json``: model name, hyperparameters, learned scalars, package version, data fingerprint;
- ``arrays.safetensors``: every learned array;
- ``idmaps.json``: raw user and item ids in index order;
- ``train.npz``: the training interactions (CSR parts, with rating values on the rating task) used to
  exclude seen items;
- optional ``features.safetensors`` + ``extra.json`` (item features for cold start / similar items, titles);
- optional ``extra_arrays.safetensors``: arrays owned by other layers (serving's added items, cold-start map).

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
# per-item lists kept in extra.json rather than model.json (one entry per item: long)
ITEM_LISTS = ("item_titles", "item_images")
# extra_arrays key: the timestamp of each training interaction, aligned with ``train``'s sorted nonzeros
TRAIN_TIMES = "train/times"


@dataclass
class Artifact:
    """A fitted model together with what is needed to serve it by raw ids."""

    model: Recommender
    user_ids: IdMap
    item_ids: IdMap
    train: sp.csr_matrix
    features: Features | None = None
    info: dict[str, Any] = field(default_factory=dict)  # fingerprint, split, metrics, titles, ...
    extra_arrays: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. serving's added-item vectors

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
            **{k: v for k, v in art.info.items() if k not in ITEM_LISTS},
        }
        (tmp / "model.json").write_text(json.dumps(meta, indent=2, default=_json_default))
        (tmp / "idmaps.json").write_text(
            json.dumps({"users": art.user_ids.to_list(), "items": art.item_ids.to_list()})
        )
        train = sp.csr_matrix(art.train)
        np.savez(
            tmp / "train.npz",
            indptr=train.indptr,
            indices=train.indices,
            data=train.data.astype(np.float32),  # rating values on the rating task, 1.0 otherwise
            shape=np.asarray(train.shape),
        )
        if art.features is not None and len(art.features):
            feats = {name: np.ascontiguousarray(art.features[name]) for name in art.features}
            feats.update({f"{name}__mask": art.features.mask(name).astype(np.uint8) for name in art.features})
            save_file(feats, str(tmp / "features.safetensors"))
        if art.extra_arrays:
            save_file(encode_arrays(art.extra_arrays), str(tmp / "extra_arrays.safetensors"))
        lists = {k: art.info[k] for k in ITEM_LISTS if art.info.get(k) is not None}
        if lists:
            (tmp / "extra.json").write_text(json.dumps(lists))
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
        raise DataError(
            f"{path}: not an artifact (no model.json); create one with `fusionrec fit ... --out {path}`"
        )
    meta = json.loads(meta_file.read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise DataError(
            f"{path}: artifact format {meta.get('format')} is not supported (expected {FORMAT_VERSION})"
        )
    cls = get_model_class(meta["model"])
    model = cls.from_params(meta.get("params", {}), upgrade=True)
    arrays = load_file(str(path / "arrays.safetensors"))
    model.load_state(arrays, meta.get("state", {}))
    ids = json.loads((path / "idmaps.json").read_text())
    with np.load(path / "train.npz", allow_pickle=False) as z:
        shape = tuple(int(x) for x in z["shape"])
        indptr, indices = z["indptr"], z["indices"]
        data = z["data"] if "data" in z.files else np.ones(len(indices), np.float32)
        if data.shape != indices.shape or not np.isfinite(data).all():
            raise DataError(f"{path}: train.npz holds {data.shape} values for {indices.shape} entries; refit")
        train = sp.csr_matrix((data.astype(np.float32), indices, indptr), shape=shape)
    features = None
    if (path / "features.safetensors").exists():
        raw = load_file(str(path / "features.safetensors"))
        names = [k for k in raw if not k.endswith("__mask")]
        features = Features({n: raw[n] for n in names}, {n: raw[f"{n}__mask"].astype(bool) for n in names})
    info = {k: v for k, v in meta.items() if k not in ("format", "params", "state", "model")}
    if (path / "extra.json").exists():
        info.update(json.loads((path / "extra.json").read_text()))
    extra_arrays = {}
    if (path / "extra_arrays.safetensors").exists():
        extra_arrays = decode_arrays(load_file(str(path / "extra_arrays.safetensors")))
    return Artifact(
        model=model,
        user_ids=IdMap(ids["users"]),
        item_ids=IdMap(ids["items"]),
        train=train,
        features=features,
        info=info,
        extra_arrays=extra_arrays,
    )


def forget_user(art: Artifact, raw_user_id: object) -> Artifact:
    """A copy of ``art`` without one user: its id, its training row and its rows of the model's state.

    The model removes the user itself (``Recommender.forget_user_rows``: the ``user_*_`` naming convention
    by default; kNN models and late fusion override it). Item-side arrays learnt with the user's help are
    kept; refitting without the user removes that trace too. Save the result with :func:`save_artifact` to
    make the deletion durable.
    """
    idx = art.user_ids.get(raw_user_id)
    if idx < 0:
        raise DataError(f"user {raw_user_id!r} is not in the artifact; nothing to forget")
    model = art.model
    n_users = len(art.user_ids)
    new_model = type(model).from_params(model.get_params())
    new_model.show_progress = model.show_progress
    new_model.load_state({k: v.copy() for k, v in model.state_arrays().items()}, model.state_meta())
    new_model.forget_user_rows(idx)
    keep = np.delete(np.arange(n_users), idx)
    old_train = sp.csr_matrix(art.train)
    train = old_train[keep]
    info = dict(art.info)
    info["forgotten_users"] = int(info.get("forgotten_users", 0)) + 1
    extra = dict(art.extra_arrays)
    times = extra.get(TRAIN_TIMES)
    if times is not None and len(times) == old_train.nnz:  # the user's interaction times go with its row
        extra[TRAIN_TIMES] = np.delete(times, np.arange(old_train.indptr[idx], old_train.indptr[idx + 1]))
    return Artifact(
        model=new_model,
        user_ids=IdMap(art.user_ids.raw_ids[keep]),
        item_ids=art.item_ids,
        train=train,
        features=art.features,
        info=info,
        extra_arrays=extra,
    )


_STR_DATA, _STR_ENDS = "__utf8", "__utf8_ends"


def encode_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Arrays safetensors can hold: string arrays (e.g. a TF-IDF vocabulary) become UTF-8 bytes + ends."""
    out: dict[str, np.ndarray] = {}
    for k, v in arrays.items():
        v = np.asarray(v)
        if v.dtype.kind in "US":
            parts = [str(x).encode() for x in v.ravel()]
            out[k + _STR_DATA] = np.frombuffer(b"".join(parts), np.uint8).copy()
            out[k + _STR_ENDS] = np.cumsum([len(b) for b in parts], dtype=np.int64).reshape(v.shape)
        elif v.dtype == object:
            raise DataError(f"array {k!r} holds Python objects; artifacts store numbers and strings only")
        else:
            out[k] = np.ascontiguousarray(v)
    return out


def decode_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inverse of :func:`encode_arrays`."""
    out = {k: v for k, v in arrays.items() if not (k.endswith(_STR_DATA) or k.endswith(_STR_ENDS))}
    for k in arrays:
        if k.endswith(_STR_DATA):
            name = k[: -len(_STR_DATA)]
            data, ends = arrays[k].tobytes(), arrays[name + _STR_ENDS]
            flat = ends.ravel()
            starts = np.concatenate([[0], flat])[:-1]
            out[name] = np.array(
                [data[a:b].decode() for a, b in zip(starts, flat, strict=True)], dtype=str
            ).reshape(ends.shape)
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple | set):
        return list(o)
    raise TypeError(f"cannot store {type(o).__name__} in model.json")
