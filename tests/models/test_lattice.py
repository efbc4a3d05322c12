"""LATTICE: learnt item–item graphs on fixed sparse kNN edges, modality weights, any modality names."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _support import checkerboard

from fusionrec.data.dataset import Features
from fusionrec.errors import ConfigError
from fusionrec.models.lattice import LATTICE


def _features(names=("image", "text"), n_items: int = 30) -> Features:
    rng = np.random.RandomState(0)
    mats = {}
    for j, n in enumerate(names):
        x = rng.normal(size=(n_items, 6 + j)).astype(np.float32) * 0.3
        x[:, 0] += np.where(np.arange(n_items) % 2 == 0, 1.0, -1.0)
        mats[n] = x
    return Features(mats)


def _model(**kw) -> LATTICE:
    p = dict(factors=8, epochs=20, learning_rate=0.05, batch_size=128, neighbors=4, random_state=0)
    p.update(kw)
    m = LATTICE(**p)
    m.show_progress = False
    return m


def test_item_graph_stays_sparse_and_links_same_group_items():
    r = checkerboard()
    m = _model()
    m._device = "cpu"
    module = m._build(r, _features())
    for edges in module.edges:
        rows, cols = edges.rows, edges.cols
        assert len(rows) <= 30 * 4  # k edges per item, never n²
        same = (rows % 2 == cols % 2).float().mean()
        assert same > 0.9  # the feature kNN links items of one group
    h = m._item_graph_conv(module)
    assert h.shape == (30, 8)
    # gradients reach the learnt projection and the modality weights
    h.pow(2).sum().backward()
    assert module.proj[0].weight.grad.abs().sum() > 0 and module.modality_logits.grad is not None


def test_cpu_edge_products_match_plain_torch():
    # the scipy-backed autograd functions must give the torch reference's values and gradients
    r = checkerboard()
    m = _model(fixed_graph_weight=0.5)
    m._device = "cpu"
    module = m._build(r, _features())
    results = []
    for on_cpu in (True, False):
        for e in [*module.edges, module.union]:
            e.on_cpu = on_cpu
        module.zero_grad()
        h = m._item_graph_conv(module)
        (h * torch.arange(h.numel()).reshape(h.shape).float().sin()).sum().backward()
        results.append(
            (h.detach().clone(), module.proj[1].weight.grad.clone(), module.item.weight.grad.clone())
        )
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_lambda_one_ignores_the_projection():
    r = checkerboard()
    m = _model(fixed_graph_weight=1.0)
    m._device = "cpu"
    module = m._build(r, _features())
    before = m._item_graph_conv(module).detach().clone()
    with torch.no_grad():
        module.proj[0].weight.mul_(-3.0)
    assert torch.allclose(m._item_graph_conv(module), before)


def test_fits_with_any_modality_names_and_exports_weights():
    r = checkerboard()
    m = _model().fit(r, _features(names=("audio", "lyrics", "video")))
    assert m.modalities_ == ["audio", "lyrics", "video"]
    assert m.modality_weights_.shape == (3,) and np.isclose(m.modality_weights_.sum(), 1)
    s = m.score(np.arange(40))
    group = np.arange(30) % 2
    assert np.mean([s[u, group == u % 2].mean() - s[u, group != u % 2].mean() for u in range(40)]) > 0


def test_bad_settings():
    with pytest.raises(ConfigError, match="fixed_graph_weight"):
        _model(fixed_graph_weight=1.5).fit(checkerboard(), _features())
    with pytest.raises(ConfigError, match="features"):
        _model().fit(checkerboard(), None)
