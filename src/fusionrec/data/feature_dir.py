"""The one reader and writer of a feature directory.

Layout (written by ``fusionrec features`` and ``fusionrec export``; read by every loader)::

    <modality>_feat.npy      (n_items, d) float32, one row per item (``<modality>.npy`` is read too)
    <modality>_mask.npy      (n_items,) bool: True where the item had usable content
    items.csv                the raw item id of each row (absent in MMRec directories: rows are item indices)
    manifest.json            modalities, item count, extractor configs, extraction reports
    extractors.safetensors   learned extractor state keyed "modality/key"

Files are data: arrays are loaded with ``allow_pickle=False`` and checked (dtype, shape, row count) before
anything uses them, and every file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.data.dataset import Features, IdMap
from fusionrec.errors import DataError

log = logging.getLogger("fusionrec")

FEAT_SUFFIX = "_feat.npy"
MASK_SUFFIX = "_mask.npy"
ITEMS_FILE = "items.csv"
MANIFEST_FILE = "manifest.json"
STATE_FILE = "extractors.safetensors"

_FEAT_RE = re.compile(r"^(?P<name>.+?)(?:_feat)?\.npy$")


def modality_name(filename: str) -> str | None:
    """``image_feat.npy`` → ``image``; ``vggish.npy`` → ``vggish``; masks and non-npy files → None."""
    if filename.endswith(MASK_SUFFIX):
        return None
    m = _FEAT_RE.match(filename)
    return m.group("name") if m else None


def feature_files(folder: Path) -> dict[str, Path]:
    """``{modality: path}`` of the feature matrices in ``folder`` (sorted by file name)."""
    out: dict[str, Path] = {}
    for f in sorted(Path(folder).glob("*.npy")):
        name = modality_name(f.name)
        if name and name not in out:
            out[name] = f
    return out


def read_npy(path: Path, *, mmap: bool = False) -> np.ndarray:
    """``np.load`` that never unpickles and turns a broken file into a DataError naming it."""
    try:
        # memory-mapped first: a header claiming more data than the file holds fails here, before any
        # allocation of the claimed size
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        if not mmap and isinstance(arr, np.ndarray):
            arr = np.array(arr)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (ValueError, OSError, EOFError) as e:
        objects = "allow_pickle" in str(e) or "Python objects" in str(e)
        what = "holds Python objects" if objects else f"is not a readable .npy array ({e})"
        raise DataError(f"{path}: {what}; feature files must be numeric .npy arrays (np.save)") from None
    if not isinstance(arr, np.ndarray):
        raise DataError(f"{path}: an .npz archive, not a single .npy array")
    return arr


def feature_rows(path: Path) -> int:
    """Row count of a feature matrix, read from the header only (no data is loaded)."""
    arr = read_npy(path, mmap=True)
    if arr.ndim != 2:
        raise DataError(f"{path}: a feature file must be 2-D (n_items, d); got shape {arr.shape}")
    return int(arr.shape[0])


def _read_matrix(path: Path) -> np.ndarray:
    arr = read_npy(path)
    if arr.ndim != 2:
        raise DataError(f"{path}: a feature file must be 2-D (n_items, d); got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
        raise DataError(f"{path}: dtype {arr.dtype} is not a real number type; save float32 features")
    return arr.astype(np.float32, copy=False)


def _read_mask(path: Path, n_rows: int) -> np.ndarray:
    mask = read_npy(path)
    if mask.ndim != 1 or mask.shape[0] != n_rows:
        raise DataError(
            f"{path}: shape {mask.shape}, but its feature file has {n_rows} rows; a mask holds one "
            "True/False per row (rewrite it, or delete it to treat every finite row as present)"
        )
    if mask.dtype != bool:
        if not np.issubdtype(mask.dtype, np.number) or not np.isin(mask, (0, 1)).all():
            raise DataError(f"{path}: a mask must be bool (or 0/1); got dtype {mask.dtype}")
        mask = mask.astype(bool)
    return mask


def read_modalities(folder: Path, n_rows: int | None = None) -> Features:
    """Every feature matrix in ``folder`` (with its mask) in file-row order, plus manifest and state.

    ``n_rows`` is the row count every matrix must have (None: whatever the first one has).
    """
    folder = Path(folder)
    features = Features()
    for name, f in feature_files(folder).items():
        values = _read_matrix(f)
        expected = n_rows if n_rows is not None else (features.n_items if len(features) else None)
        if expected is not None and values.shape[0] != expected:
            raise DataError(f"{f}: {values.shape[0]} rows, but the data set has {expected} items")
        mask_file = folder / f"{name}{MASK_SUFFIX}"
        mask = _read_mask(mask_file, values.shape[0]) if mask_file.exists() else None
        features.add(name, values, mask, source=str(f))
    features.extractors = read_manifest(folder).get("extractors") or {}
    features.extractor_state = _flat_states(folder)
    return features


def read_feature_dir(folder: Path, item_ids: IdMap) -> Features:
    """A directory written by ``fusionrec features``, its rows aligned to ``item_ids`` by ``items.csv``.

    Items the directory does not list get an absent (imputed) row.
    """
    from fusionrec.data.loaders.common import read_csv

    folder = Path(folder)
    order_file = folder / ITEMS_FILE
    if not order_file.exists():
        raise DataError(f"{folder}: feature directory without {ITEMS_FILE} (the raw item id of each row)")
    rows_df = read_csv(order_file, [], dtype=str, keep_default_na=False)
    rows = IdMap(rows_df.iloc[:, 0].tolist())
    raw = read_modalities(folder, n_rows=len(rows))
    pick = rows.indices(item_ids.to_list())
    ok = pick >= 0
    features = Features()
    for name in raw:
        values = raw[name]
        out = np.zeros((len(item_ids), values.shape[1]), np.float32)
        out_mask = np.zeros(len(item_ids), bool)
        out[ok] = values[pick[ok]]
        out_mask[ok] = raw.mask(name)[pick[ok]]
        features.add(name, out, out_mask)
    features.extractors = raw.extractors
    features.extractor_state = raw.extractor_state
    return features


def read_manifest(folder: Path) -> dict[str, Any]:
    """``manifest.json`` as a dict ({} when absent)."""
    path = Path(folder) / MANIFEST_FILE
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(info, dict) or not isinstance(info.get("extractors") or {}, dict):
        raise DataError(f"{path}: expected a JSON object with an 'extractors' object")
    return info


def read_states(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    """``extractors.safetensors`` as ``{modality: {key: array}}`` ({} when absent)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, value in _flat_states(folder).items():
        modality, _, name = key.partition("/")
        out.setdefault(modality, {})[name] = value
    return out


