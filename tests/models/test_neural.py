"""The attention fusion network: inner-product export, attention per user, towers, augmentation, ratings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from _support import checkerboard

from fusionrec.artifacts import Artifact, load_artifact, save_artifact
from fusionrec.data.dataset import Features, IdMap
from fusionrec.errors import ConfigError
from fusionrec.evaluation import VALIDATOR, evaluate_ratings
from fusionrec.models.fusion.encoders import image_pixels, text_tokens
from fusionrec.models.neural import NeuralFusion

GROUP = np.arange(30) % 2


def group_features(n_items: int = 30, names=("image", "text"), seed: int = 0) -> Features:
    rng = np.random.RandomState(seed)
    mats = {}
    for j, n in enumerate(names):
        x = rng.normal(size=(n_items, 6 + j)).astype(np.float32) * 0.3
        x[:, 0] += np.where(np.arange(n_items) % 2 == 0, 1.0, -1.0)
        mats[n] = x
    return Features(mats)


def _model(**kw) -> NeuralFusion:
    p = dict(factors=8, epochs=20, learning_rate=0.05, batch_size=128, random_state=0)
    p.update(kw)
    m = NeuralFusion(**p)
    m.show_progress = False
    return m


def _margin(s: np.ndarray) -> float:
    """Mean over users of (own-group score − other-group score)."""
    return float(np.mean([s[u, GROUP == u % 2].mean() - s[u, GROUP != u % 2].mean() for u in range(len(s))]))


MODES = [{}, {"modality_dropout": 0.3, "feature_noise": 0.1}]


@pytest.mark.parametrize("kw", MODES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
def test_learns_the_checkerboard_as_one_inner_product_and_round_trips(kw, tmp_path):
    r = checkerboard()
    m = _model(**kw).fit(r, group_features())
    s = m.score(np.arange(40))
    assert s.shape == (40, 30) and np.isfinite(s).all() and _margin(s) > 0.5
    np.testing.assert_allclose(np.vstack([m.score([u]) for u in range(5)]), s[:5], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s, m.user_vectors() @ m.item_vectors().T, rtol=1e-4, atol=1e-4)
    art = Artifact(model=m, user_ids=IdMap(range(40)), item_ids=IdMap(range(30)), train=r)
    back = load_artifact(save_artifact(art, tmp_path / "a")).model
    np.testing.assert_array_equal(back.score(np.arange(40)), s)


def test_user_level_attention_differs_between_users_and_parts_sum_to_score():
    # group-0 users are served by "image" (it encodes the groups), group-1 users equally by both;
    # what matters here: weights are per user, sum to one, and the parts add up to the score
    r = checkerboard()
    m = _model(epochs=30).fit(r, group_features())
    a = m.user_attention_
    assert a.shape == (40, 2) and np.allclose(a.sum(1), 1, atol=1e-5)
    assert np.ptp(a[:, 0]) > 1e-3
    users, items = np.array([0, 1, 2]), np.array([[0, 1], [2, 3], [4, 5]])
    w = m.attention_weights(users, items)
    np.testing.assert_allclose(w[:, 0], a[users], rtol=1e-6)
    parts = m.score_parts(users, items)
    assert list(parts) == ["collaborative", "image", "text", "bias"]
    np.testing.assert_allclose(
        sum(parts.values()), np.take_along_axis(m.score(users), items, 1), rtol=1e-4, atol=1e-4
    )


def test_cold_items_and_any_modality_names():
    r = checkerboard()
    feats = group_features(names=("audio", "lyrics", "video"))
    m = _model(pca_dim=3).fit(r, feats)
    assert m.modalities_ == ["audio", "lyrics", "video"]
    full = m.item_vectors_from_features({n: feats[n] for n in feats})
    d = m.factors
    np.testing.assert_allclose(full[:, d:-1], m.item_vectors()[:, d:-1], rtol=1e-4, atol=1e-5)
    assert np.all(full[:, :d] == 0)
    s = m.user_vectors()[:2] @ full[:2].T  # new copies of item 0 (group 0) and item 1 (group 1)
    assert s[0, 0] > s[0, 1] and s[1, 1] > s[1, 0]


def test_end_to_end_towers_train_on_raw_pixels_and_tokens(tmp_path):
    from PIL import Image

    rng = np.random.RandomState(0)
    paths = []
    for i in range(30):  # group 0: reddish posters, group 1: bluish
        arr = rng.randint(0, 60, (20, 16, 3)).astype(np.uint8)
        arr[..., 0 if i % 2 == 0 else 2] += 180
        p = tmp_path / f"{i}.png"
        Image.fromarray(arr).save(p)
        paths.append(str(p))
    paths[7] = None  # an item without an image
    pix = image_pixels(paths, size=8)
    assert pix["pixels"].shape == (30, 192) and not pix.mask("pixels")[7]
    words = [
        ("space robots laser" if i % 2 == 0 else "romance wedding love") + f" film{i}" for i in range(30)
    ]
    toks = text_tokens(words, max_len=6, vocab_size=64)
    assert toks.shape == (30, 6) and toks.max() < 64 and np.all(toks[:, 4:] == 0)
    feats = Features({"pixels": pix["pixels"], "words": toks}, {"pixels": pix.mask("pixels")})
    r = checkerboard()
    m = _model(image_modalities=["pixels"], text_modalities=["words"], image_size=8, epochs=25)
    m.fit(r, feats)
    assert m.modality_kinds_ == ["image", "text"] and _margin(m.score(np.arange(40))) > 0.5
    # the towers place a cold item exactly as its trained copy
    v = m.item_vectors_from_features({"pixels": pix["pixels"][:2], "words": toks[:2]})
    np.testing.assert_allclose(v[:, 8:-1], m.item_vectors()[:2, 8:-1], rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="both"):
        _model(image_modalities=["pixels"], text_modalities=["pixels"]).fit(r, feats)


def test_configuration_errors():
    r, f = checkerboard(), group_features()
    with pytest.raises(ConfigError, match="objective"):
        _model(objective="hinge").fit(r, f)
    with pytest.raises(ConfigError, match="is now called 'attention_dim'"):
        NeuralFusion.from_params({"hidden": 16})


def _genre_features(movies: pd.DataFrame) -> np.ndarray:
    genres = sorted({g for gs in movies["genres"] for g in gs.split("|")})
    col = {g: j for j, g in enumerate(genres)}
    x = np.zeros((len(movies), len(genres)), np.float32)
    for i, gs in enumerate(movies["genres"]):
        x[i, [col[g] for g in gs.split("|")]] = 1.0
    return x


@pytest.mark.slow
def test_rating_prediction_on_movielens_beats_the_bias_baseline(shared_data):
    ratings = pd.read_csv(shared_data / "ratings.csv")
    movies = pd.read_csv(shared_data / "movies.csv").set_index("movieId")
    users, u_idx = np.unique(ratings["userId"].to_numpy(), return_inverse=True)
    items, i_idx = np.unique(ratings["movieId"].to_numpy(), return_inverse=True)
    feats = Features({"genres": _genre_features(movies.loc[items].reset_index())})
    rng = np.random.RandomState(0)
    part = rng.rand(len(ratings))  # 80 / 10 / 10 random split of the rating rows
    shape = (len(users), len(items))

    def csr(sel):
        return sp.csr_matrix(
            (ratings["rating"].to_numpy(np.float32)[sel], (u_idx[sel], i_idx[sel])), shape=shape
        )

    train, valid, test = csr(part < 0.8), csr((part >= 0.8) & (part < 0.9)), csr(part >= 0.9)
    m = NeuralFusion(
        objective="mse",
        factors=16,
        epochs=40,
        learning_rate=0.01,
        reg=0.05,
        batch_size=4096,
        patience=3,
        random_state=0,
    )
    m.show_progress = False
    m.fit(train, feats, valid=valid, validate=VALIDATOR)
    res = evaluate_ratings(m, test).metrics
    # baseline: global mean + item bias (damped), the usual floor for MovieLens RMSE
    mu = train.data.mean()
    cnt = np.diff(train.tocsc().indptr)
    item_b = (np.asarray(train.sum(axis=0)).ravel() - cnt * mu) / (cnt + 10)
    t = test.tocoo()
    base = float(np.sqrt(np.mean((mu + item_b[t.col] - t.data) ** 2)))
    assert 0 < res["mae"] < res["rmse"]
    assert res["rmse"] < base - 0.02, (res, base)
    assert m.best_valid_ < 0  # early stopping tracked −RMSE
