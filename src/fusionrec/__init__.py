"""fusionrec: multimodal recommendation — collaborative filtering fused with image and text features."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fusionrec")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["__version__"]
