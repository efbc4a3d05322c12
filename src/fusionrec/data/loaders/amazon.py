"""Amazon review dumps: review + metadata JSON lines (optionally gzipped), as the public sets ship them.

Reviews give the interactions (``reviewerID``/``user_id``, ``parent_asin``/``asin``, ``overall``/``rating``,
``unixReviewTime``/``timestamp``); metadata gives item text (``title``, ``description``, ``categories`` or
``category``) and, when it has one, a local image path (``--image-col``, default ``image``). Images can also
come from a folder of ``<item id>.jpg`` (``--image-dir``, or ``images/`` beside the reviews).

Lines are parsed as strict JSON. The 2014 metadata files are Python literals (single quotes) instead: such a
line is read with ``ast.literal_eval``, which builds only literals (strings, numbers, lists, dicts, ...) and
never evaluates names, calls or imports, and only for lines up to 1 MiB, so a crafted line can neither run
code nor blow up the parser.
"""

from __future__ import annotations

import ast
import gzip
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset
from fusionrec.data.loaders.base import Loader, LoadOptions
from fusionrec.data.loaders.common import interactions_from_frame, item_content
from fusionrec.errors import DataError

log = logging.getLogger("fusionrec")

SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")
MAX_LINE = 64 << 20  # one record; longer lines are refused, not buffered
MAX_LITERAL_LINE = 1 << 20  # python-literal lines (2014 metadata) go through literal_eval only up to this
USER_FIELDS = ("reviewerID", "user_id")
ITEM_FIELDS = ("parent_asin", "asin")
RATING_FIELDS = ("overall", "rating")
TIME_FIELDS = ("unixReviewTime", "timestamp")
_MS_THRESHOLD = 1e11  # 2023 dumps give "timestamp" in milliseconds; seconds stay below this until year 5138


def _is_json_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(SUFFIXES)


def _is_meta(path: Path) -> bool:
    return path.name.lower().startswith("meta")


def _files(path: Path, options: LoadOptions) -> tuple[Path, Path | None]:
    """(reviews file, metadata file or None)."""
    if path.is_file():
        reviews = path
        candidates = sorted(p for p in path.parent.iterdir() if _is_json_file(p) and _is_meta(p))
    else:
        files = sorted(p for p in path.iterdir() if _is_json_file(p))
        found = [p for p in files if not _is_meta(p)]
        if len(found) != 1:
            raise DataError(
                f"{path}: expected one review file (*.json[l][.gz] not starting with 'meta'), found "
                f"{[p.name for p in found]}; point --data at the review file"
            )
        reviews = found[0]
        candidates = [p for p in files if _is_meta(p)]
    if options.items_path:
        return reviews, Path(options.items_path)
    if len(candidates) > 1:
        raise DataError(
            f"{reviews.parent}: several metadata files {[p.name for p in candidates]}; pick one with --items"
        )
    return reviews, candidates[0] if candidates else None


def _open(path: Path):
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _parse(line: bytes, path: Path, lineno: int, state: dict[str, bool]) -> dict[str, Any]:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: line {lineno} is not UTF-8 text; re-save the file as UTF-8") from None
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as e:
        if not text.lstrip().startswith("{"):
            raise DataError(f"{path}: line {lineno} is not a JSON object ({e.msg})") from None
        if len(line) > MAX_LITERAL_LINE:
            raise DataError(
                f"{path}: line {lineno} is not strict JSON and longer than {MAX_LITERAL_LINE} bytes, too long "
                "to read as a Python literal; convert the file to JSON lines"
            ) from None
        try:
            rec = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise DataError(
                f"{path}: line {lineno} is neither JSON ({e.msg}) nor a Python literal record"
            ) from None
        if not state.get("literal"):
            state["literal"] = True
            log.info("%s: python-literal records (the 2014 layout); read with ast.literal_eval", path)
    if not isinstance(rec, dict):
        raise DataError(f"{path}: line {lineno} holds a {type(rec).__name__}, not a JSON object")
    return rec


