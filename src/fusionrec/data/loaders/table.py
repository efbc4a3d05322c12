"""Generic interaction tables: delimited text of any name and separator, or Parquet, plus an items table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fusionrec.data.dataset import Dataset
from fusionrec.data.loaders.base import COLUMN_OPTIONS, ITEM_OPTIONS, Loader, LoadOptions
from fusionrec.data.loaders.common import (
    interactions_from_frame,
    item_content,
    parse_sep,
    read_csv,
    resolve_column,
    resolve_sep,
)
from fusionrec.errors import DataError

DELIMITED_SUFFIXES = (".csv", ".tsv", ".txt", ".dat", ".psv")
PARQUET_SUFFIXES = (".parquet", ".pq")


def detect_delimited(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() in DELIMITED_SUFFIXES
    return path.is_dir() and (path / "interactions.csv").exists()


def detect_parquet(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() in PARQUET_SUFFIXES
    return path.is_dir() and (path / "interactions.parquet").exists()


def load_delimited(path: Path, options: LoadOptions) -> Dataset:
    return load_table(path, options, parquet=False)


def load_parquet(path: Path, options: LoadOptions) -> Dataset:
    return load_table(path, options, parquet=True)


def read_delimited(path: Path, sep: str | None, required: list[str], **kw) -> pd.DataFrame:
    """A delimited file with separator ``sep`` (None: sniffed), ids kept as strings."""
    sep = resolve_sep(path, parse_sep(sep), required)
    return read_csv(path, required, sep=sep, dtype={c: str for c in required}, **kw)


def load_table(path: Path, options: LoadOptions, *, parquet: bool) -> Dataset:
    """Generic interactions table (delimited/Parquet) with column mapping, plus an optional items table."""
    path = Path(path)
    if path.is_dir():
        path = path / ("interactions.parquet" if parquet else "interactions.csv")
    required = [options.user_col, options.item_col]
    if parquet:
        if not path.exists():
            raise DataError(f"{path}: file not found")
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises its own error types for a corrupt file
            raise DataError(f"{path}: not a readable Parquet file ({e})") from None
        missing = [c for c in required if c not in df.columns]
        if missing:
            raise DataError(
                f"{path}: no column(s) {missing} (found {list(df.columns)}); map yours with "
                "--user-col/--item-col"
            )
    else:
        df = read_delimited(path, options.sep, required)
    items_df = None
    items_path = Path(options.items_path) if options.items_path else None
    if items_path is None and (path.parent / "items.csv").exists() and path.name != "items.csv":
        items_path = path.parent / "items.csv"
    if items_path is not None:
        # sniffed on its own: an items table often comes from elsewhere than the interactions
        items_df = read_delimited(items_path, None, [options.item_id_col], keep_default_na=False)
    return dataset_from_frames(
        df,
        options,
        items=items_df,
        base_dir=None if items_path is None else items_path.parent,
        source=path,
        name=path.stem,
    )


def dataset_from_frames(
    df: pd.DataFrame,
    options: LoadOptions,
    *,
    items: pd.DataFrame | None = None,
    base_dir: Path | None = None,
    source: Path | str = "interactions",
    name: str = "frame",
) -> Dataset:
    """A data set from an interactions frame (columns named by ``options``) and an optional items frame
    (``options.item_id_col``, text columns, image path); the items frame's order is the item order."""
    source = Path(source)
    for col in (options.user_col, options.item_col):
        if col not in df.columns:
            raise DataError(
                f"{source}: no column {col!r} (found {list(df.columns)}); name yours with user_col/item_col"
            )
    defaults = LoadOptions()
    rating_col = resolve_column(df, source, "rating_col", options.rating_col, defaults.rating_col)
    time_col = resolve_column(df, source, "time_col", options.time_col, defaults.time_col)
    item_order = None
    if items is not None:
        if options.item_id_col not in items.columns:
            raise DataError(f"items table: no column {options.item_id_col!r} (found {list(items.columns)})")
        items = items.drop_duplicates(options.item_id_col)
        item_order = items[options.item_id_col].astype(str).tolist()
    inter = interactions_from_frame(
        df,
        options.user_col,
        options.item_col,
        source,
        item_order=item_order,
        rating_col=rating_col,
        time_col=time_col,
    )
    content = None
    if items is not None or options.image_dir:
        table = None if items is None else items.set_index(items[options.item_id_col].astype(str))
        content = item_content(
            inter.item_ids,
            table,
            options.text_cols,
            image_col=options.image_col,
            base_dir=base_dir,
            image_dir=Path(options.image_dir) if options.image_dir else None,
        )
    return inter.dataset(name, content=content)


CSV = Loader(
    detect_delimited,
    load_delimited,
    "delimited table of any name (separator from --sep or sniffed) + optional items table",
    COLUMN_OPTIONS | ITEM_OPTIONS | {"sep"},
)
PARQUET = Loader(
    detect_parquet, load_parquet, "Parquet table + optional items table", COLUMN_OPTIONS | ITEM_OPTIONS
)
