"""RecBole atomic files: ``NAME.inter`` / ``NAME.item`` / ``NAME.user`` with typed ``field:type`` headers.

A fixed split ships as ``NAME.train.inter`` + ``NAME.valid.inter`` + ``NAME.test.inter`` (RecBole's
``benchmark_filename``); those become the data's own split.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import pandas as pd

from fusionrec.data.dataset import Dataset
from fusionrec.data.feature_dir import ITEMS_FILE, feature_files, read_feature_dir
from fusionrec.data.loaders.base import COLUMN_OPTIONS, Loader, LoadOptions
from fusionrec.data.loaders.common import (
    interactions_from_frame,
    item_content,
    parse_sep,
    read_csv,
    resolve_column,
)
from fusionrec.errors import DataError

log = logging.getLogger("fusionrec")

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
SPLIT_PARTS = ("train", "valid", "test")  # label 0, 1, 2
_TYPED = re.compile(r"^(?P<name>[^:\t]+):(?P<type>[A-Za-z_]+)$")


def parse_header(line: str, sep: str = "\t") -> list[tuple[str, str]] | None:
    """``user_id:token<TAB>rating:float`` → [(user_id, token), (rating, float)]; None if no field is typed."""
    fields = [f.strip() for f in line.rstrip("\r\n").split(sep)]
    typed = [_TYPED.match(f) for f in fields]
    if not any(typed):
        return None
    return [(m.group("name"), m.group("type")) if m else (f, "") for f, m in zip(fields, typed, strict=True)]


def _base_files(path: Path) -> tuple[Path, str]:
    """(directory, NAME) of a RecBole data set given its directory or one of its files."""
    if path.is_file():
        stem = path.name.split(".")[0]
        return path.parent, stem
    inters = sorted(path.glob("*.inter"))
    names = sorted({p.name.split(".")[0] for p in inters})
    if path.name in names:
        return path, path.name
    if len(names) == 1:
        return path, names[0]
    raise DataError(
        f"{path}: holds .inter files of {len(names)} data sets ({names}); point --data at one of the files"
    )


def detect(path: Path) -> bool:
    from fusionrec.data.loaders.mmrec import is_typed_header

    if path.is_file():
        return path.suffix in (".inter", ".item", ".user") and is_typed_header(path)
    if not path.is_dir():
        return False
    inters = sorted(path.glob("*.inter"))
    return bool(inters) and is_typed_header(inters[0])


def read_atomic(
    path: Path, options: LoadOptions, *, allow_empty: bool = False
) -> tuple[pd.DataFrame, dict[str, str]]:
    """One atomic file as strings with columns renamed from ``name:type`` to ``name``, and the types."""
    sep = parse_sep(options.sep) or "\t"
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline(1 << 20)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; re-save it as UTF-8") from None
    fields = parse_header(first, sep)
    if fields is None:
        raise DataError(
            f"{path}: the header {first.strip()[:200]!r} has no typed fields (name:token, name:float, ...) "
            f"when split with separator {sep!r}; pass --sep if the fields are separated otherwise"
        )
    for name, kind in fields:
        if kind not in FIELD_TYPES:
            raise DataError(
                f"{path}: field {name!r} has type {kind or '(none)'!r}; RecBole types are "
                f"{', '.join(FIELD_TYPES)} (write e.g. {name}:token)"
            )
    names = [n for n, _ in fields]
    if len(set(names)) != len(names):
        raise DataError(f"{path}: repeated field names in the header {names}")
    df = read_csv(
        path, [], sep=sep, dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE, allow_empty=allow_empty
    )
    if df.shape[1] != len(fields):
        raise DataError(f"{path}: header has {len(fields)} fields but rows have {df.shape[1]}")
    df.columns = names
    return df, dict(fields)


def _blank_to_na(df: pd.DataFrame, cols: list[str | None]) -> pd.DataFrame:
    for c in cols:
        if c:
            df[c] = df[c].mask(df[c].str.strip() == "")
    return df


def load_recbole(path: Path, options: LoadOptions | None = None) -> Dataset:
    """A RecBole data set: interactions from ``NAME.inter`` (or the train/valid/test parts), item text
    from ``NAME.item``'s token / token_seq fields, the user order from ``NAME.user``.

    Field names follow ``--user-col``/``--item-col``/``--rating-col``/``--time-col`` (RecBole's defaults
    ``user_id``, ``item_id``, ``rating``, ``timestamp``). A ``text`` field of ``NAME.item`` is the item's whole
    text (``fusionrec export`` writes one); otherwise the text joins the token fields, "title. year: 1995".
    """
    options = options or LoadOptions()
    folder, name = _base_files(Path(path))
    parts = [folder / f"{name}.{p}.inter" for p in SPLIT_PARTS]
    if all(p.exists() for p in parts):
        if (folder / f"{name}.inter").exists():
            log.info("%s: using the train/valid/test .inter files; %s.inter is not read", folder, name)
        frames = []
        for label, p in enumerate(parts):
            part, _ = read_atomic(p, options, allow_empty=True)  # a small set may have no valid rows
            part["__label__"] = label
            frames.append(part)
        cols = [list(f.columns) for f in frames]
        if any(c != cols[0] for c in cols):
            raise DataError(f"{folder}: the train/valid/test .inter files have different fields: {cols}")
        df = pd.concat(frames, ignore_index=True)
        if df.empty:
            raise DataError(f"{folder}: the train/valid/test .inter files hold no rows")
        inter_path = parts[0]
    else:
        found = [p.name for p in parts if p.exists()]
        if found:
            raise DataError(
                f"{folder}: found {found} but a fixed split needs all of {[p.name for p in parts]}"
            )
        inter_path = folder / f"{name}.inter"
        df, _ = read_atomic(inter_path, options)
    defaults = LoadOptions()
    for option, col in (("user_col", options.user_col), ("item_col", options.item_col)):
        if col not in df.columns:
            flag = "--" + option.replace("_", "-")
            raise DataError(
                f"{inter_path}: no field {col!r} (found {[c for c in df.columns if c != '__label__']}); "
                f"name the id fields with {flag}"
            )
    rating_col = resolve_column(df, inter_path, "rating_col", options.rating_col, defaults.rating_col)
    time_col = resolve_column(df, inter_path, "time_col", options.time_col, defaults.time_col)
    df = _blank_to_na(df, [options.user_col, options.item_col, rating_col, time_col])
    item_path, user_path = folder / f"{name}.item", folder / f"{name}.user"
    items_df, types = read_atomic(item_path, options) if item_path.exists() else (None, {})
    item_order = None
    if items_df is not None:
        if options.item_col not in items_df.columns:
            raise DataError(f"{item_path}: no field {options.item_col!r} (found {list(items_df.columns)})")
        items_df = items_df.drop_duplicates(options.item_col, keep="last").set_index(options.item_col)
        item_order = items_df.index.tolist()
    user_order = None
    if user_path.exists():
        users_df, _ = read_atomic(user_path, options)
        if options.user_col not in users_df.columns:
            raise DataError(f"{user_path}: no field {options.user_col!r} (found {list(users_df.columns)})")
        user_order = users_df[options.user_col].tolist()
    inter = interactions_from_frame(
        df,
        options.user_col,
        options.item_col,
        inter_path,
        item_order=item_order,
        user_order=user_order,
        rating_col=rating_col,
        time_col=time_col,
    )
    labels = inter.frame["__label__"].to_numpy() if "__label__" in inter.frame.columns else None
    content = None
    text_fields = [
        c
        for c, t in types.items()
        if t in ("token", "token_seq") and c not in (options.item_col, options.image_col)
    ]
    has_image = items_df is not None and options.image_col in items_df.columns
    if text_fields or has_image or options.image_dir:
        titles = None
        if "text" in text_fields:  # the whole text, as fusionrec export writes it
            text_fields = ["text"]
            titles = items_df["title"] if items_df is not None and "title" in items_df.columns else None
        content = item_content(
            inter.item_ids,
            items_df,
            text_fields,
            image_col=options.image_col,
            base_dir=folder,
            image_dir=Path(options.image_dir) if options.image_dir else None,
            labelled=True,
        )
        if titles is not None:
            content.titles = titles.reindex(inter.item_ids.to_list()).fillna("").astype(str).tolist()
    features = None
    if (folder / ITEMS_FILE).exists() and feature_files(folder):
        features = read_feature_dir(folder, inter.item_ids)
    return inter.dataset(name, labels=labels, content=content, features=features)


LOADER = Loader(
    detect,
    load_recbole,
    "RecBole atomic files: NAME.inter (+ .item, .user) with typed name:token / name:float headers",
    COLUMN_OPTIONS | {"sep", "image_col", "image_dir"},
)