def _flat_states(folder: Path) -> dict[str, np.ndarray]:
    path = Path(folder) / STATE_FILE
    if not path.exists():
        return {}
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable safetensors file ({e})") from None


# ------------------------------------------------------------------------------------------------ writing


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_npy(path: Path, array: np.ndarray) -> None:
    _atomic_write(Path(path), lambda f: np.save(f, array, allow_pickle=False))


def write_manifest(folder: Path, info: Mapping[str, Any]) -> None:
    text = json.dumps(dict(info), indent=2, default=str)
    _atomic_write(Path(folder) / MANIFEST_FILE, lambda f: f.write(text.encode("utf-8")))


def update_manifest(folder: Path, entries: Mapping[str, Any]) -> None:
    """Merge ``entries`` into an existing ``manifest.json`` (created when absent)."""
    info = read_manifest(folder)
    info.update(entries)
    write_manifest(folder, info)


def write_feature_dir(
    out: Path,
    features: Features,
    item_raw_ids: list[str] | None,
    manifest: Mapping[str, Any] | None = None,
) -> None:
    """``<modality>_feat.npy`` + ``_mask.npy`` per modality, learned state, ``items.csv`` and the manifest.

    ``item_raw_ids`` None writes no ``items.csv`` (an MMRec directory, where rows are item indices).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in features:
        write_npy(out / f"{name}{FEAT_SUFFIX}", features[name].astype(np.float32))
        write_npy(out / f"{name}{MASK_SUFFIX}", features.mask(name))
    if features.extractor_state:
        from safetensors.numpy import save

        blob = save({k: np.ascontiguousarray(v) for k, v in features.extractor_state.items()})
        _atomic_write(out / STATE_FILE, lambda f: f.write(blob))
    n_items = features.n_items
    if item_raw_ids is not None:
        import pandas as pd

        n_items = len(item_raw_ids)
        csv = pd.DataFrame({"item_id": item_raw_ids}).to_csv(index=False)
        _atomic_write(out / ITEMS_FILE, lambda f: f.write(csv.encode("utf-8")))
    info = {"modalities": features.dims, "items": n_items, "extractors": features.extractors}
    write_manifest(out, {**info, **(manifest or {})})
