"""Write a data set and its split in MMRec atomic format, so other tools run on exactly our data."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset, Features, Split


def split_labels(ds: Dataset, split: Split) -> np.ndarray:
    """x_label (0/1/2) per interaction row of ``ds`` from the split matrices."""
    labels = np.zeros(ds.n_interactions, np.int8)
    for lab, m in ((1, split.valid), (2, split.test)):
        coo = m.tocoo()
        keys = set(zip(coo.row.tolist(), coo.col.tolist(), strict=True))
        if keys:
            hit = np.fromiter(
                ((u, i) in keys for u, i in zip(ds.users, ds.items, strict=True)),
                bool,
                count=ds.n_interactions,
            )
            labels[hit] = lab
    return labels


def write_features(
    out: Path, features: Features, item_raw_ids: list[str], manifest: dict | None = None
) -> None:
    """``<modality>_feat.npy`` + ``<modality>_mask.npy`` per modality, ``items.csv`` (row → raw id), manifest."""
    out.mkdir(parents=True, exist_ok=True)
    for name in features:
        np.save(out / f"{name}_feat.npy", features[name].astype(np.float32))
        np.save(out / f"{name}_mask.npy", features.mask(name))
    if features.extractor_state:
        from safetensors.numpy import save_file

        save_file(
            {k: np.ascontiguousarray(v) for k, v in features.extractor_state.items()},
            str(out / "extractors.safetensors"),
        )
    pd.DataFrame({"item_id": item_raw_ids}).to_csv(out / "items.csv", index=False)
    info = {
        "modalities": features.dims,
        "items": len(item_raw_ids),
        "extractors": features.extractors,
        **(manifest or {}),
    }
    (out / "manifest.json").write_text(json.dumps(info, indent=2))


def export_mmrec(ds: Dataset, split: Split, out: str | Path, *, name: str | None = None) -> Path:
    """Write ``<name>.inter`` (userID, itemID, rating, timestamp, x_label), user/item maps and features.

    Written to a temporary directory and renamed into place.
    """
    out = Path(out)
    name = name or ds.name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        df = pd.DataFrame({"userID": ds.users, "itemID": ds.items})
        if ds.ratings is not None:
            df["rating"] = ds.ratings
        if ds.timestamps is not None:
            df["timestamp"] = ds.timestamps
        df["x_label"] = split_labels(ds, split)
        df.to_csv(tmp / f"{name}.inter", sep="\t", index=False)
        pd.DataFrame({"userID": np.arange(ds.n_users), "user_id": ds.user_ids.to_list()}).to_csv(
            tmp / "user_map.csv", index=False
        )
        pd.DataFrame({"itemID": np.arange(ds.n_items), "item_id": ds.item_ids.to_list()}).to_csv(
            tmp / "item_map.csv", index=False
        )
        if len(ds.features):
            write_features(tmp, ds.features, ds.item_ids.to_list())
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
