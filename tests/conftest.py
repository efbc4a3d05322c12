"""Shared fixtures: the real MovieLens data beside the checkout. Synthetic data helpers live in _support.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data" / "movielens-small-mm").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The MovieLens directory with posters (read-only). CI lays ../shared beside the clone."""
    if not (SHARED_DATA / "ratings.csv").exists():
        pytest.fail(f"real data not found at {SHARED_DATA}; ../shared must sit beside the checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def benchmark_dir(shared_data: Path) -> Path:
    return shared_data / "benchmark"
