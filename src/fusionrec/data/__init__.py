"""Data layer: datasets, loaders, splits, sampling and graphs."""

from fusionrec.data.dataset import Dataset, Features, IdMap, ItemContent, Split
from fusionrec.data.loaders import LoadOptions, load_dataset
from fusionrec.data.splits import split_dataset

__all__ = [
    "Dataset",
    "Features",
    "IdMap",
    "ItemContent",
    "LoadOptions",
    "Split",
    "load_dataset",
    "split_dataset",
]
