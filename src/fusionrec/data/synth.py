"""Synthetic interaction sets at any size: power-law users and items, optional features per modality.

Used to measure time and memory at scales the real data does not reach. Items fall into clusters; a share of
each user's interactions comes from the user's favourite cluster, so clustered features carry real signal
(a multimodal model can beat a collaborative one on them) while random features carry none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data.export import atomic_dir
from fusionrec.data.feature_dir import FEAT_SUFFIX, write_npy
from fusionrec.errors import ConfigError


@dataclass
class SynthSpec:
    n_users: int = 10_000
    n_items: int = 2_000
    n_interactions: int = 200_000
    item_exponent: float = 0.8  # item popularity ∝ rank^-exponent (Zipf-like)
    user_exponent: float = 1.5  # Pareto shape of user activity (smaller = heavier tail)
    min_per_user: int = 3
    clusters: int = 50
    affinity: float = 0.6  # share of a user's interactions drawn from the favourite cluster
    modalities: dict[str, int] = field(default_factory=lambda: {"image": 64, "text": 32})
    feature_kind: str = "clustered"  # "clustered" (centroid + noise) or "random" (no signal)
    feature_noise: float = 1.0
    float16: bool = False
    seed: int = 0

    def check(self) -> None:
        for name in ("n_users", "n_items", "n_interactions", "clusters", "min_per_user"):
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"synth: {name} must be a positive integer; got {getattr(self, name)!r}")
        if self.n_interactions < self.n_users * self.min_per_user:
            raise ConfigError(
                f"synth: {self.n_interactions} interactions cannot give {self.n_users} users "
                f"{self.min_per_user} each; raise --interactions or lower --min-per-user"
            )
        if self.min_per_user > self.n_items:
            raise ConfigError("synth: min_per_user cannot exceed the number of items")
        if not 0.0 <= self.affinity <= 1.0:
            raise ConfigError(f"synth: affinity must lie in [0, 1]; got {self.affinity}")
        if self.feature_kind not in ("clustered", "random"):
            raise ConfigError(
                f"synth: feature kind must be 'clustered' or 'random'; got {self.feature_kind!r}"
            )


def _user_activity(spec: SynthSpec, rng: np.random.Generator) -> np.ndarray:
    """Interactions per user: Pareto-tailed, at least ``min_per_user``, summing to about the target."""
    raw = rng.pareto(spec.user_exponent, spec.n_users) + 1.0
    extra = spec.n_interactions - spec.n_users * spec.min_per_user
    counts = spec.min_per_user + np.floor(raw / raw.sum() * extra).astype(np.int64)
    return np.minimum(counts, spec.n_items)


def generate(spec: SynthSpec) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """(users, items, features, item_cluster): unique (user, item) pairs, one feature matrix per modality."""
    spec.check()
    rng = np.random.default_rng(spec.seed)
    n_items, n_clusters = spec.n_items, min(spec.clusters, spec.n_items)
    popularity = 1.0 / np.arange(1, n_items + 1, dtype=np.float64) ** spec.item_exponent
    popularity = popularity[rng.permutation(n_items)]
    cluster = rng.integers(0, n_clusters, n_items)

    # items sorted by cluster so one cumulative array serves both the global and the per-cluster draws
    order = np.argsort(cluster, kind="stable")
    cdf = np.cumsum(popularity[order])
    cdf /= cdf[-1]
    bounds = np.searchsorted(cluster[order], np.arange(n_clusters + 1))
    lo = np.concatenate([[0.0], cdf])[bounds[:-1]]
    hi = np.concatenate([[0.0], cdf])[bounds[1:]]

    counts = _user_activity(spec, rng)
    favourite_of = rng.integers(0, n_clusters, spec.n_users)

    def draw(users: np.ndarray) -> np.ndarray:
        favourite = favourite_of[users]
        r = rng.random(len(users))
        from_cluster = rng.random(len(users)) < spec.affinity
        r = np.where(from_cluster, lo[favourite] + r * (hi[favourite] - lo[favourite]), r)
        return order[np.minimum(np.searchsorted(cdf, r, side="right"), n_items - 1)].astype(np.int64)

    # duplicates collapse to one interaction; a few redraw rounds top users up towards their count
    key = np.zeros(0, np.int64)
    want = counts
    for _ in range(6):
        users = np.repeat(np.arange(spec.n_users, dtype=np.int64), want)
        key = np.union1d(key, users * n_items + draw(users))
        want = np.maximum(counts - np.bincount(key // n_items, minlength=spec.n_users), 0)
        if want.sum() < 0.01 * spec.n_interactions:
            break
    users, items = key // n_items, key % n_items
    missing = np.setdiff1d(np.arange(n_items), items)
    if len(missing):
        users = np.concatenate([users, rng.integers(0, spec.n_users, len(missing))])
        items = np.concatenate([items, missing])
        key = np.unique(users * n_items + items)
        users, items = key // n_items, key % n_items

    features: dict[str, np.ndarray] = {}
    dtype = np.float16 if spec.float16 else np.float32
    for m, (name, dim) in enumerate(spec.modalities.items()):
        frng = np.random.default_rng([spec.seed, m])
        if spec.feature_kind == "clustered":
            centroids = frng.standard_normal((n_clusters, dim)).astype(np.float32)
            values = centroids[cluster] + spec.feature_noise * frng.standard_normal(
                (n_items, dim), np.float32
            )
        else:
            values = frng.standard_normal((n_items, dim), np.float32)
        features[name] = values.astype(dtype)
    return users, items, features, cluster


def write_synthetic(spec: SynthSpec, out: str | Path) -> Path:
    """Generate and write an MMRec atomic directory (``synth.inter`` + ``<modality>_feat.npy``), atomically."""
    users, items, features, _ = generate(spec)
    out = Path(out)
    with atomic_dir(out) as tmp:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the data set is not
        ts = np.random.default_rng(spec.seed + 1).integers(1_500_000_000, 1_700_000_000, len(users))
        pd.DataFrame({"userID": users, "itemID": items, "timestamp": ts}).to_csv(
            tmp / "synth.inter", sep="\t", index=False
        )
        for name, values in features.items():
            write_npy(tmp / f"{name}{FEAT_SUFFIX}", values)  # float16 kept: large sets store them so
    return out
