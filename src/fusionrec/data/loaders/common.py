"""Table helpers every loader uses: reading delimited files, checking columns, ids to indices, item content."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset, Features, IdMap, ItemContent
from fusionrec.data.media import attach_media, media_from_columns
from fusionrec.errors import DataError

log = logging.getLogger("fusionrec")

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")
SEPARATORS = (",", "\t", ";", "|")
_SEP_NAMES = {"\\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}
_SNIFF_BYTES = 64 * 1024  # the sniffer reads at most this much of a file


def sep_name(sep: str) -> str:
    return {"\t": "'\\t' (tab)", " ": "' ' (space)"}.get(sep, repr(sep))


def parse_sep(sep: str | None) -> str | None:
    """``--sep`` as typed on a command line (``\\t``, ``tab``, ``;``) → the separator character."""
    if sep is None or sep == "":
        return None
    sep = _SEP_NAMES.get(sep.lower(), sep)
    if len(sep) != 1:
        raise DataError(f"--sep {sep!r}: a separator is one character (or tab, comma, semicolon, pipe)")
    return sep


def read_csv(path: Path, required: Sequence[str], *, allow_empty: bool = False, **kw) -> pd.DataFrame:
    """``pd.read_csv`` whose failures are one-line DataErrors naming the file (and separator) and the fix.

    ``allow_empty``: a file with a header and no rows is an empty table rather than an error.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    sep = kw.get("sep", ",")
    try:
        df = pd.read_csv(path, **kw)
    except pd.errors.EmptyDataError:
        if allow_empty:
            return pd.DataFrame()
        raise DataError(f"{path}: the file is empty; it needs a header row with {list(required)}") from None
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not UTF-8 text (byte {e.object[e.start : e.start + 1]!r} at offset {e.start}); "
            "re-save it as UTF-8"
        ) from None
    except (pd.errors.ParserError, csv.Error, ValueError) as e:
        raise DataError(
            f"{path}: cannot parse as a table with separator {sep_name(sep)} ({str(e).strip()}); "
            "pass --sep with the right one"
        ) from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        hint = "" if len(df.columns) > 1 else f" (split with separator {sep_name(sep)}; pass --sep?)"
        raise DataError(f"{path}: missing column(s) {missing}; found {list(df.columns)}{hint}")
    if df.empty and not allow_empty:
        raise DataError(f"{path}: the file has a header but no rows")
    return df


def _header(sample: str, sep: str) -> list[str]:
    first = sample.splitlines()[0] if sample else ""
    return next(csv.reader([first], delimiter=sep), [])


