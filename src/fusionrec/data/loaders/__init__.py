"""Loaders, one module per data format, and the ``LOADERS`` registry they are found through.

``load_dataset(path)`` asks each registered format, in order, whether it recognises the path; ``format=``
forces one. The CLI's ``--format`` choices and the README's format list come from ``LOADERS``; adding a
format is one module (defining its :class:`Loader`) plus one line in ``fusionrec.data.methods.LOADER_PATHS``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fusionrec.data import methods
from fusionrec.data.dataset import Dataset
from fusionrec.data.feature_dir import modality_name
from fusionrec.data.feature_dir import read_feature_dir as load_feature_dir
from fusionrec.data.loaders.amazon import load_amazon
from fusionrec.data.loaders.base import FORMAT_OPTIONS, Loader, LoadOptions, resolve_loader
from fusionrec.data.loaders.implicit import apply_implicit, kcore_mask, subset_interactions
from fusionrec.data.loaders.mmrec import load_mmrec
from fusionrec.data.loaders.movielens import demo_path, load_movielens
from fusionrec.data.loaders.recbole import load_recbole
from fusionrec.data.loaders.table import load_table
from fusionrec.errors import DataError

log = logging.getLogger("fusionrec")

# Detection order: the first format whose detector accepts the path loads it (the order of methods.LOADER_PATHS).
LOADERS: dict[str, Loader] = {name: resolve_loader(target) for name, target in methods.LOADER_PATHS.items()}
FORMATS = tuple(LOADERS)

_FLAGS = {"items_path": "--items", "text_cols": "--text-cols", "item_id_col": "--item-id-col"}


def _flag(option: str) -> str:
    return _FLAGS.get(option, "--" + option.replace("_", "-"))


def detect_format(path: Path) -> str:
    """The first registered format that recognises ``path``."""
    path = Path(path)
    for name, loader in LOADERS.items():
        if loader.detect(path):
            return name
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    raise DataError(
        f"{path}: not a format fusionrec recognises ({'; '.join(l.summary for l in LOADERS.values())}); "
        f"pass --format {'|'.join(LOADERS)}"
    )


def load_dataset(path: str | Path, format: str | None = None, options: LoadOptions | None = None) -> Dataset:
    """Load a data set from ``path`` (see ``LOADERS``), then apply the implicit-feedback options."""
    options = options or LoadOptions()
    p = Path(path)
    fmt = format or detect_format(p)
    loader = LOADERS.get(fmt)
    if loader is None:
        raise DataError(f"unknown format {fmt!r}; choose one of {', '.join(LOADERS)}")
    ignored = [o for o in options.changed() if o in FORMAT_OPTIONS and o not in loader.takes]
    if ignored:
        users = [n for n, entry in LOADERS.items() if ignored[0] in entry.takes]
        raise DataError(
            f"{_flag(ignored[0])} does not apply to the {fmt} format (its layout is fixed); it applies to "
            f"{', '.join(users)}"
        )
    if fmt != "demo" and not p.exists():
        raise DataError(f"{p}: no such file or directory")
    ds = apply_implicit(loader.load(p, options), options)
    log.info("loaded %s: %s", fmt, ds.summary())
    return ds


__all__ = [
    "FORMATS",
    "LOADERS",
    "LoadOptions",
    "Loader",
    "apply_implicit",
    "demo_path",
    "detect_format",
    "kcore_mask",
    "load_amazon",
    "load_dataset",
    "load_feature_dir",
    "load_mmrec",
    "load_movielens",
    "load_recbole",
    "load_table",
    "modality_name",
    "subset_interactions",
]
