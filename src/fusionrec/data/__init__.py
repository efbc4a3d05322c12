"""Data layer: datasets, loaders, splits, sampling and graphs.

Names are imported on first use, so that light submodules (``fusionrec.data.methods``, which the CLI's parser
reads) do not pull in numpy and pandas.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Dataset": "fusionrec.data.dataset",
    "Features": "fusionrec.data.dataset",
    "IdMap": "fusionrec.data.dataset",
    "ItemContent": "fusionrec.data.dataset",
    "Split": "fusionrec.data.dataset",
    "LoadOptions": "fusionrec.data.loaders",
    "load_dataset": "fusionrec.data.loaders",
    "split_dataset": "fusionrec.data.splits",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fusionrec.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
