"""fusionrec: multimodal recommendation — collaborative filtering fused with image and text features."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
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
