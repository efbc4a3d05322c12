"""Shared fixtures: the real MovieLens data beside the checkout, and small synthetic interaction sets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

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


def checkerboard(n_users: int = 40, n_items: int = 30, seed: int = 0) -> sp.csr_matrix:
    """Two user groups × two item groups: group-0 users like group-0 items, group-1 users group-1 items."""
    rng = np.random.RandomState(seed)
    rows, cols = [], []
    for u in range(n_users):
        g = u % 2
        items = [i for i in range(n_items) if i % 2 == g]
        chosen = rng.choice(items, size=int(len(items) * 0.7), replace=False)
        rows += [u] * len(chosen)
        cols += list(chosen)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