def records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for every non-empty line of a JSON-lines file (gzipped or not)."""
    state: dict[str, bool] = {}
    with _open(path) as f:
        lineno = 0
        try:
            while True:
                line = f.readline(MAX_LINE + 1)
                if not line:
                    return
                lineno += 1
                if len(line) > MAX_LINE:
                    raise DataError(
                        f"{path}: line {lineno} is over {MAX_LINE >> 20} MiB; not a review record"
                    )
                if line.strip():
                    if lineno % 1_000_000 == 0:
                        log.info("%s: %d lines read", path.name, lineno)
                    yield lineno, _parse(line, path, lineno, state)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise DataError(
                f"{path}: cannot read past line {lineno} ({e}); the file is truncated or corrupt"
            ) from None


def _first(rec: dict[str, Any], fields: tuple[str, ...]) -> Any:
    for f in fields:
        v = rec.get(f)
        if v is not None and v != "":
            return v
    return None


def detect(path: Path) -> bool:
    if _is_json_file(path):
        return True
    return path.is_dir() and any(_is_json_file(p) and not _is_meta(p) for p in path.iterdir())


def _read_reviews(path: Path) -> pd.DataFrame:
    lines, users, items, ratings, times = [], [], [], [], []
    for lineno, rec in records(path):
        lines.append(lineno)
        users.append(_first(rec, USER_FIELDS))
        items.append(_first(rec, ITEM_FIELDS))
        ratings.append(_first(rec, RATING_FIELDS))
        times.append(_first(rec, TIME_FIELDS))
    if not lines:
        raise DataError(f"{path}: no review records")
    if all(u is None for u in users) or all(i is None for i in items):
        raise DataError(
            f"{path}: records carry no {'/'.join(USER_FIELDS)} or no {'/'.join(ITEM_FIELDS)} field; is this "
            "a review file? (metadata files start with 'meta')"
        )
    df = pd.DataFrame({"line": lines, "user": users, "item": items})
    for col, values, fields in (("rating", ratings, RATING_FIELDS), ("time", times, TIME_FIELDS)):
        if all(v is None for v in values):
            continue
        num = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(num)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}: line {lines[j]} has {'/'.join(fields)} {values[j]!r}, not a finite number; fix or "
                "delete that record"
            )
        df[col] = num
    if "time" in df.columns and np.median(df["time"].to_numpy()) > _MS_THRESHOLD:
        df["time"] = df["time"] // 1000
    return df


def _text(value: Any) -> str:
    """A metadata value as text: lists (of lists) of strings are joined."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return " ".join(t for t in (_text(v) for v in value) if t)
    return str(value).strip()


def _categories(rec: dict[str, Any]) -> str:
    cats = rec.get("categories") or rec.get("category") or []
    flat: list[str] = []
    for c in cats if isinstance(cats, list | tuple) else [cats]:
        flat += [str(x) for x in c] if isinstance(c, list | tuple) else [str(c)]
    flat = [c.strip() for c in dict.fromkeys(flat) if str(c).strip()]
    return "categories: " + ", ".join(flat) if flat else ""


def _read_meta(path: Path, wanted: set[str], image_col: str | None) -> pd.DataFrame:
    """Metadata of the items in ``wanted`` (the rest of a category's catalogue is skipped, not kept)."""
    ids, titles, descriptions, categories, images = [], [], [], [], []
    urls = 0
    for _, rec in records(path):
        item = _first(rec, ITEM_FIELDS)
        if item is None or str(item) not in wanted:
            continue
        ids.append(str(item))
        titles.append(_text(rec.get("title")))
        descriptions.append(_text(rec.get("description")))
        categories.append(_categories(rec))
        img = rec.get(image_col) if image_col else None
        images.append(img if isinstance(img, str) else None)
        urls += any(rec.get(k) for k in ("imUrl", "imageURL", "imageURLHighRes", "images"))
    if urls:
        log.info(
            "%s: %d items have image URLs; nothing is downloaded: save the images as <item id>.jpg in a "
            "folder and pass --image-dir",
            path,
            urls,
        )
    table = pd.DataFrame(
        {"title": titles, "description": descriptions, "categories": categories, "image": images},
        index=pd.Index(ids, dtype=object),
    )
    return table[~table.index.duplicated(keep="last")]


def load_amazon(path: Path, options: LoadOptions | None = None) -> Dataset:
    """Amazon reviews (+ metadata) JSON lines → Dataset; see the module docstring for the fields read."""
    options = options or LoadOptions()
    reviews, meta = _files(Path(path), options)
    df = _read_reviews(reviews)
    inter = interactions_from_frame(
        df,
        "user",
        "item",
        reviews,
        rating_col="rating" if "rating" in df.columns else None,
        time_col="time" if "time" in df.columns else None,
    )
    table = None
    if meta is not None:
        table = _read_meta(meta, set(inter.item_ids.to_list()), options.image_col)
        log.info("%s: metadata for %d of %d items", meta.name, len(table), len(inter.item_ids))
    image_dir = Path(options.image_dir) if options.image_dir else None
    if image_dir is None and (reviews.parent / "images").is_dir():
        image_dir = reviews.parent / "images"
    content = None
    if table is not None or image_dir is not None:
        content = item_content(
            inter.item_ids,
            table,
            ("title", "description", "categories"),
            image_col="image",
            base_dir=None if meta is None else meta.parent,
            image_dir=image_dir,
        )
    return inter.dataset(reviews.name.split(".")[0], content=content)


LOADER = Loader(
    detect,
    load_amazon,
    "Amazon review + meta_*.json lines (optionally .gz), 2014/2018/2023 layouts",
    frozenset({"items_path", "image_col", "image_dir"}),
)
