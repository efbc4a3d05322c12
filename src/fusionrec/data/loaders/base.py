"""What every loader shares: the options, the registry entry type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

from fusionrec.data.dataset import Dataset


@dataclass
class LoadOptions:
    """How raw interactions become implicit positives, and which users/items are kept.

    Column options name the columns of generic tables (and fields of RecBole files). A column option set to
    something other than its default must exist in the data; at its default it is used when present.
    """

    rating_threshold: float | None = None  # keep rows with rating >= threshold; None keeps every row
    kcore: int = 0  # iterative k-core on users and items (0 = off)
    user_col: str = "user_id"
    item_col: str = "item_id"
    rating_col: str | None = "rating"
    time_col: str | None = "timestamp"
    items_path: str | None = None  # items table / metadata file (id, text columns, image path)
    item_id_col: str = "item_id"
    text_cols: tuple[str, ...] = ("title", "text", "description")
    image_col: str | None = "image"
    image_dir: str | None = None  # folder of <raw item id>.jpg|png|... images
    sep: str | None = None  # field separator of delimited files; None sniffs it from the first lines

    def changed(self) -> list[str]:
        """Names of the options set to something other than their default."""
        return [f.name for f in fields(self) if getattr(self, f.name) != f.default]


# LoadOptions fields that only some loaders read; every loader honours rating_threshold and kcore.
FORMAT_OPTIONS = frozenset(
    {"user_col", "item_col", "rating_col", "time_col", "items_path", "item_id_col", "text_cols", "image_col"}
    | {"image_dir", "sep"}
)


@dataclass(frozen=True)
class Loader:
    """One data format: how to recognise it, how to read it, and which format options it reads."""

    detect: Callable[[Path], bool]
    load: Callable[[Path, LoadOptions], Dataset]
    summary: str  # one line for --help and the README
    takes: frozenset[str] = field(default_factory=frozenset)  # FORMAT_OPTIONS this loader honours


#: column options of generic tables, and options of a separate items table
COLUMN_OPTIONS = frozenset({"user_col", "item_col", "rating_col", "time_col"})
ITEM_OPTIONS = frozenset({"items_path", "item_id_col", "text_cols", "image_col", "image_dir"})


def resolve_loader(target: str) -> Loader:
    """The :class:`Loader` a registry line names as ``"module:ATTRIBUTE"`` (see ``methods.LOADER_PATHS``)."""
    import importlib

    module, attr = target.split(":")
    loader = getattr(importlib.import_module(module), attr)
    if not isinstance(loader, Loader):
        raise TypeError(f"{target} is a {type(loader).__name__}, not a Loader")
    return loader
