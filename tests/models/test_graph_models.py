"""Graph recommenders (LightGCN, FREEDOM, BM3) beyond the shared contract: propagation, graphs, modalities."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from _support import checkerboard, group_features, quiet

from fusionrec.data.dataset import Features
from fusionrec.data.graph import normalised_adjacency
from fusionrec.errors import ConfigError
from fusionrec.evaluation import VALIDATOR
from fusionrec.models._torch import SparseAdj, resolve_device, sparse_tensor
from fusionrec.models.bm3 import BM3
from fusionrec.models.freedom import FREEDOM
from fusionrec.models.lightgcn import LightGCN, propagate


def test_scipy_spmm_matches_torch_sparse_with_gradients():
    a = sp.random(40, 30, density=0.2, format="csr", dtype=np.float32, random_state=0)
    x1 = torch.randn(30, 6, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1 = SparseAdj(a) @ x1
    y2 = torch.sparse.mm(sparse_tensor(a), x2)
    (y1**2).sum().backward()
    (y2**2).sum().backward()
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(x1.grad, x2.grad)


def test_propagate_is_the_layer_mean_of_graph_powers():
    r = checkerboard(12, 10)
    a = normalised_adjacency(r)
    u, i = torch.randn(12, 4), torch.randn(10, 4)
    pu, pi = propagate(SparseAdj(a), u, i, 3)
    e = np.vstack([u.numpy(), i.numpy()])
    d = a.toarray()
    want = (e + d @ e + d @ d @ e + d @ d @ d @ e) / 4
    np.testing.assert_allclose(np.vstack([pu.numpy(), pi.numpy()]), want, rtol=1e-5, atol=1e-6)


def test_lightgcn_stores_propagated_embeddings_as_factors():
    train = checkerboard()
    model = quiet(LightGCN(factors=8, layers=2, epochs=15, batch_size=128, learning_rate=0.05)).fit(train)
    assert model.user_factors_.shape == (40, 8) and model.item_factors_.shape == (30, 8)
    s = model.score(np.arange(40))
    same = (np.arange(40)[:, None] % 2) == (np.arange(30)[None, :] % 2)
    assert s[same].mean() > s[~same].mean()
    assert model.fit_device_ == "cpu" and model.epoch_seconds_ > 0


def test_device_choices():
    assert resolve_device("auto") in ("cpu", "cuda")
    assert resolve_device("CPU") == "cpu"
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="not available"):
            resolve_device("cuda")


def _board_without_items(cold=(0, 1)):
    train = checkerboard().tolil()
    train[:, list(cold)] = 0
    train = train.tocsr()
    train.eliminate_zeros()
    return train


def test_freedom_content_graph_places_items_without_interactions():
    # items 0 (group 0) and 1 (group 1) have no training interactions: only the content graph can tell
    train = _board_without_items()
    feats = group_features(30)
    model = quiet(
        FREEDOM(factors=8, epochs=30, batch_size=128, learning_rate=0.05, neighbors=5, edge_dropout=0.5)
    )
    s = model.fit(train, feats).score(np.arange(40))
    g0, g1 = np.arange(40) % 2 == 0, np.arange(40) % 2 == 1
    assert s[g0, 0].mean() > s[g0, 1].mean() and s[g1, 1].mean() > s[g1, 0].mean()


def test_freedom_takes_any_modalities_and_checks_weights():
    train = checkerboard()
    feats = group_features(30, names=("a", "b", "c", "d"))
    params = dict(factors=8, epochs=3, batch_size=128, learning_rate=0.05, neighbors=5)
    quiet(FREEDOM(**params, modality_weights={"a": 1.0, "d": 3.0})).fit(train, feats)
    with pytest.raises(ConfigError, match="modalities"):
        quiet(FREEDOM(**params, modality_weights={"image": 1.0})).fit(train, feats)
    with pytest.raises(ConfigError, match="positive sum"):
        quiet(FREEDOM(**params, modality_weights={"a": 0.0})).fit(train, feats)
    with pytest.raises(ConfigError, match="features"):
        quiet(FREEDOM(**params)).fit(train)


def test_freedom_prunes_a_fresh_graph_each_epoch():
    train = checkerboard()
    model = FREEDOM(factors=4, neighbors=3, edge_dropout=0.6)
    model._device = "cpu"
    module = model._build(train, group_features(30))
    model._on_epoch_start(module, 1)
    first = module.train_adj.csr.copy()
    model._on_epoch_start(module, 2)
    second = module.train_adj.csr
    assert first.nnz == second.nnz == 2 * round(train.nnz * 0.4)
    assert (first != second).nnz > 0
    assert module.full_adj.nnz == 2 * train.nnz


def test_bm3_needs_no_negatives_and_uses_every_modality():
    train = checkerboard()
    model = quiet(BM3(factors=8, epochs=20, batch_size=64, learning_rate=0.02))
    assert model.uses_negatives is False
    model.fit(train, group_features(30, names=("x", "y")))
    s = model.score(np.arange(40))
    same = (np.arange(40)[:, None] % 2) == (np.arange(30)[None, :] % 2)
    assert s[same].mean() > s[~same].mean()
    model._device = "cpu"
    module = model._build(train, group_features(30, names=("x", "y", "z")))
    assert len(module.proj) == 3 and [p.in_features for p in module.proj] == [4, 5, 6]


@pytest.mark.slow
def test_graph_models_beat_popularity_on_the_benchmark(benchmark_dir):
    from fusionrec.data.loaders import load_dataset
    from fusionrec.data.splits import split_dataset
    from fusionrec.evaluation import evaluate
    from fusionrec.models.popularity import MostPopular

    ds = load_dataset(benchmark_dir)
    split = split_dataset(ds, None, seed=2026)
    pop = evaluate(MostPopular().fit(split.train), split, on="valid").metrics["recall@20"]
    model = quiet(LightGCN(epochs=8, batch_size=4096, learning_rate=0.01, patience=0))
    model.fit(split.train, valid=split.valid, validate=VALIDATOR)
    got = evaluate(model, split, on="valid").metrics["recall@20"]
    assert got > pop + 0.02, (got, pop)
    assert got == pytest.approx(model.best_valid_, rel=1e-6)


@pytest.mark.parametrize("cls", [FREEDOM, BM3])
def test_modalities_selects_what_the_model_uses(cls):
    # one vocabulary: freedom and bm3 take `modalities` as vbpr, lattice and neural do
    train = checkerboard()
    feats = group_features(30, names=("a", "b"))
    params = dict(factors=8, epochs=2, batch_size=128, learning_rate=0.05, random_state=3)
    only_a = Features({"a": feats["a"]})
    picked = quiet(cls(**params, modalities=["a"])).fit(train, feats).score(np.arange(4))
    alone = quiet(cls(**params)).fit(train, only_a).score(np.arange(4))
    np.testing.assert_allclose(picked, alone, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="not in the data"):
        quiet(cls(**params, modalities=["image"])).fit(train, feats)
