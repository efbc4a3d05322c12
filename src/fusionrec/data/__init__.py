"""Data layer: datasets, loaders, splits, sampling and graphs.

Names are imported on first use, so that light submodules (``fusionrec.data.methods``, which the CLI's parser
reads) do not pull in numpy and pandas.
"""

from __future__ import annotations

from typing import Any

from fusionrec.lazy import lazy_attribute

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
    return lazy_attribute(__name__, _EXPORTS, name)
