"""Early / late / hybrid fusion helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionrec.data.dataset import Features
from fusionrec.errors import ConfigError
from fusionrec.fusion.strategies import (
    ContentTower,
    HybridItemTower,
    combine_scores,
    early_fusion,
    fit_weights,
    normalise_modality,
    resolve_modalities,
    zscore_rows,
)


def _features() -> Features:
    rng = np.random.RandomState(0)
    return Features({"image": rng.rand(6, 10) * 100, "text": rng.rand(6, 3)})


def test_early_fusion_gives_each_modality_unit_norm():
    fused = early_fusion(_features())
    assert fused.shape == (6, 13)
    assert np.allclose(np.linalg.norm(fused[:, :10], axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(fused[:, 10:], axis=1), 1, atol=1e-5)
    weighted = early_fusion(_features(), ["text"], weights={"text": 4.0})
    assert np.allclose(np.linalg.norm(weighted, axis=1), 2, atol=1e-5)


def test_normalise_standard_and_unknown():
    x = normalise_modality(np.arange(12.0).reshape(4, 3), "standard")
    assert np.allclose(x.mean(0), 0, atol=1e-6) and np.allclose(x.std(0), 1)
    with pytest.raises(ConfigError, match="normalisation"):
        normalise_modality(np.ones((2, 2)), "minmax")


def test_resolve_modalities_any_names():
    f = Features({"audio": np.ones((2, 2)), "text": np.ones((2, 3))})
    assert resolve_modalities(f, None) == ["audio", "text"]
    assert resolve_modalities(f, "audio") == ["audio"]
    with pytest.raises(ConfigError, match="image"):
        resolve_modalities(f, ["image"])


def test_zscore_rows_ignores_masked_entries():
    s = np.array([[1.0, 2.0, 3.0, -np.inf], [5.0, 5.0, 5.0, 5.0]], np.float32)
    z = zscore_rows(s)
    assert np.allclose(z[0, :3], [-1.2247449, 0, 1.2247449], atol=1e-5) and z[0, 3] == -np.inf
    assert np.all(z[1] == 0)


def test_combine_scores_is_scale_free():
    a = np.array([[1.0, 2.0, 3.0]])
    b = np.array([[300.0, 200.0, 100.0]])
    assert np.allclose(combine_scores([a, b], [1.0, 1.0]), 0, atol=1e-5)
    assert np.argmax(combine_scores([a, b * 1000], [1.0, 2.0])) == 0


def test_fit_weights_finds_the_useful_scorer():
    rng = np.random.RandomState(0)
    truth = rng.rand(50, 30)
    useful, noise = truth + 0.1 * rng.rand(50, 30), rng.rand(50, 30)

    # objective: agreement of the argmax with the truth
    def objective(s: np.ndarray) -> float:
        return float((s.argmax(1) == truth.argmax(1)).mean())

    w, best = fit_weights([zscore_rows(noise), zscore_rows(useful)], objective)
    assert w.max() == 1.0 and w[1] > w[0]
    assert best >= objective(useful) - 1e-9 and best > objective(noise)


def test_content_tower_fusions_and_parts():
    torch.manual_seed(0)
    xs = {"a": torch.randn(4, 5), "b": torch.randn(4, 3)}
    for fusion in ("attention", "sum", "concat"):
        tower = ContentTower({"a": 5, "b": 3}, 6, fusion=fusion)
        c, alpha = tower(xs)
        assert c.shape == (4, 6) and alpha.shape == (4, 2)
        parts = tower.parts(xs)
        if fusion == "concat":  # concat + linear == sum of per-modality projections
            assert torch.allclose(c, parts["a"] + parts["b"], atol=1e-5)
        if fusion == "sum":
            assert torch.allclose(c, alpha[:, :1] * parts["a"] + alpha[:, 1:] * parts["b"], atol=1e-5)
    with pytest.raises(ConfigError, match="fusion"):
        ContentTower({"a": 5}, 6, fusion="gate")


def test_hybrid_tower_adds_id_and_content():
    torch.manual_seed(0)
    tower = HybridItemTower(10, {"a": 5}, 4, fusion="sum")
    items = torch.tensor([1, 2])
    xs = {"a": torch.randn(2, 5)}
    v, _ = tower(items, xs)
    c, _ = tower.content(xs)
    assert torch.allclose(v, tower.item_emb(items) + c)
