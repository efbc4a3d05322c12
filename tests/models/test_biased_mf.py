"""Biased matrix factorisation on planted ratings: it learns them, predicts pairs and explains its parts."""

import functools

import numpy as np
import pytest
import scipy.sparse as sp

from fusionrec.errors import ConfigError
from fusionrec.evaluation import evaluate_ratings
from fusionrec.models.biased_mf import BiasedMF
from fusionrec.models.explain import explain_recommendations


@functools.cache
def planted(n_users=200, n_items=150, k=3, density=0.3, seed=0):
    """Ratings ``3 + b_u + b_i + p_u·q_i + noise`` on a random 30 % of cells, split 80/10/10 by rating."""
    rng = np.random.RandomState(seed)
    bu, bi = rng.normal(0, 0.4, n_users), rng.normal(0, 0.4, n_items)
    P, Q = rng.normal(0, 0.6, (n_users, k)), rng.normal(0, 0.6, (n_items, k))
    u, i = np.nonzero(rng.rand(n_users, n_items) < density)
    r = 3 + bu[u] + bi[i] + (P[u] * Q[i]).sum(1) + rng.normal(0, 0.2, len(u))
    part = rng.rand(len(u))

    def csr(sel):
        return sp.csr_matrix((r[sel].astype(np.float32), (u[sel], i[sel])), shape=(n_users, n_items))

    return csr(part < 0.8), csr((part >= 0.8) & (part < 0.9)), csr(part >= 0.9)


def _fit(**params):
    train, valid, _ = planted()
    m = BiasedMF(**{"factors": 8, "epochs": 60, "learning_rate": 0.02, "reg": 0.02, **params})
    m.show_progress = False
    return m.fit(train, valid=valid)


def test_learns_planted_ratings_far_better_than_biases_alone():
    train, _, test = planted()
    m = _fit()
    res = evaluate_ratings(m, test, train=train)
    biases_only = evaluate_ratings(_fit(factors=1, init_std=0.0), test, train=train)
    mu = train.data.mean()
    floor = float(np.sqrt(np.mean((test.data - mu) ** 2)))
    assert res.metrics["rmse"] < 0.6 * biases_only.metrics["rmse"] < 0.6 * floor, (res, biases_only, floor)
    assert abs(m.global_mean_ - mu) < 1e-5


def test_early_stopping_keeps_the_best_validation_epoch():
    m = _fit(epochs=200, learning_rate=0.05, reg=0.0, patience=2)
    assert m.epochs_run_ < 200 and m.best_epoch_ == m.epochs_run_ - 2
    _, valid, _ = planted()
    assert evaluate_ratings(m, valid).metrics["rmse"] == pytest.approx(m.best_valid_rmse_, rel=1e-5)


def test_predict_score_vectors_and_parts_agree():
    m = _fit(epochs=5)
    users = np.array([0, 5, 5, 199])
    items = np.array([3, 0, 149, 7])
    scores = m.score(users)
    np.testing.assert_allclose(m.predict(users, items), scores[np.arange(4), items], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.user_vectors()[users] @ m.item_vectors().T, scores, rtol=1e-5, atol=1e-5)
    top, _ = m.recommend(users, k=4)
    exp = explain_recommendations(m, users, top)
    assert exp.parts == ["global_mean", "user_bias", "item_bias", "interaction"]
    np.testing.assert_allclose(exp.values.sum(-1), np.take_along_axis(scores, top, 1), rtol=1e-5, atol=1e-4)


def test_bad_settings_say_what_to_fix():
    train, _, _ = planted()
    with pytest.raises(ConfigError, match="learning_rate"):
        BiasedMF(learning_rate=0).fit(train)
    with pytest.raises(ConfigError, match="diverged"):
        BiasedMF(learning_rate=50.0, epochs=3, factors=4).fit(train)
    with pytest.raises(ConfigError, match="at least one"):
        BiasedMF().fit(sp.csr_matrix((3, 3), dtype=np.float32))


