"""Package attributes imported on first use (a light submodule must not pull in numpy through its package)."""

from __future__ import annotations

import importlib
from typing import Any


def lazy_attribute(package: str, exports: dict[str, str], name: str) -> Any:
    """``package.name`` taken from the module that ``exports`` names for it: a package's ``__getattr__``."""
    if name not in exports:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return getattr(importlib.import_module(exports[name]), name)
