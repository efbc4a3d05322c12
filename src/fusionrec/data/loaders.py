"""Loaders: MovieLens directories, MMRec atomic directories, generic CSV/Parquet tables, the bundled demo.

``load_dataset(path)`` picks the loader from what the path holds; ``format=`` forces one.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset, Features, IdMap, ItemContent
from fusionrec.data.media import attach_media, media_from_columns, media_from_dirs
from fusionrec.errors import DataError

log = logging.getLogger("fusionrec")

FORMATS = ("movielens", "mmrec", "csv", "parquet", "demo")
_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")


@dataclass
class LoadOptions:
    """How raw interactions become implicit positives, and which users/items are kept."""

    rating_threshold: float | None = None  # keep rows with rating >= threshold; None keeps every row
    kcore: int = 0  # iterative k-core on users and items (0 = off)
    user_col: str = "user_id"
    item_col: str = "item_id"
    rating_col: str | None = "rating"
    time_col: str | None = "timestamp"
    items_path: str | None = None  # generic format: items table (id, text columns, image path)
    item_id_col: str = "item_id"
    text_cols: tuple[str, ...] = ("title", "text", "description")
    image_col: str | None = "image"
    sep: str | None = None


def demo_path() -> Path:
    """Directory of the bundled demo data (MovieLens ml-latest-small CSVs and precomputed features)."""
    return Path(__file__).resolve().parent.parent / "demo_data"


def detect_format(path: Path) -> str:
    if path.is_file():
        if path.suffix in (".parquet", ".pq"):
            return "parquet"
        if path.suffix in (".csv", ".tsv", ".txt"):
            return "csv"
        if path.suffix == ".inter":
            return "mmrec"
        raise DataError(
            f"{path}: cannot tell the format from the file name; pass --format {'|'.join(FORMATS)}"
        )
    if not path.is_dir():
        raise DataError(f"{path}: no such file or directory")
    if (path / "ratings.csv").exists() and (path / "movies.csv").exists():
        return "movielens"
    if list(path.glob("*.inter")):
        return "mmrec"
    if list(path.glob("interactions.csv")) or list(path.glob("interactions.parquet")):
        return "csv" if (path / "interactions.csv").exists() else "parquet"
    raise DataError(
        f"{path}: found neither ratings.csv + movies.csv (MovieLens), a *.inter file (MMRec), nor "
        "interactions.csv/.parquet (generic). Pass --format to say which it is."
    )


def load_dataset(path: str | Path, format: str | None = None, options: LoadOptions | None = None) -> Dataset:
    """Load a data set from ``path`` (see module docstring), then apply the implicit-feedback options."""
    options = options or LoadOptions()
    p = Path(path)
    if format is None and str(path) == "demo":
        format = "demo"
    fmt = format or detect_format(p)
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "demo":
        ds = load_movielens(demo_path())
        ds.name = "demo"
    elif fmt == "movielens":
        ds = load_movielens(p)
    elif fmt == "mmrec":
        ds = load_mmrec(p)
    else:
        ds = load_table(p, options, parquet=(fmt == "parquet"))
    ds = apply_implicit(ds, options)
    log.info("loaded %s: %s", fmt, ds.summary())
    return ds


# ----------------------------------------------------------------------------------------------- helpers


def _read_csv(path: Path, required: list[str], **kw) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, **kw)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; it needs a header row with {required}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot parse as a table ({e}); check the delimiter and encoding") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    if df.empty:
        raise DataError(f"{path}: the file has a header but no rows")
    return df


def _check_numeric(df: pd.DataFrame, col: str, path: Path) -> None:
    bad = pd.to_numeric(df[col], errors="coerce").isna() & df[col].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}: column {col!r} row {row + 2} holds {df[col].iloc[row]!r}, not a number")


def _interactions_from_frame(
    df: pd.DataFrame,
    user_col: str,
    item_col: str,
    path: Path,
    *,
    item_order: list[str] | None = None,
    rating_col: str | None = None,
    time_col: str | None = None,
) -> tuple[np.ndarray, np.ndarray, IdMap, IdMap, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """Map raw ids to indices, drop duplicate (user, item) pairs (keeping the last) and rows with NaN ids."""
    nan_ids = df[user_col].isna() | df[item_col].isna()
    if nan_ids.any():
        log.warning("%s: dropped %d row(s) with an empty user or item id", path, int(nan_ids.sum()))
        df = df[~nan_ids]
    if rating_col and rating_col in df.columns:
        _check_numeric(df, rating_col, path)
        nan_r = pd.to_numeric(df[rating_col], errors="coerce").isna()
        if nan_r.any():
            log.warning("%s: dropped %d row(s) with an empty rating", path, int(nan_r.sum()))
            df = df[~nan_r]
    u_raw = df[user_col].astype(str).to_numpy()
    i_raw = df[item_col].astype(str).to_numpy()
    dup = pd.DataFrame({"u": u_raw, "i": i_raw}).duplicated(keep="last").to_numpy()
    if dup.any():
        log.warning("%s: %d duplicate (user, item) row(s); kept the last of each", path, int(dup.sum()))
    keep = ~dup
    df = df[keep]
    u_raw, i_raw = u_raw[keep], i_raw[keep]
    user_ids = IdMap(pd.unique(_natural_sorted(u_raw)))
    if item_order is None:
        item_ids = IdMap(pd.unique(_natural_sorted(i_raw)))
    else:
        item_ids = IdMap(item_order)
    users = user_ids.indices(u_raw)
    items = item_ids.indices(i_raw)
    if (items < 0).any():
        raise DataError(
            f"{path}: {int((items < 0).sum())} interaction(s) name items missing from the items table"
        )
    ratings = None
    if rating_col and rating_col in df.columns:
        ratings = pd.to_numeric(df[rating_col]).to_numpy(np.float32)
    timestamps = None
    if time_col and time_col in df.columns:
        ts = df[time_col]
        if not np.issubdtype(ts.dtype, np.number):
            ts = pd.to_datetime(ts, errors="coerce").astype("int64") // 10**9
        timestamps = ts.to_numpy(np.int64)
    return users, items, user_ids, item_ids, ratings, timestamps, keep


def _natural_sorted(values: np.ndarray) -> np.ndarray:
    """Sort ids numerically when they all are integers, else lexically (stable, readable id maps)."""
    uniq = pd.unique(values)
    try:
        return uniq[np.argsort(uniq.astype(np.int64), kind="stable")]
    except (ValueError, TypeError):
        return np.sort(uniq.astype(str))


# ----------------------------------------------------------------------------------------------- MovieLens


def _movielens_content(root: Path, item_ids: IdMap) -> ItemContent:
    movies = _read_csv(root / "movies.csv", ["movieId", "title", "genres"], dtype={"movieId": str})
    movies = movies.drop_duplicates("movieId").set_index("movieId")
    tags_by_item: dict[str, list[str]] = {}
    tags_path = root / "tags.csv"
    if tags_path.exists():
        tags = pd.read_csv(tags_path, dtype={"movieId": str})
        if {"movieId", "tag"} <= set(tags.columns):
            tags = tags.dropna(subset=["tag"])
            tags["tag"] = tags["tag"].astype(str).str.strip().str.lower()
            for mid, grp in tags.groupby("movieId", sort=False):
                tags_by_item[str(mid)] = list(dict.fromkeys(grp["tag"]))
    poster_dir = root / "posters"
    texts, paths, titles, genres = [], [], [], []
    for raw in item_ids:
        if raw in movies.index:
            title = str(movies.at[raw, "title"])
            g = str(movies.at[raw, "genres"])
        else:
            title, g = "", ""
        g_list = [x for x in g.split("|") if x and x != "(no genres listed)"]
        text = title
        if g_list:
            text += ". genres: " + ", ".join(g_list)
        if tags_by_item.get(raw):
            text += ". tags: " + ", ".join(tags_by_item[raw])
        texts.append(text.strip())
        titles.append(title)
        genres.append("|".join(g_list))
        img = None
        for ext in _IMAGE_EXTS:
            cand = poster_dir / f"{raw}{ext}"
            if cand.exists():
                img = str(cand)
                break
        paths.append(img)
    return ItemContent(texts=texts, image_paths=paths, titles=titles, extra={"genres": genres})


def load_movielens(root: Path) -> Dataset:
    """MovieLens directory: ratings.csv (+ movies.csv, tags.csv, posters/{movieId}.jpg) → Dataset.

    Item text is "title. genres: g1, g2. tags: t1, t2". Feature files beside the CSVs (``features/``) are
    loaded when present, aligned by movieId.
    """
    path = root / "ratings.csv"
    df = _read_csv(path, ["userId", "movieId"], dtype={"userId": str, "movieId": str})
    users, items, uids, iids, ratings, ts, _ = _interactions_from_frame(
        df, "userId", "movieId", path, rating_col="rating", time_col="timestamp"
    )
    content = _movielens_content(root, iids)
    content = attach_media(content, media_from_dirs(root, iids))  # audio/{id}.wav, videos/{id}.mp4
    features = load_feature_dir(root / "features", iids) if (root / "features").is_dir() else None
    return Dataset(
        users,
        items,
        uids,
        iids,
        ratings=ratings,
        timestamps=ts,
        content=content,
        features=features,
        name=root.name,
    )


# ----------------------------------------------------------------------------------------------- MMRec


_FEAT_RE = re.compile(r"^(?P<name>.+?)(?:_feat)?\.npy$")


def modality_name(filename: str) -> str | None:
    """``image_feat.npy`` → ``image``; ``vggish.npy`` → ``vggish``; masks and non-npy files → None."""
    if filename.endswith("_mask.npy"):
        return None
    m = _FEAT_RE.match(filename)
    return m.group("name") if m else None


def load_mmrec(path: Path) -> Dataset:
    """MMRec atomic directory: one ``*.inter`` TSV plus ``<name>.npy`` / ``<name>_feat.npy`` per modality.

    ``userID``/``itemID`` are 0-based indices; ``x_label`` (0/1/2) is the split. An ``item_map.csv`` /
    ``user_map.csv`` (index, original id) gives raw ids their original names, and when the directory sits
    inside a MovieLens directory (``../movies.csv``) the items get their text and posters from it.
    """
    if path.is_file():
        inter_path, root = path, path.parent
    else:
        inters = sorted(path.glob("*.inter"))
        if len(inters) != 1:
            raise DataError(f"{path}: expected exactly one *.inter file, found {len(inters)}")
        inter_path, root = inters[0], path
    df = _read_csv(inter_path, ["userID", "itemID"], sep="\t")
    for col in ("userID", "itemID"):
        _check_numeric(df, col, inter_path)
    n_items_inter = int(df["itemID"].max()) + 1
    feature_files = {}
    for f in sorted(root.glob("*.npy")):
        name = modality_name(f.name)
        if name:
            feature_files[name] = f
    n_items = n_items_inter
    for f in feature_files.values():
        n_items = max(n_items, int(np.load(f, mmap_mode="r", allow_pickle=False).shape[0]))
    user_names = _index_map(root / "user_map.csv", int(df["userID"].max()) + 1)
    item_names = _index_map(root / "item_map.csv", n_items)
    dup = df.duplicated(["userID", "itemID"], keep="last")
    if dup.any():
        log.warning("%s: %d duplicate (user, item) row(s); kept the last of each", inter_path, int(dup.sum()))
        df = df[~dup]
    users = df["userID"].to_numpy(np.int64)
    items = df["itemID"].to_numpy(np.int64)
    if (users < 0).any() or (items < 0).any():
        raise DataError(f"{inter_path}: negative userID/itemID; MMRec ids are 0-based indices")
    labels = None
    if "x_label" in df.columns:
        lab = pd.to_numeric(df["x_label"], errors="coerce")
        if lab.isna().any() or not lab.isin([0, 1, 2]).all():
            raise DataError(f"{inter_path}: x_label must be 0 (train), 1 (valid) or 2 (test) on every row")
        labels = lab.to_numpy(np.int8)
    ratings = df["rating"].to_numpy(np.float32) if "rating" in df.columns else None
    ts = df["timestamp"].to_numpy(np.int64) if "timestamp" in df.columns else None
    uids, iids = IdMap(user_names), IdMap(item_names)
    features = Features()
    for name, f in feature_files.items():
        values = np.load(f, allow_pickle=False)
        if values.ndim != 2:
            raise DataError(f"{f}: a feature file must be 2-D (n_items, d); got shape {values.shape}")
        if values.shape[0] != n_items:
            raise DataError(f"{f}: {values.shape[0]} rows, but the data set has {n_items} items")
        mask_file = root / f"{name}_mask.npy"
        mask = np.load(mask_file, allow_pickle=False) if mask_file.exists() else None
        features.add(name, values, mask)
    features.extractors = _manifest_extractors(root)
    features.extractor_state = _extractor_state(root)
    content = None
    parent = root.parent
    if (parent / "movies.csv").exists() and (root / "item_map.csv").exists():
        content = _movielens_content(parent, iids)
    return Dataset(
        users,
        items,
        uids,
        iids,
        ratings=ratings,
        timestamps=ts,
        labels=labels,
        content=content,
        features=features,
        name=root.name,
    )


def _index_map(path: Path, n: int) -> list[str]:
    """Raw names for indices 0..n-1 from a two-column map file (index, original id); indices when absent."""
    names = [str(i) for i in range(n)]
    if not path.exists():
        return names
    df = pd.read_csv(path, dtype=str)
    if df.shape[1] < 2:
        raise DataError(f"{path}: expected two columns (index, original id)")
    idx = pd.to_numeric(df.iloc[:, 0], errors="coerce")
    if idx.isna().any():
        raise DataError(f"{path}: first column must hold integer indices")
    for i, raw in zip(idx.astype(int), df.iloc[:, 1].astype(str), strict=True):
        if 0 <= i < n:
            names[i] = raw
    return names


def load_feature_dir(path: Path, item_ids: IdMap) -> Features:
    """Read ``<modality>.npy`` (+ ``_mask.npy``) written by ``fusionrec features``, aligned by ``items.csv``."""
    order_file = path / "items.csv"
    if not order_file.exists():
        raise DataError(f"{path}: feature directory without items.csv (the raw item id of each row)")
    rows_raw = pd.read_csv(order_file, dtype=str).iloc[:, 0].tolist()
    rows = IdMap(rows_raw)
    pick = rows.indices(item_ids.to_list())
    features = Features()
    for f in sorted(path.glob("*.npy")):
        name = modality_name(f.name)
        if not name:
            continue
        values = np.load(f, allow_pickle=False).astype(np.float32)
        if values.shape[0] != len(rows):
            raise DataError(f"{f}: {values.shape[0]} rows but items.csv lists {len(rows)} items")
        mask_file = path / f"{name}_mask.npy"
        mask = np.load(mask_file, allow_pickle=False) if mask_file.exists() else np.ones(len(rows), bool)
        out = np.zeros((len(item_ids), values.shape[1]), np.float32)
        out_mask = np.zeros(len(item_ids), bool)
        ok = pick >= 0
        out[ok] = values[pick[ok]]
        out_mask[ok] = mask[pick[ok]]
        features.add(name, out, out_mask)
    features.extractors = _manifest_extractors(path)
    features.extractor_state = _extractor_state(path)
    return features


def _extractor_state(path: Path) -> dict[str, np.ndarray]:
    """``extractors.safetensors``: learned extractor state keyed "modality/key" (written by `fusionrec features`)."""
    f = path / "extractors.safetensors"
    if not f.exists():
        return {}
    from safetensors.numpy import load_file

    return load_file(str(f))


def _manifest_extractors(path: Path) -> dict[str, dict]:
    """``manifest.json["extractors"]``: modality → extractor config, written by ``fusionrec features``."""
    manifest = path / "manifest.json"
    if not manifest.exists():
        return {}
    try:
        info = json.loads(manifest.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{manifest}: not valid JSON ({e})") from None
    return dict(info.get("extractors") or {})


# ----------------------------------------------------------------------------------------------- generic


def load_table(path: Path, options: LoadOptions, *, parquet: bool) -> Dataset:
    """Generic interactions table (CSV/TSV/Parquet) with column mapping, plus an optional items table."""
    if path.is_dir():
        path = path / ("interactions.parquet" if parquet else "interactions.csv")
    if parquet:
        if not path.exists():
            raise DataError(f"{path}: file not found")
        df = pd.read_parquet(path)
    else:
        sep = options.sep or ("\t" if path.suffix == ".tsv" else ",")
        df = _read_csv(path, [options.user_col, options.item_col], sep=sep)
    for col in (options.user_col, options.item_col):
        if col not in df.columns:
            raise DataError(
                f"{path}: no column {col!r} (found {list(df.columns)}); map yours with --user-col/--item-col"
            )
    items_df = None
    items_path = Path(options.items_path) if options.items_path else None
    if items_path is None and (path.parent / "items.csv").exists():
        items_path = path.parent / "items.csv"
    item_order = None
    if items_path is not None:
        items_df = _read_csv(items_path, [options.item_id_col], dtype={options.item_id_col: str})
        items_df = items_df.drop_duplicates(options.item_id_col)
        known = set(items_df[options.item_id_col])
        extra = sorted(set(df[options.item_col].astype(str)) - known)
        item_order = items_df[options.item_id_col].astype(str).tolist() + extra
    rating_col = options.rating_col if options.rating_col in df.columns else None
    time_col = options.time_col if options.time_col in df.columns else None
    users, items, uids, iids, ratings, ts, _ = _interactions_from_frame(
        df,
        options.user_col,
        options.item_col,
        path,
        item_order=item_order,
        rating_col=rating_col,
        time_col=time_col,
    )
    content = None
    if items_df is not None:
        by_id = items_df.set_index(options.item_id_col)
        text_cols = [c for c in options.text_cols if c in by_id.columns]
        texts, paths, titles = [], [], []
        for raw in iids:
            if raw in by_id.index:
                row = by_id.loc[raw]
                parts = [str(row[c]) for c in text_cols if pd.notna(row[c]) and str(row[c]).strip()]
                texts.append(". ".join(parts))
                titles.append(parts[0] if parts else "")
                img = (
                    row[options.image_col]
                    if options.image_col and options.image_col in by_id.columns
                    else None
                )
                if img is not None and pd.notna(img):
                    img_path = Path(str(img))
                    if not img_path.is_absolute():
                        img_path = items_path.parent / img_path  # type: ignore[union-attr]
                    paths.append(str(img_path))
                else:
                    paths.append(None)
            else:
                texts.append("")
                titles.append("")
                paths.append(None)
        content = ItemContent(texts=texts, image_paths=paths, titles=titles)
        content = attach_media(content, media_from_columns(by_id, iids, items_path.parent))  # type: ignore[union-attr]
    return Dataset(users, items, uids, iids, ratings=ratings, timestamps=ts, content=content, name=path.stem)


# ----------------------------------------------------------------------------------------------- implicit


def apply_implicit(ds: Dataset, options: LoadOptions) -> Dataset:
    """Keep rows with rating >= threshold, then iterative k-core; re-index users and items compactly."""
    keep = np.ones(ds.n_interactions, dtype=bool)
    if options.rating_threshold is not None:
        if ds.ratings is None:
            raise DataError("--min-rating needs ratings, but this data set has none")
        keep &= ds.ratings >= options.rating_threshold
    if options.kcore > 1:
        keep = kcore_mask(ds.users, ds.items, ds.n_users, ds.n_items, options.kcore, keep)
    if keep.all():
        return ds
    if not keep.any():
        raise DataError("no interaction is left after the rating threshold / k-core filter; loosen them")
    return subset_interactions(ds, keep)


def kcore_mask(
    users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, k: int, keep: np.ndarray
) -> np.ndarray:
    keep = keep.copy()
    while True:
        ud = np.bincount(users[keep], minlength=n_users)
        idg = np.bincount(items[keep], minlength=n_items)
        bad = keep & ((ud[users] < k) | (idg[items] < k))
        if not bad.any():
            return keep
        keep &= ~bad


def subset_interactions(ds: Dataset, keep: np.ndarray) -> Dataset:
    """Dataset with only the kept rows; users and items that lose every row are dropped and re-indexed."""
    u_keep = np.unique(ds.users[keep])
    i_keep = np.unique(ds.items[keep])
    u_new = np.full(ds.n_users, -1, np.int64)
    u_new[u_keep] = np.arange(len(u_keep))
    i_new = np.full(ds.n_items, -1, np.int64)
    i_new[i_keep] = np.arange(len(i_keep))
    pick = lambda a: None if a is None else a[keep]  # noqa: E731
    return Dataset(
        u_new[ds.users[keep]],
        i_new[ds.items[keep]],
        IdMap(ds.user_ids.raw_ids[u_keep]),
        IdMap(ds.item_ids.raw_ids[i_keep]),
        ratings=pick(ds.ratings),
        timestamps=pick(ds.timestamps),
        labels=pick(ds.labels),
        content=None if ds.content is None else ds.content.subset(i_keep),
        features=ds.features.subset(i_keep) if len(ds.features) else None,
        name=ds.name,
    )
