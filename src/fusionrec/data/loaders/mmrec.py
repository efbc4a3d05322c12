"""MMRec atomic directories: one untyped ``*.inter`` TSV of indices plus one ``.npy`` per modality."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset, Features, IdMap
from fusionrec.data.feature_dir import feature_files, feature_rows, read_modalities
from fusionrec.data.loaders.base import Loader, LoadOptions
from fusionrec.data.loaders.common import Interactions, check_numeric, parse_timestamps, read_csv
from fusionrec.errors import DataError

log = logging.getLogger("fusionrec")

# An index space up to this many times the distinct ids (plus a little) is kept as is; a sparser one is
# remapped, so one stray id of 10^9 cannot size arrays by it (it used to grow `fit` to 23 GB).
_MAX_SPARSITY = 2
_SLACK = 1024


def is_typed_header(path: Path) -> bool:
    """True when the first line of ``path`` holds RecBole-style ``name:type`` fields."""
    from fusionrec.data.loaders.recbole import parse_header

    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline(64 * 1024)
    except OSError:
        return False
    return parse_header(first) is not None


def _inter_file(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix == ".inter" else None
    if path.is_dir():
        inters = sorted(path.glob("*.inter"))
        return inters[0] if inters else None
    return None


def detect(path: Path) -> bool:
    inter = _inter_file(path)
    return inter is not None and not is_typed_header(inter)


def _index_column(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    """A 0-based index column as int64; anything else (negative, text, beyond int64) names its row."""
    text = df[col].astype(str).str.strip()
    ok = text.str.fullmatch(r"\d{1,18}(\.0*)?").to_numpy(dtype=bool)
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise DataError(
            f"{path}: column {col!r} row {row + 2} holds {df[col].iloc[row]!r}; MMRec {col}s are 0-based "
            "integer indices (below 10^18). For raw ids use a generic table (--format csv)"
        )
    return text.str.replace(r"\.0*$", "", regex=True).astype(np.int64).to_numpy()


def _map_names(path: Path) -> pd.Series | None:
    """``user_map.csv``/``item_map.csv`` (index, original id) as a Series index → name; None when absent."""
    if not path.exists():
        return None
    df = read_csv(path, [], dtype=str, keep_default_na=False)
    if df.shape[1] < 2:
        raise DataError(f"{path}: expected two columns (index, original id); found {list(df.columns)}")
    idx = pd.to_numeric(df.iloc[:, 0], errors="coerce")
    bad = idx.isna() | (idx < 0) | (idx >= 2**62) | (idx != idx.round())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: row {row + 2} holds index {df.iloc[row, 0]!r}; the first column holds indices"
        )
    names = pd.Series(df.iloc[:, 1].to_numpy(dtype=object), index=idx.astype(np.int64).to_numpy())
    return names[~names.index.duplicated(keep="last")]


def _index_space(
    ids: np.ndarray, col: str, path: Path, names: pd.Series | None, pinned: tuple[int, str] | None
) -> tuple[np.ndarray, list[str]]:
    """Indices into a bounded index space, and the raw name of each index.

    ``pinned`` = (rows, file) when feature rows fix the index space: an id beyond it is an error. Otherwise
    a sparse id range (one huge id) is remapped to the distinct ids, with a warning.
    """
    top = int(ids.max())
    if pinned is not None:
        rows, what = pinned
        if top >= rows:
            row = int(np.flatnonzero(ids >= rows)[0])
            raise DataError(
                f"{path}: row {row + 2} has {col} {ids[row]}, but {what} has {rows} rows; MMRec {col}s are "
                "row indices of the feature files, so fix the id or the file"
            )
        original = np.arange(rows)
    else:
        distinct = np.unique(ids)
        n_named = 0 if names is None else len(names)
        n = max(top + 1, int(names.index.max()) + 1 if names is not None and n_named else 0)
        if n <= _MAX_SPARSITY * max(len(distinct), n_named) + _SLACK:
            original = np.arange(n)
        else:
            log.warning(
                "%s: %s runs up to %d but only %d distinct ids appear; remapped them to 0..%d "
                "(each keeps its original index, or its name in the map file, as its raw id)",
                path,
                col,
                n - 1,
                len(distinct),
                len(distinct) - 1,
            )
            original = distinct
            ids = np.searchsorted(distinct, ids)
    raw = pd.Series(original.astype(str), index=original, dtype=object)
    if names is not None:
        known = names[names.index.isin(original)]
        raw.loc[known.index] = known.to_numpy()
    return ids, raw.astype(str).tolist()


def load_mmrec(path: Path, options: LoadOptions | None = None) -> Dataset:
    """MMRec atomic directory: one ``*.inter`` TSV plus ``<name>.npy`` / ``<name>_feat.npy`` per modality.

    ``userID``/``itemID`` are 0-based indices; ``x_label`` (0/1/2) is the split. An ``item_map.csv`` /
    ``user_map.csv`` (index, original id) gives raw ids their original names, and when the directory sits
    inside a MovieLens directory (``../movies.csv``) the items get their text and posters from it.
    """
    path = Path(path)
    if path.is_file():
        inter_path, root = path, path.parent
    else:
        inters = sorted(path.glob("*.inter"))
        if len(inters) != 1:
            raise DataError(f"{path}: expected exactly one *.inter file, found {[p.name for p in inters]}")
        inter_path, root = inters[0], path
    df = read_csv(inter_path, ["userID", "itemID"], sep="\t", dtype=str, keep_default_na=False)
    users = _index_column(df, "userID", inter_path)
    items = _index_column(df, "itemID", inter_path)
    files = feature_files(root)
    pinned = None
    if files:
        rows = {f.name: feature_rows(f) for f in files.values()}
        if len(set(rows.values())) > 1:
            raise DataError(f"{root}: feature files disagree on the number of items: {rows}")
        name, n_rows = next(iter(rows.items()))
        pinned = (n_rows, name)
    users, user_names = _index_space(users, "userID", inter_path, _map_names(root / "user_map.csv"), None)
    items, item_names = _index_space(items, "itemID", inter_path, _map_names(root / "item_map.csv"), pinned)
    dup = pd.DataFrame({"u": users, "i": items}).duplicated(keep="last").to_numpy()
    if dup.any():
        log.warning("%s: %d duplicate (user, item) row(s); kept the last of each", inter_path, int(dup.sum()))
        df, users, items = df[~dup], users[~dup], items[~dup]
    labels = None
    if "x_label" in df.columns:
        lab = df["x_label"].astype(str).str.strip()
        bad = ~lab.isin(["0", "1", "2"]).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{inter_path}: row {row + 2} has x_label {df['x_label'].iloc[row]!r}; x_label must be "
                "0 (train), 1 (valid) or 2 (test) on every row"
            )
        labels = lab.astype(np.int8).to_numpy()
    ratings = None
    if "rating" in df.columns:
        ratings = check_numeric(df, "rating", inter_path).astype(np.float32)
        if np.isnan(ratings).any():
            row = int(np.flatnonzero(np.isnan(ratings))[0])
            raise DataError(
                f"{inter_path}: column 'rating' row {row + 2} is empty; fill it or drop the column"
            )
    ts = None
    if "timestamp" in df.columns:
        ts = parse_timestamps(
            df["timestamp"].replace("", None).reset_index(drop=True), inter_path, "timestamp"
        )
    uids, iids = IdMap(user_names), IdMap(item_names)
    features = read_modalities(root, n_rows=len(iids)) if files else Features()
    content = None
    parent = root.parent
    if (parent / "movies.csv").exists() and (root / "item_map.csv").exists():
        from fusionrec.data.loaders.movielens import movielens_content

        content = movielens_content(parent, iids)
    inter = Interactions(users, items, uids, iids, ratings, ts, df)
    return inter.dataset(root.name, labels=labels, content=content, features=features)


LOADER = Loader(detect, load_mmrec, "MMRec directory: one untyped *.inter TSV + <modality>_feat.npy")
