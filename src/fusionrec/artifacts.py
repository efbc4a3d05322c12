"""Artifacts on disk: data, not code.

An artifact is a directory:

- ``model.json``: model name, hyperparameters, learned scalars, package version, data fingerprint;
- ``arrays.safetensors``: every learned array;
- ``idmaps.json``: raw user and item ids in index order;
- ``train.npz``: the training interactions (CSR parts, with rating values on the rating task) used to
  exclude seen items;
- optional ``features.safetensors`` + ``extra.json`` (item features for cold start / similar items, titles);
- optional ``extra_arrays.safetensors``: arrays owned by other layers (serving's added items, cold-start map).

Loading treats every file as untrusted data: only regular files of bounded size inside the artifact are read
(:mod:`fusionrec.files`), nothing is unpickled, imported or called, hyperparameters and extractor configs are
checked against the registries, and shapes are checked against each other; any inconsistency is a
:class:`DataError` naming the file.

Replacement is atomic and durable. ``PATH`` is a symbolic link to a sibling version directory
``.NAME.v000007``; a save writes ``.NAME.tmp-PID-*``, fsyncs every file and the directory, renames it to the
next version, swaps the link with one ``rename`` (fsyncing the parent after each step) and then deletes the
older versions. Whatever a crash at any step leaves, :func:`load_artifact` reads a complete version: the old
one until the swap, the new one after it, and the newest complete version when a crash during the first save
over a plain directory left no name at all. A ``PATH`` that is a link of the operator's own (``current -> v7``)
is swapped the same way and ``v7`` is left alone.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file

from fusionrec import __version__
from fusionrec.data.dataset import Features, IdMap
from fusionrec.errors import ConfigError, DataError, UnknownUserError
from fusionrec.files import MAX_JSON_BYTES, MAX_META_BYTES, check_regular, json_default, read_json
from fusionrec.models.base import Recommender
from fusionrec.models.registry import get_model_class

log = logging.getLogger("fusionrec")

FORMAT_VERSION = 1
# per-item lists kept in extra.json rather than model.json (one entry per item: long)
ITEM_LISTS = ("item_titles", "item_images")
# extra_arrays key: the timestamp of each training interaction, aligned with ``train``'s sorted nonzeros
TRAIN_TIMES = "train/times"
# extra_arrays keys of users whose interactions arrived after fitting (``fusionrec.interactions``): their
# indices (sorted; every user past the model's own ``n_users_`` is one) and, for inner-product models, their
# fold-in vectors, one row per index. The query core serves these users from them instead of the model's rows.
LIVE_USERS = "live/users"
LIVE_USER_VECTORS = "live/user_vectors"
#: called with the name of each step of a replacement, after it is done (tests kill the process there)
crash_hook: Callable[[str], None] | None = None


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


# ---------------------------------------------------------------------------------------------- saving


def save_artifact(art: Artifact, path: str | Path) -> Path:
    """Write ``art`` to ``path``, atomically and durably replacing an artifact there; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
    try:
        _write_files(art, tmp)
        _fsync_dir(tmp)
        _step("written")
        replace_artifact_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _write_files(art: Artifact, tmp: Path) -> None:
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
    _write_text(tmp / "model.json", json.dumps(meta, indent=2, default=json_default))
    _write_text(
        tmp / "idmaps.json", json.dumps({"users": art.user_ids.to_list(), "items": art.item_ids.to_list()})
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
        _write_text(tmp / "extra.json", json.dumps(lists))
    for f in tmp.iterdir():
        _fsync_file(f)


def replace_artifact_dir(new_dir: str | Path, path: str | Path) -> Path:
    """Make the complete directory ``new_dir`` the artifact at ``path``, atomically and durably.

    ``new_dir`` (a sibling of ``path``, its files already fsynced) becomes the next version directory, then
    ``path`` is pointed at it by renaming a fresh symbolic link over it, and older versions are deleted
    (a forgotten user must not linger in them). Returns the version directory.
    """
    new_dir, path = Path(new_dir), Path(path)
    parent, name = path.parent, path.name
    if path.exists() and not path.is_dir():
        raise DataError(f"{path}: exists and is not an artifact directory; choose another output path")
    legacy = path.is_dir() and not path.is_symlink()
    if legacy and not (path / "model.json").exists():
        if any(path.iterdir()):
            raise DataError(
                f"{path}: is a directory that holds no artifact; refusing to replace it (choose another path)"
            )
        path.rmdir()
        legacy = False
    seq = max(_versions(parent, name), default=0) + 1
    while True:  # another writer may have taken the number (no writer lock outside the server): take the next
        version = parent / f".{name}.v{seq + int(legacy):06d}"
        try:
            os.rename(new_dir, version)
            break
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            seq += 1
    _fsync_dir(parent)
    _step("renamed")
    if legacy:  # the first save over a plain directory: it becomes the previous version
        os.rename(path, parent / f".{name}.v{seq:06d}")
        _fsync_dir(parent)
        _step("moved-aside")
    _point(path, version)
    _step("swapped")
    _cleanup(parent, name, _seq(version.name, name))
    _fsync_dir(parent)
    _step("cleaned")
    return version


def _point(path: Path, version: Path) -> None:
    link = path.parent / f".{path.name}.link-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.symlink(version.name, link)  # relative: the folder can be moved or mounted elsewhere
    _step("linked")
    try:
        os.replace(link, path)
    except BaseException:
        link.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _step(name: str) -> None:
    if crash_hook is not None:
        crash_hook(name)


def _versions(parent: Path, name: str) -> dict[int, Path]:
    out: dict[int, Path] = {}
    try:
        entries = list(os.scandir(parent))
    except FileNotFoundError:
        return out
    for e in entries:
        seq = _seq(e.name, name)
        if seq is not None and e.is_dir(follow_symlinks=False):
            out[seq] = Path(e.path)
    return out


def _seq(entry: str, name: str) -> int | None:
    prefix = f".{name}.v"
    if entry.startswith(prefix) and entry[len(prefix) :].isdigit():
        return int(entry[len(prefix) :])
    return None


_OWNED = re.compile(r"^\.(?P<name>.+)\.(?:tmp|link)-(?P<pid>\d+)-")


def _cleanup(parent: Path, name: str, current: int | None) -> None:
    """Delete versions older than ``current`` and what crashed writers left (temp dirs, links, ``.old``)."""
    for seq, p in _versions(parent, name).items():
        if current is not None and seq < current:
            shutil.rmtree(p, ignore_errors=True)
    old = parent / f".{name}.old"  # the previous format's leftover
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    for e in os.scandir(parent):
        hit = _OWNED.match(e.name)
        if hit is None or hit["name"] != name or _alive(int(hit["pid"])):
            continue
        if e.is_dir(follow_symlinks=False):
            shutil.rmtree(e.path, ignore_errors=True)
        else:
            try:
                os.unlink(e.path)
            except OSError:
                pass


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # this process's own temp dirs are removed by the writer that made them
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------- loading


def recover_artifact(path: str | Path) -> Path:
    """The real directory holding the artifact named ``path``, after repairing what a crash left.

    A name pointing at a complete version is used as it is (older versions and dead writers' temp dirs are
    deleted). A missing or dangling name with version directories beside it (a crash between moving a plain
    directory aside and linking its replacement) is pointed at the newest complete version.
    """
    path = Path(path)
    parent, name = path.parent, path.name
    if path.is_dir():
        real = Path(os.path.realpath(path))
        if real.parent == Path(os.path.realpath(parent)):
            try:
                _cleanup(parent, name, _seq(real.name, name))
            except OSError:
                pass  # a read-only artifact is still readable
        return real
    if path.exists():
        raise DataError(f"{path}: not an artifact (a file, not a directory)")
    versions = _versions(parent, name)
    if not versions:
        raise DataError(
            f"{path}: not an artifact (no model.json); create one with `fusionrec fit ... --out {path}`"
        )
    newest = versions[max(versions)]
    log.warning("artifact %s: no current version (an interrupted save); recovering %s", path, newest.name)
    try:
        if path.is_symlink():
            path.unlink()
        _point(path, newest)
    except OSError as e:
        log.warning("artifact %s: cannot relink (%s); reading %s directly", path, e, newest)
    return newest


def load_artifact(path: str | Path) -> Artifact:
    """Read the artifact at ``path`` (see the module docstring for what is checked)."""
    path = Path(path)
    for attempt in range(3):
        root = recover_artifact(path)
        try:
            return _load_dir(root)
        except FileNotFoundError:
            # a writer in another process swapped versions and deleted this one while it was read: retry
            if attempt == 2 or Path(os.path.realpath(path)) == root:
                raise
    raise AssertionError("unreachable")


def _load_dir(root: Path) -> Artifact:
    meta_file = root / "model.json"
    if not meta_file.exists() and not meta_file.is_symlink():
        raise DataError(
            f"{root}: not an artifact (no model.json); create one with `fusionrec fit ... --out {root}`"
        )
    meta = read_json(meta_file, max_bytes=MAX_META_BYTES)
    if not isinstance(meta, dict):
        raise DataError(f"{meta_file}: must hold a JSON object")
    if meta.get("format") != FORMAT_VERSION:
        raise DataError(
            f"{root}: artifact format {meta.get('format')!r} is not supported (expected {FORMAT_VERSION})"
        )
    params, state = meta.get("params", {}), meta.get("state", {})
    if not isinstance(meta.get("model"), str) or not isinstance(params, dict) or not isinstance(state, dict):
        raise DataError(f"{meta_file}: 'model' must be a name, 'params' and 'state' JSON objects")
    for key in ("revision", "added_items", "forgotten_users"):
        if key in meta and (not isinstance(meta[key], int) or isinstance(meta[key], bool) or meta[key] < 0):
            raise DataError(f"{meta_file}: {key!r} must be a non-negative integer; got {meta[key]!r}")
    try:
        cls = get_model_class(meta["model"])
        model = cls.from_params(params, upgrade=True)
        if meta.get("feature_extractors") is not None:
            from fusionrec.features.base import validate_extractor_configs

            validate_extractor_configs(meta["feature_extractors"], where=f"{meta_file} feature_extractors")
    except ConfigError as e:
        raise DataError(f"{meta_file}: {e}") from None
    arrays = _safetensors(root / "arrays.safetensors")
    try:
        model.load_state(arrays, state)
    except DataError as e:
        raise DataError(f"{root / 'arrays.safetensors'}: {e}") from None
    ids_file = root / "idmaps.json"
    ids = read_json(ids_file, max_bytes=MAX_JSON_BYTES)
    if not (
        isinstance(ids, dict)
        and all(isinstance(ids.get(k), list) for k in ("users", "items"))
        and all(
            isinstance(x, str | int) and not isinstance(x, bool) for k in ("users", "items") for x in ids[k]
        )
    ):
        raise DataError(
            f"{ids_file}: must hold {{'users': [ids], 'items': [ids]}} with string or integer ids"
        )
    try:
        user_ids, item_ids = IdMap(ids["users"]), IdMap(ids["items"])
    except DataError as e:
        raise DataError(f"{ids_file}: {e}") from None
    n_users, n_items = len(user_ids), len(item_ids)
    if model.n_users_ > n_users or model.n_items_ > n_items:
        raise DataError(
            f"{root}: the model has {model.n_users_} users and {model.n_items_} items but {ids_file.name} lists "
            f"{n_users} users and {n_items} items; the artifact is damaged, refit it"
        )
    train = _train(root / "train.npz", n_users, n_items)
    features = None
    if (root / "features.safetensors").exists():
        raw = _safetensors(root / "features.safetensors")
        names = [k for k in raw if not k.endswith("__mask")]
        for n in names:
            v, m = raw[n], raw.get(f"{n}__mask")
            if v.ndim != 2 or v.shape[0] != n_items or m is None or m.shape != (n_items,):
                raise DataError(
                    f"{root / 'features.safetensors'}: modality {n!r} needs ({n_items}, d) values and a "
                    f"({n_items},) mask; got {v.shape} and {None if m is None else m.shape}"
                )
        features = Features({n: raw[n] for n in names}, {n: raw[f"{n}__mask"].astype(bool) for n in names})
    info = {k: v for k, v in meta.items() if k not in ("format", "params", "state", "model")}
    if (root / "extra.json").exists():
        extra = read_json(root / "extra.json", max_bytes=MAX_JSON_BYTES)

        def _strings(v: Any) -> bool:
            return isinstance(v, list) and all(isinstance(t, str) or t is None for t in v)

        if not isinstance(extra, dict) or not all(_strings(extra[k]) for k in ITEM_LISTS if k in extra):
            raise DataError(
                f"{root / 'extra.json'}: must hold per-item lists of strings ({', '.join(ITEM_LISTS)})"
            )
        info.update(extra)
    extra_arrays = {}
    if (root / "extra_arrays.safetensors").exists():
        try:
            extra_arrays = decode_arrays(_safetensors(root / "extra_arrays.safetensors"))
        except (KeyError, UnicodeDecodeError, ValueError) as e:
            raise DataError(f"{root / 'extra_arrays.safetensors'}: damaged string arrays ({e})") from None
    _check_live_users(extra_arrays, int(model.n_users_), n_users, root / "extra_arrays.safetensors")
    return Artifact(
        model=model,
        user_ids=user_ids,
        item_ids=item_ids,
        train=train,
        features=features,
        info=info,
        extra_arrays=extra_arrays,
    )


def _check_live_users(extra: dict[str, np.ndarray], n_model: int, n_users: int, where: Path) -> None:
    """Users added after fitting must each have a live entry; live indices in range, sorted, one vector each."""
    live = extra.get(LIVE_USERS)
    if live is None:
        if n_users != n_model:
            raise DataError(
                f"{where.parent}: the model has {n_model} users but the id map lists {n_users} and no "
                f"{LIVE_USERS} entries say how to serve the others; the artifact is damaged, refit it"
            )
        return
    ok = (
        live.ndim == 1
        and live.dtype.kind in "iu"
        and (len(live) == 0 or (int(live.min()) >= 0 and int(live.max()) < n_users))
        and bool(np.all(np.diff(live) > 0))
        and int(np.count_nonzero(live >= n_model)) == n_users - n_model
    )
    if not ok:
        raise DataError(
            f"{where}: {LIVE_USERS} must be increasing user indices below {n_users} covering the "
            f"{n_users - n_model} user(s) added after fitting; the artifact is damaged, refit it"
        )
    vecs = extra.get(LIVE_USER_VECTORS)
    if vecs is not None and (vecs.ndim != 2 or vecs.shape[0] != len(live) or not np.isfinite(vecs).all()):
        raise DataError(f"{where}: {LIVE_USER_VECTORS} must hold one finite row per entry of {LIVE_USERS}")


def _safetensors(path: Path) -> dict[str, np.ndarray]:
    try:
        check_regular(path)
    except FileNotFoundError:
        raise DataError(f"{path}: missing; the artifact is incomplete, refit it") from None
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for malformed headers
        raise DataError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None


def _train(path: Path, n_users: int, n_items: int) -> sp.csr_matrix:
    """The training matrix, its CSR parts checked before scipy sees them (an index out of range used to
    surface as a 500 when a user's seen items were masked)."""
    try:
        check_regular(path)
        with np.load(path, allow_pickle=False) as z:
            indptr, indices, shape = z["indptr"], z["indices"], z["shape"]
            data = z["data"] if "data" in z.files else np.ones(len(indices), np.float32)
    except FileNotFoundError:
        raise DataError(f"{path}: missing; the artifact is incomplete, refit it") from None
    except (KeyError, ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable training matrix (indptr, indices, shape): {e}") from None
    ints = all(a.dtype.kind in "iu" for a in (indptr, indices, shape))
    if not ints or shape.shape != (2,) or indptr.ndim != 1 or indices.ndim != 1:
        raise DataError(f"{path}: indptr, indices and shape must be 1-d integer arrays, shape of length 2")
    rows, cols = int(shape[0]), int(shape[1])
    if rows != n_users or not 0 <= cols <= n_items:
        raise DataError(f"{path}: shape {rows}×{cols} does not fit {n_users} users and {n_items} items")
    if (
        len(indptr) != rows + 1
        or indptr[0] != 0
        or indptr[-1] != len(indices)
        or (len(indptr) > 1 and np.any(np.diff(indptr) < 0))
    ):
        raise DataError(f"{path}: indptr is not a valid row index for {rows} rows and {len(indices)} entries")
    if len(indices) and (indices.min() < 0 or indices.max() >= cols):
        raise DataError(f"{path}: an item index is out of range 0..{cols - 1}")
    if data.shape != indices.shape or data.dtype.kind not in "fiu" or not np.isfinite(data).all():
        raise DataError(
            f"{path}: holds {data.shape} values for {indices.shape} entries (or non-finite ones); refit"
        )
    return sp.csr_matrix((data.astype(np.float32), indices, indptr), shape=(rows, cols))


def forget_user(art: Artifact, raw_user_id: object) -> Artifact:
    """A copy of ``art`` without one user: its id, its training row and its rows of the model's state.

    The model removes the user itself (``Recommender.forget_user_rows``: the ``user_*_`` naming convention
    by default; kNN models and late fusion override it); a user added after fitting loses its live entry
    instead. Item-side arrays learnt with the user's help are kept; refitting without the user removes
    that trace too. Save the result with :func:`save_artifact` to make the deletion durable.
    """
    idx = art.user_ids.get(raw_user_id)
    if idx < 0:
        raise UnknownUserError(f"user {raw_user_id!r} is not in the artifact; nothing to forget")
    model = art.model
    n_users = len(art.user_ids)
    new_model = model  # a user added after fitting has no rows in the model
    if idx < model.n_users_:
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
    live = extra.get(LIVE_USERS)
    if live is not None:  # its fold-in vector goes too; later users move up one index
        stay = live != idx
        extra[LIVE_USERS] = np.where(live[stay] > idx, live[stay] - 1, live[stay]).astype(np.int64)
        if LIVE_USER_VECTORS in extra:
            extra[LIVE_USER_VECTORS] = extra[LIVE_USER_VECTORS][stay]
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
