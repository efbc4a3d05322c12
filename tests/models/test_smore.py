"""SMORE beyond the shared contract: its fused graph, its contrastive term, any modalities, cold items."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from _support import checkerboard, group_features, quiet

from fusionrec.errors import ConfigError
from fusionrec.models.smore import SMORE, fused_content_graph, info_nce

TWO = ("poster", "blurb")  # modality names the data happens to have
FAST = dict(factors=8, epochs=30, batch_size=128, learning_rate=0.05, neighbors=5)


def test_fused_graph_keeps_every_edge_at_its_largest_weight():
    a = sp.csr_matrix(np.array([[0.5, 0.2, 0.0], [0.0, 0.4, 0.0], [0.1, 0.0, 0.0]], np.float32))
    b = sp.csr_matrix(np.array([[0.3, 0.0, 0.6], [0.0, 0.7, 0.0], [0.0, 0.0, 0.0]], np.float32))
    c = sp.csr_matrix(np.array([[0.0, 0.0, 0.0], [0.9, 0.0, 0.0], [0.0, 0.0, 0.2]], np.float32))
    want = np.array([[0.5, 0.2, 0.6], [0.9, 0.7, 0.0], [0.1, 0.0, 0.2]], np.float32)
    np.testing.assert_allclose(fused_content_graph([a, b, c]).toarray(), want)


def test_info_nce_is_the_softmax_cross_entropy_of_matching_rows():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    sims = torch.exp(an @ bn.T / 0.2)
    want = (-torch.log(sims.diagonal() / sims.sum(dim=1))).mean()
    torch.testing.assert_close(info_nce(a, b, 0.2), want)
    # aligned pairs cost less than shuffled ones
    assert info_nce(a, a, 0.2) < info_nce(a, a.roll(1, dims=0), 0.2)


@pytest.mark.parametrize("names", [("only",), ("a", "b", "c", "d")])
def test_any_number_of_modalities_separates_the_groups(names):
    train = checkerboard()
    model = quiet(SMORE(**FAST)).fit(train, group_features(30, names))
    s = model.score(np.arange(40))
    assert np.isfinite(s).all()
    same = (np.arange(40)[:, None] % 2) == (np.arange(30)[None, :] % 2)
    assert s[same].mean() > s[~same].mean()
    model._device = "cpu"
    module = model._build(train, group_features(30, names))
    # one filter, gate and graph per modality plus the fused view; one attention query per modality
    assert len(module.filters) == len(module.content_adj) == len(names) + 1
    assert len(module.queries) == len(names)


def test_content_graphs_place_items_without_interactions():
    # items 0 (group 0) and 1 (group 1) have no training interactions: only the content side can place them
    train = checkerboard().tolil()
    train[:, [0, 1]] = 0
    train = train.tocsr()
    train.eliminate_zeros()
    s = quiet(SMORE(**FAST, random_state=1)).fit(train, group_features(30, TWO)).score(np.arange(40))
    g0, g1 = np.arange(40) % 2 == 0, np.arange(40) % 2 == 1
    assert s[g0, 0].mean() > s[g0, 1].mean() and s[g1, 1].mean() > s[g1, 0].mean()


def test_features_are_trained_only_when_asked():
    train = checkerboard()
    feats = group_features(30, TWO)
    for trainable in (True, False):
        model = SMORE(factors=8, neighbors=5, train_features=trainable)
        model._device = "cpu"
        module = model._build(train, feats)
        assert [p.requires_grad for p in module.feats] == [trainable, trainable]
        np.testing.assert_array_equal(module.feats[0].detach().numpy(), feats["poster"])


def test_modalities_must_be_in_the_data():
    with pytest.raises(ConfigError, match="not in the data"):
        quiet(SMORE(**FAST, modalities=["image"])).fit(checkerboard(), group_features(30, TWO))
    with pytest.raises(ConfigError, match="features"):
        quiet(SMORE(**FAST)).fit(checkerboard())
