"""Real posters and texts: nearest neighbours by features share genres more often than random pairs."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.data.loaders import load_dataset
from fusionrec.features import run_extraction

N_ITEMS = 600


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def genre_agreement(
    values: np.ndarray, genres: list[set[str]], k: int = 10, seed: int = 0
) -> tuple[float, float]:
    """Mean genre Jaccard of each item with its k cosine nearest neighbours, and of random pairs."""
    x = values / np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-12)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    nn = np.argsort(-sims, axis=1)[:, :k]
    knn = float(np.mean([_jaccard(genres[i], genres[j]) for i in range(len(x)) for j in nn[i]]))
    rng = np.random.RandomState(seed)
    a, b = rng.randint(0, len(x), 20000), rng.randint(0, len(x), 20000)
    keep = a != b
    rand = float(np.mean([_jaccard(genres[i], genres[j]) for i, j in zip(a[keep], b[keep], strict=True)]))
    return knn, rand


@pytest.mark.slow
def test_features_group_items_by_genre(benchmark_dir, tmp_path):
    ds = load_dataset(benchmark_dir)
    assert ds.content is not None
    with_poster = np.flatnonzero([p is not None for p in ds.content.image_paths])
    pick = np.sort(np.random.RandomState(0).choice(with_poster, N_ITEMS, replace=False))
    content = ds.content.subset(pick)
    res = run_extraction(content, image="cnn", text="sentence", cache=tmp_path / "cache")
    assert res.reports["image"].n_present == N_ITEMS and res.reports["image"].n_failed == 0
    genres = [set(g.split("|")) - {""} for g in content.extra["genres"]]
    img_knn, img_rand = genre_agreement(res.features["image"], genres)
    txt_knn, txt_rand = genre_agreement(res.features["text"], genres)
    print(
        f"genre Jaccard@10 image {img_knn:.3f} vs random {img_rand:.3f}; text {txt_knn:.3f} vs {txt_rand:.3f}"
    )
    assert img_knn > 1.2 * img_rand and img_knn - img_rand > 0.04
    assert txt_knn > 1.8 * txt_rand
