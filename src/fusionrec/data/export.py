"""Write a data set and its split in another tool's format (MMRec or RecBole atomic files).

Both writers fill a temporary directory beside ``out`` and rename it into place, so a failed export leaves
no half-written directory. ``EXPORTERS`` lists them for ``fusionrec export --format``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data import methods
from fusionrec.data.dataset import Dataset, Split
from fusionrec.data.feature_dir import write_feature_dir as write_features
from fusionrec.data.loaders.recbole import SPLIT_PARTS


def split_labels(ds: Dataset, split: Split) -> np.ndarray:
    """x_label (0/1/2) per interaction row of ``ds`` from the split matrices."""
    labels = np.zeros(ds.n_interactions, np.int8)
    for lab, m in ((1, split.valid), (2, split.test)):
        if m.nnz:
            hit = np.asarray(m.tocsr()[ds.users, ds.items]).ravel() != 0
            labels[hit] = lab
    return labels


@contextlib.contextmanager
def atomic_dir(out: Path) -> Iterator[Path]:
    """A temporary directory beside ``out`` that replaces ``out`` when the block ends without error."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def export_mmrec(ds: Dataset, split: Split, out: str | Path, *, name: str | None = None) -> Path:
    """Write ``<name>.inter`` (userID, itemID, rating, timestamp, x_label), user/item maps and features."""
    out = Path(out)
    name = name or ds.name
    with atomic_dir(out) as tmp:
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
    return out


def _one_line(values: list[str]) -> list[str]:
    """RecBole fields are tab-separated and unquoted: tabs and line breaks become spaces."""
    return [re.sub(r"[\t\r\n]", " ", str(v)) for v in values]


def _write_atomic_file(path: Path, df: pd.DataFrame) -> None:
    """Tab-separated, unquoted (RecBole reads quotes as data), one record per line."""
    cols = [df[c].astype(str).reset_index(drop=True) for c in df.columns]
    body = cols[0].str.cat(cols[1:], sep="\t") if len(cols) > 1 else cols[0]
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(df.columns) + "\n")
        f.writelines(line + "\n" for line in body)


def export_recbole(ds: Dataset, split: Split, out: str | Path, *, name: str | None = None) -> Path:
    """RecBole atomic files: ``NAME.train/valid/test.inter`` (the split), ``NAME.item``, ``NAME.user``.

    Ids are written as tokens; the item file carries ``title`` and ``text`` (the whole item text) and, when
    present, the image path. Features go beside them (``<modality>_feat.npy`` + ``items.csv``), which
    ``fusionrec`` reads back; RecBole itself ignores them.
    """
    out = Path(out)
    name = name or ds.name
    labels = split_labels(ds, split)
    with atomic_dir(out) as tmp:
        cols = {
            "user_id:token": ds.user_ids.raw_ids[ds.users],
            "item_id:token": ds.item_ids.raw_ids[ds.items],
        }
        if ds.ratings is not None:
            cols["rating:float"] = ds.ratings
        if ds.timestamps is not None:
            cols["timestamp:float"] = ds.timestamps
        inter = pd.DataFrame(cols)
        for label, part in enumerate(SPLIT_PARTS):
            _write_atomic_file(tmp / f"{name}.{part}.inter", inter[labels == label])
        items = {"item_id:token": ds.item_ids.to_list()}
        if ds.content is not None:
            if ds.content.titles is not None:
                items["title:token_seq"] = _one_line(ds.content.titles)
            items["text:token_seq"] = _one_line(ds.content.texts)
            if any(p is not None for p in ds.content.image_paths):
                items["image:token"] = ["" if p is None else str(p) for p in ds.content.image_paths]
        _write_atomic_file(tmp / f"{name}.item", pd.DataFrame(items))
        _write_atomic_file(tmp / f"{name}.user", pd.DataFrame({"user_id:token": ds.user_ids.to_list()}))
        if len(ds.features):
            write_features(tmp, ds.features, ds.item_ids.to_list())
    return out


EXPORTERS: dict[str, Callable[..., Path]] = {"mmrec": export_mmrec, "recbole": export_recbole}
if tuple(EXPORTERS) != methods.EXPORT_FORMATS:  # the CLI lists methods.EXPORT_FORMATS without importing this
    raise ImportError(f"fusionrec.data.methods.EXPORT_FORMATS must list {tuple(EXPORTERS)}")

__all__ = ["EXPORTERS", "export_mmrec", "export_recbole", "split_labels", "write_features"]
