"""fusionrec: multimodal recommendation — collaborative filtering fused with image and text features."""

from __future__ import annotations

from typing import Any

__all__ = ["Recommender", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Recommender":  # the Python facade, imported on first use (it pulls numpy and pandas)
        from fusionrec.api import Recommender

        return Recommender
    # read on first use: importlib.metadata costs a large part of `fusionrec --help`'s start-up otherwise
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("fusionrec")
        except PackageNotFoundError:  # running from a source tree without installation
            found = "0.0.0"
        globals()["__version__"] = found
        return found
    raise AttributeError(f"module 'fusionrec' has no attribute {name!r}")
