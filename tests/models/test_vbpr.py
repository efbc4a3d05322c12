"""VBPR: content term over any modalities, inner-product export, cold items, score decomposition."""

from __future__ import annotations

import numpy as np
import pytest
from _support import checkerboard

from fusionrec.artifacts import Artifact, load_artifact, save_artifact
from fusionrec.data.dataset import Features, IdMap
from fusionrec.errors import ConfigError
from fusionrec.models.vbpr import VBPR


def group_features(n_items: int, names=("image", "text"), seed: int = 0) -> Features:
    """Each modality carries the item's checkerboard group (i % 2) plus noise."""
    rng = np.random.RandomState(seed)
    group = np.arange(n_items) % 2
    mats = {}
    for j, n in enumerate(names):
        x = rng.normal(size=(n_items, 6 + j)).astype(np.float32) * 0.3
        x[:, 0] += np.where(group == 0, 1.0, -1.0)
        mats[n] = x
    return Features(mats)


def _model(**kw) -> VBPR:
    p = dict(factors=8, epochs=30, learning_rate=0.05, batch_size=128, reg=1e-4, random_state=0)
    p.update(kw)
    m = VBPR(**p)
    m.show_progress = False
    return m


@pytest.mark.parametrize("user_content", ["shared", "per-modality"])
def test_learns_checkerboard_and_is_inner_product(user_content):
    r = checkerboard()
    feats = group_features(r.shape[1])
    m = _model(user_content=user_content).fit(r, feats)
    s = m.score(np.arange(r.shape[0]))
    np.testing.assert_allclose(s, m.user_vectors() @ m.item_vectors().T, rtol=1e-5, atol=1e-5)
    group = np.arange(r.shape[1]) % 2
    for u in (0, 1):
        assert s[u, group == u % 2].mean() > s[u, group != u % 2].mean()


def test_any_modality_names_and_count():
    r = checkerboard()
    feats = group_features(r.shape[1], names=("audio", "lyrics", "video"))
    m = _model(epochs=3, user_content="per-modality").fit(r, feats)
    assert m.modalities_ == ["audio", "lyrics", "video"]
    assert [b[0] for b in m.blocks] == ["collaborative", "audio", "lyrics", "video", "bias"]
    only = _model(epochs=3, modalities=["lyrics"]).fit(r, feats)
    assert only.modalities_ == ["lyrics"]


def test_score_parts_sum_to_score():
    r = checkerboard()
    m = _model(epochs=5).fit(r, group_features(r.shape[1]))
    users = np.array([0, 3, 5])
    items = np.array([[1, 2, 3], [0, 4, 6], [7, 8, 9]])
    parts = m.score_parts(users, items)
    total = sum(parts.values())
    expected = np.take_along_axis(m.score(users), items, axis=1)
    np.testing.assert_allclose(total, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pca_dim", [None, 3])  # 3: features reduced to principal directions first
def test_cold_item_vector_from_content_ranks_with_its_group(pca_dim):
    r = checkerboard()
    feats = group_features(r.shape[1])
    m = _model(pca_dim=pca_dim).fit(r, feats)
    assert m.content_proj_0_.shape == (6, 8)  # always from the raw feature size
    # a new group-0 item: feature 0 high in both modalities
    rows = {n: feats[n][[0, 1]] for n in feats}  # item 0 (group 0), item 1 (group 1)
    v = m.item_vectors_from_features(rows)
    assert v.shape == (2, m.item_vectors().shape[1])
    assert np.all(v[:, : m.blocks[0][2]] == 0)  # no collaborative part
    s = m.user_vectors()[:2] @ v.T  # user 0 likes group 0, user 1 group 1
    assert s[0, 0] > s[0, 1] and s[1, 1] > s[1, 0]
    # trained items' content part is reproduced exactly from their features
    full = m.item_vectors_from_features({n: feats[n] for n in feats})
    k = m.blocks[0][2]
    np.testing.assert_allclose(full[:, k:-1], m.item_vectors()[:, k:-1], rtol=1e-4, atol=1e-5)
    # a missing modality is allowed (imputed with the training mean)
    assert m.item_vectors_from_features({"text": feats["text"][:1]}).shape == (1, v.shape[1])
    with pytest.raises(ConfigError, match="unknown modality"):
        m.item_vectors_from_features({"audio": np.zeros((1, 3))})


def test_save_load_identical_scores(tmp_path):
    r = checkerboard()
    feats = group_features(r.shape[1])
    m = _model(epochs=3, user_content="per-modality").fit(r, feats)
    art = Artifact(model=m, user_ids=IdMap(range(r.shape[0])), item_ids=IdMap(range(r.shape[1])), train=r)
    back = load_artifact(save_artifact(art, tmp_path / "a")).model
    users = np.arange(5)
    np.testing.assert_array_equal(back.score(users), m.score(users))
    np.testing.assert_array_equal(
        back.item_vectors_from_features({"image": feats["image"][:2]}),
        m.item_vectors_from_features({"image": feats["image"][:2]}),
    )


def test_needs_features():
    with pytest.raises(ConfigError, match="features"):
        _model(epochs=1).fit(checkerboard(), None)
    with pytest.raises(ConfigError, match="user_content"):
        _model(epochs=1, user_content="both").fit(checkerboard(), group_features(30))