def _per_rating_sgd(train, *, factors, epochs, lr, reg, init_std, seed, implicit):
    """Funk's SGD (and SVD++'s) one rating at a time, in the order the model draws: the reference."""
    n_users, n_items = train.shape
    users = np.repeat(np.arange(n_users), np.diff(train.indptr))
    items, r = train.indices, train.data.astype(np.float64)
    rng = np.random.default_rng(seed)
    P = rng.normal(0, init_std, (n_users, factors)).astype(np.float32).astype(np.float64)
    Q = rng.normal(0, init_std, (n_items, factors)).astype(np.float32).astype(np.float64)
    Y = np.zeros((n_items, factors))
    bu, bi, mu = np.zeros(n_users), np.zeros(n_items), r.mean()
    rated = [train.indices[train.indptr[u] : train.indptr[u + 1]] for u in range(n_users)]
    for _ in range(epochs):
        for j in rng.permutation(len(r)):
            u, i = users[j], items[j]
            norm = 1 / np.sqrt(len(rated[u]))
            pu = P[u] + (norm * Y[rated[u]].sum(0) if implicit else 0)
            e = r[j] - (mu + bu[u] + bi[i] + pu @ Q[i])
            bu[u] += lr * (e - reg * bu[u])
            bi[i] += lr * (e - reg * bi[i])
            P[u] += lr * (e * Q[i] - reg * P[u])
            if implicit:
                Y[rated[u]] += lr * (e * norm * Q[i] - reg * Y[rated[u]])
            Q[i] += lr * (e * pu - reg * Q[i])
    users_all = np.repeat(np.arange(n_users), n_items)
    items_all = np.tile(np.arange(n_items), n_users)
    eff = P + (
        np.vstack([Y[rated[u]].sum(0) / np.sqrt(len(rated[u])) for u in range(n_users)]) if implicit else 0
    )
    return (mu + bu[users_all] + bi[items_all] + (eff[users_all] * Q[items_all]).sum(1)).reshape(
        n_users, n_items
    )


@pytest.mark.parametrize("implicit", [False, True])
def test_batches_of_one_are_exactly_per_rating_sgd(implicit):
    # the vectorised minibatch step must reduce to the textbook per-rating update (SVD++ included)
    rng = np.random.RandomState(3)
    dense = np.where(rng.rand(6, 5) < 0.6, rng.randint(1, 6, (6, 5)), 0).astype(np.float32)
    train = sp.csr_matrix(dense)
    settings = {"factors": 3, "epochs": 4, "lr": 0.05, "reg": 0.03, "init_std": 0.1, "seed": 5}
    want = _per_rating_sgd(train, implicit=implicit, **settings)
    m = BiasedMF(
        factors=3,
        epochs=4,
        learning_rate=0.05,
        reg=0.03,
        init_std=0.1,
        random_state=5,
        batch_size=1,
        implicit=implicit,
    )
    m.show_progress = False
    m.fit(train)
    np.testing.assert_allclose(m.score(np.arange(6)), want, rtol=1e-4, atol=1e-4)


def test_svdpp_learns_and_folds_in_from_items_alone():
    train, _, test = planted()
    plain = evaluate_ratings(_fit(), test, train=train).metrics["rmse"]
    m = _fit(implicit=True)
    assert evaluate_ratings(m, test, train=train).metrics["rmse"] < plain * 1.05
    assert m.item_implicit_.shape == (150, 8) and np.abs(m.item_implicit_).sum() > 0
    liked = train[0].indices[np.argsort(-train[0].data)[:10]]
    s = m.fold_in_user(liked)
    assert s.shape == (150,) and np.isfinite(s).all()
    # a new user who liked user 0's favourites is predicted to rate like user 0 (correlated scores)
    assert np.corrcoef(s, m.score(np.array([0]))[0])[0, 1] > 0.5