def resolve_sep(path: Path, sep: str | None, required: Sequence[str]) -> str:
    """The separator of a delimited file: ``sep`` when given, else sniffed from the first 64 KiB.

    The sniffed candidate (then ``, \\t ; |``) is accepted only if it splits the header into columns that
    include ``required``, so a wrong guess is never silently used.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read(_SNIFF_BYTES)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    sample = raw.decode("utf-8", errors="replace")
    if not sample.strip():
        raise DataError(f"{path}: the file is empty; it needs a header row with {list(required)}")
    if sep is not None:
        cols = _header(sample, sep)
        missing = [c for c in required if c not in cols]
        if missing:
            raise DataError(
                f"{path}: with separator {sep_name(sep)} the header gives columns {cols}, without "
                f"{missing}; pass the right --sep or map columns with --user-col/--item-col"
            )
        return sep
    candidates: list[str] = []
    try:
        lines = "\n".join(sample.splitlines()[:50])
        candidates.append(csv.Sniffer().sniff(lines, delimiters="".join(SEPARATORS)).delimiter)
    except csv.Error:
        pass
    candidates += [s for s in SEPARATORS if s not in candidates]
    for cand in candidates:
        if all(c in _header(sample, cand) for c in required):
            return cand
    best = max(candidates, key=lambda c: len(_header(sample, c)))  # the sniffed one wins ties
    cols = _header(sample, best)
    missing = [c for c in required if c not in cols]
    raise DataError(
        f"{path}: missing column(s) {missing}; with separator {sep_name(best)} (sniffed; also tried "
        f"{', '.join(sep_name(c) for c in candidates if c != best)}) the header gives {cols}. Map yours with "
        "--user-col/--item-col, or pass --sep"
    )


def check_numeric(df: pd.DataFrame, col: str, path: Path, *, finite: bool = True) -> np.ndarray:
    """The column as float64; a non-number (or inf, with ``finite``) is an error naming its row and value.

    Empty cells come back as NaN for the caller to drop or refuse.
    """
    values = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
    bad = np.isnan(values) & df[col].notna().to_numpy()
    if finite:
        bad |= np.isinf(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: column {col!r} row {row + 2} holds {str(df[col].iloc[row])!r}, not a finite number; "
            "fix or delete that row"
        )
    return values


def parse_timestamps(ts: pd.Series, path: Path, col: str) -> np.ndarray:
    """Seconds since the epoch (int64) from numbers or date strings (ISO 8601 or anything pandas reads).

    A value that is neither, or an empty one, is an error naming the row.
    """
    hint = "fix it, or pass --time-col none to load without times"
    empty = ts.isna().to_numpy()
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise DataError(f"{path}: column {col!r} row {row + 2} is empty; {hint}")
    if not pd.api.types.is_numeric_dtype(ts.dtype):
        as_num = pd.to_numeric(ts, errors="coerce")
        if as_num.notna().all():
            ts = as_num
    if pd.api.types.is_numeric_dtype(ts.dtype):
        values = ts.to_numpy(np.float64)
        bad = ~np.isfinite(values) | (np.abs(values) >= 2.0**62)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}: column {col!r} row {row + 2} holds {ts.iloc[row]!r}, not a time; {hint}"
            )
        return np.floor(values).astype(np.int64)
    text = ts.astype(str)
    dt = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    if dt.isna().any():  # other layouts ("03/01/2024 10:00"), parsed one by one
        dt = dt.fillna(pd.to_datetime(text[dt.isna()], errors="coerce", utc=True, format="mixed"))
    bad = dt.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: column {col!r} row {row + 2} holds {text.iloc[row]!r}, neither a number nor a date; {hint}"
        )
    return ((dt - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)


def natural_sorted(values: np.ndarray) -> np.ndarray:
    """Unique ids sorted numerically when they all are integers, else lexically (stable, readable id maps)."""
    uniq = pd.unique(np.asarray(values, dtype=object))
    try:
        return uniq[np.argsort(uniq.astype(np.int64), kind="stable")]
    except OverflowError:  # integers beyond int64 still sort as numbers
        return np.asarray(sorted(uniq, key=int), dtype=object)
    except (ValueError, TypeError):
        return np.sort(uniq.astype(str))


class Interactions(NamedTuple):
    users: np.ndarray
    items: np.ndarray
    user_ids: IdMap
    item_ids: IdMap
    ratings: np.ndarray | None
    timestamps: np.ndarray | None
    frame: pd.DataFrame  # the rows kept, aligned with the arrays (for other per-row columns)

    def dataset(
        self,
        name: str,
        *,
        labels: np.ndarray | None = None,
        content: ItemContent | None = None,
        features: Features | None = None,
    ) -> Dataset:
        """The ``Dataset`` of these interactions, with what the format brings besides them."""
        return Dataset(
            self.users,
            self.items,
            self.user_ids,
            self.item_ids,
            ratings=self.ratings,
            timestamps=self.timestamps,
            labels=labels,
            content=content,
            features=features,
            name=name,
        )


def interactions_from_frame(
    df: pd.DataFrame,
    user_col: str,
    item_col: str,
    path: Path,
    *,
    item_order: Sequence[str] | None = None,
    user_order: Sequence[str] | None = None,
    rating_col: str | None = None,
    time_col: str | None = None,
) -> Interactions:
    """Map raw ids to indices, drop duplicate (user, item) pairs (keeping the last) and rows with empty ids.

    Ratings must be finite numbers (empty ones are dropped with a warning); times are parsed by
    :func:`parse_timestamps`. ``item_order``/``user_order`` fix the id maps' order (ids that the rows name
    but the order lacks are appended in natural order); by default ids are naturally sorted.
    """
    empty_ids = np.zeros(len(df), bool)
    for col in (user_col, item_col):
        empty_ids = empty_ids | (df[col].isna() | (df[col].astype(str).str.strip() == "")).to_numpy(bool)
    if empty_ids.any():
        log.warning("%s: dropped %d row(s) with an empty user or item id", path, int(empty_ids.sum()))
        df = df[~empty_ids]
    if rating_col:
        ratings_all = check_numeric(df, rating_col, path)
        nan_r = np.isnan(ratings_all)
        if nan_r.any():
            log.warning("%s: dropped %d row(s) with an empty rating", path, int(nan_r.sum()))
            df = df[~nan_r]
    if df.empty:
        raise DataError(f"{path}: no row has both a user and an item id")
    u_raw = df[user_col].astype(str).to_numpy(dtype=object)
    i_raw = df[item_col].astype(str).to_numpy(dtype=object)
    dup = pd.DataFrame({"u": u_raw, "i": i_raw}).duplicated(keep="last").to_numpy()
    if dup.any():
        log.warning("%s: %d duplicate (user, item) row(s); kept the last of each", path, int(dup.sum()))
        df = df[~dup]
        u_raw, i_raw = u_raw[~dup], i_raw[~dup]
    user_ids = _ordered_ids(u_raw, user_order)
    item_ids = _ordered_ids(i_raw, item_order)
    users = user_ids.indices(u_raw)
    items = item_ids.indices(i_raw)
    ratings = pd.to_numeric(df[rating_col]).to_numpy(np.float32) if rating_col else None
    timestamps = parse_timestamps(df[time_col].reset_index(drop=True), path, time_col) if time_col else None
    return Interactions(users, items, user_ids, item_ids, ratings, timestamps, df)


def _ordered_ids(raw: np.ndarray, order: Sequence[str] | None) -> IdMap:
    if order is None:
        return IdMap(natural_sorted(raw))
    order = list(dict.fromkeys(str(x) for x in order))
    known = set(order)
    extra = [r for r in natural_sorted(raw) if r not in known]
    return IdMap(order + extra)


def resolve_column(df: pd.DataFrame, path: Path, option: str, value: str | None, default: str | None):
    """The column an option names, or None. A value other than the default must exist in ``df``."""
    if value is None:
        return None
    if value in df.columns:
        return value
    if value != default:
        flag = "--" + option.replace("_", "-")
        raise DataError(
            f"{path}: {flag} {value!r} is not a column (found {list(df.columns)}); "
            f"name one of them, or pass {flag} none"
        )
    return None


def images_by_id(folder: Path, raw_ids: Sequence[str]) -> list[str | None]:
    """``<folder>/<raw id>.<jpg|jpeg|png|webp>`` for each id (None where there is none); one listing."""
    by_stem: dict[str, str] = {}
    for f in sorted(Path(folder).iterdir()):
        if f.suffix.lower() in IMAGE_EXTS and f.stem not in by_stem:
            by_stem[f.stem] = str(f)
    return [by_stem.get(str(r)) for r in raw_ids]


def item_content(
    item_ids: IdMap,
    table: pd.DataFrame | None,
    text_cols: Sequence[str],
    *,
    image_col: str | None = None,
    base_dir: Path | None = None,
    image_dir: Path | None = None,
    labelled: bool = False,
) -> ItemContent:
    """Item text, title and image path per item from a table indexed by raw item id.

    The text joins the non-empty ``text_cols`` with ". " (``labelled``: the second and later ones as
    "column: value"); the title is the first non-empty one. Relative image paths are taken from
    ``base_dir``; ``image_dir`` (``<raw id>.jpg``) fills items without a path column value.
    """
    n = len(item_ids)
    if table is None:
        table = pd.DataFrame(index=pd.Index([], dtype=object))
    rows = table.reindex(item_ids.to_list())
    parts: list[pd.Series] = []
    for j, col in enumerate(c for c in text_cols if c in rows.columns):
        val = rows[col].astype("string").str.strip().fillna("")
        if labelled and j > 0:
            val = val.where(val == "", col + ": " + val)
        parts.append(val)
    if parts:
        stacked = pd.concat(parts, axis=1).to_numpy(dtype=object)
        texts = [". ".join(p for p in row if p) for row in stacked]
        titles = [next((p for p in row if p), "") for row in stacked]
    else:
        texts, titles = [""] * n, [""] * n
    paths: list[str | None] = [None] * n
    if image_col and image_col in rows.columns:
        for i, img in enumerate(rows[image_col].tolist()):
            if isinstance(img, str) and img.strip():
                p = Path(img.strip())
                if not p.is_absolute() and base_dir is not None:
                    p = base_dir / p
                paths[i] = str(p)
    if image_dir is not None:
        folder = Path(image_dir).expanduser()
        if not folder.is_dir():
            raise DataError(f"--image-dir {folder}: no such directory")
        found = images_by_id(folder, item_ids.to_list())
        paths = [p if p is not None else f for p, f in zip(paths, found, strict=True)]
        log.info("images: %d of %d items have an image", sum(p is not None for p in paths), n)
    content = ItemContent(texts=texts, image_paths=paths, titles=titles)
    media = media_from_columns(table, item_ids, base_dir or Path("."))  # audio / video path columns
    return attach_media(content, media) or content
