"""Synthetic data: sizes, determinism, power-law popularity, and features that carry signal only when asked."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.data.synth import SynthSpec, generate, write_synthetic
from fusionrec.errors import ConfigError


def _spec(**kw) -> SynthSpec:
    return SynthSpec(**{"n_users": 3000, "n_items": 800, "n_interactions": 40_000, "seed": 4, **kw})


def test_same_seed_same_data_and_every_user_and_item_present():
    a, b = generate(_spec()), generate(_spec())
    assert all(np.array_equal(x, y) for x, y in zip(a[:2], b[:2], strict=True))
    users, items, _, _ = a
    assert len(np.unique(users * 800 + items)) == len(users)  # no duplicate pairs
    assert set(np.unique(users)) == set(range(3000)) and set(np.unique(items)) == set(range(800))
    assert 0.8 * 40_000 < len(users) <= 40_000 + 800


def test_popularity_and_activity_are_heavy_tailed():
    users, items, _, _ = generate(_spec())
    item_counts = np.sort(np.bincount(items))[::-1]
    assert item_counts[:8].sum() > 0.05 * len(items)  # top 1 % of items: > 5 % of interactions
    user_counts = np.bincount(users)
    assert user_counts.max() > 10 * np.median(user_counts)


def _same_cluster_share_of_neighbours(values: np.ndarray, cluster: np.ndarray) -> float:
    v = values.astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    sim = v @ v.T
    np.fill_diagonal(sim, -np.inf)
    return float((cluster[sim.argmax(1)] == cluster).mean())


def test_clustered_features_carry_signal_and_random_ones_do_not():
    _, _, feats, cluster = generate(_spec(modalities={"image": 32}))
    assert _same_cluster_share_of_neighbours(feats["image"], cluster) > 0.9
    _, _, feats, cluster = generate(_spec(modalities={"image": 32}, feature_kind="random"))
    assert _same_cluster_share_of_neighbours(feats["image"], cluster) < 0.2


def test_written_directory_loads_as_mmrec_with_float16_features(tmp_path):
    from fusionrec.data import load_dataset

    out = write_synthetic(_spec(float16=True, modalities={"audio": 16}), tmp_path / "syn")
    assert np.load(out / "audio_feat.npy").dtype == np.float16
    ds = load_dataset(out)
    assert (ds.n_users, ds.n_items) == (3000, 800) and ds.features.dims == {"audio": 16}


@pytest.mark.parametrize(
    "bad", [{"n_users": 0}, {"n_interactions": 10}, {"affinity": 2.0}, {"feature_kind": "x"}]
)
def test_impossible_specs_are_refused(bad):
    with pytest.raises(ConfigError):
        generate(_spec(**bad))
