"""The shared Recommender contract, run over every registered model.

A new model gets these checks by its registry line alone. Keep its runs fast through ``FAST_PARAMS`` (a model
with an ``epochs`` parameter gets ``AUTO_EPOCHS`` unless listed). Models that need or use item features get
synthetic ones whose modalities have arbitrary names and encode the item group.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.sparse as sp
from _support import checkerboard

from fusionrec.artifacts import Artifact, load_artifact, save_artifact
from fusionrec.data.dataset import Features, IdMap
from fusionrec.errors import ConfigError, NotFittedError
from fusionrec.models.base import Recommender
from fusionrec.models.registry import create_model, get_model_class, model_names

MODELS = model_names()

# Small settings per model so that the whole contract stays fast; unknown models get {}.
FAST_PARAMS: dict[str, dict] = {
    "itemknn": {"neighbors": 10},
    "userknn": {"neighbors": 10},
    "ease": {"reg": 5.0},
    "content-knn": {"neighbors": 5},
    "content-ease": {"reg": 5.0},
    "content-als": {"factors": 8, "epochs": 5},
    "als": {"factors": 8, "epochs": 5},
    "bpr-torch": {"factors": 8, "batch_size": 128, "learning_rate": 0.05},
    "lightgcn": {"factors": 8, "batch_size": 128, "learning_rate": 0.05},
    "freedom": {"factors": 8, "batch_size": 128, "learning_rate": 0.05, "neighbors": 5},
    "bm3": {"factors": 8, "batch_size": 64, "learning_rate": 0.02},
    "vbpr": {"factors": 8, "batch_size": 128, "learning_rate": 0.05},
    "late-fusion": {
        "models": ["als", "vbpr"],
        "params": {
            "als": {"factors": 8, "epochs": 5},
            "vbpr": {"factors": 8, "batch_size": 128, "learning_rate": 0.05, "epochs": 20},
        },
    },
    "neural": {"factors": 8, "batch_size": 128, "learning_rate": 0.05},
    "lattice": {"factors": 8, "batch_size": 128, "learning_rate": 0.05, "neighbors": 5},
    "smore": {"factors": 8, "batch_size": 128, "learning_rate": 0.05, "neighbors": 5},
    "biased-mf": {"factors": 8, "learning_rate": 0.02},
}
AUTO_EPOCHS = 20

# Models that cannot rank withheld positives first by design (the same list for every user).
NON_PERSONALISED = {
    "most-popular": "non-personalised: one popularity list for every user cannot separate the two groups",
    "random": "random scores are the floor the other models are compared with",
}

N_USERS, N_ITEMS = 40, 30


# ---------------------------------------------------------------------------------------------- helpers


def fast_params(name: str) -> dict:
    params = dict(FAST_PARAMS.get(name, {}))
    if "epochs" in get_model_class(name).param_defaults():
        params.setdefault("epochs", AUTO_EPOCHS)
    return params


def make(name: str, **overrides) -> Recommender:
    model = create_model(name, {**fast_params(name), **overrides})
    model.show_progress = False
    return model


def needs_features(name: str) -> bool:
    return _needs_features(get_model_class(name))


def _needs_features(cls: type[Recommender]) -> bool:
    return bool(cls.requires_features) or cls.uses_features


def synthetic_features(name: str, n_items: int, seed: int = 0) -> Features:
    """Modalities with unusual names (plus any the model insists on) whose first columns encode the group."""
    cls = get_model_class(name)
    names = sorted({"image", "audio"} | {m for m in cls.requires_features if m != "*"})
    group = np.arange(n_items) % 2
    rng = np.random.RandomState(seed)
    mats = {}
    for j, mod in enumerate(names):
        x = rng.normal(0.0, 0.3, (n_items, 6 + 2 * j)).astype(np.float32)
        x[:, 0] += np.where(group == 0, 1.0, -1.0)
        x[:, 1] += group
        mats[mod] = x
    return Features(mats)


def features_for(name: str, n_items: int) -> Features | None:
    return synthetic_features(name, n_items) if needs_features(name) else None


def withhold(full: sp.csr_matrix, per_user: int = 2, seed: int = 0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Move ``per_user`` random positives of every user from train to test."""
    rng = np.random.RandomState(seed)
    full = sp.csr_matrix(full)
    test = np.zeros(full.nnz, bool)
    for u in range(full.shape[0]):
        lo, hi = full.indptr[u], full.indptr[u + 1]
        test[lo + rng.choice(hi - lo, size=per_user, replace=False)] = True
    rows = np.repeat(np.arange(full.shape[0]), np.diff(full.indptr))

    def part(sel: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((full.data[sel], (rows[sel], full.indices[sel])), shape=full.shape)

    return part(~test), part(test)


@functools.cache
def board() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    return withhold(checkerboard(N_USERS, N_ITEMS, seed=0))


@functools.cache
def rated_board() -> sp.csr_matrix:
    """The board's train part as ratings: in-group items rated 4-5, plus 3 other-group items per user rated 1.

    Rating models (``task = "rating"``) predict values, so on 1.0 everywhere they would predict 1.0
    everywhere; rated cells give them the preference the ranking models read from presence alone.
    """
    train, _ = board()
    rng = np.random.RandomState(1)
    coo = train.tocoo()
    rows, cols = list(coo.row), list(coo.col)
    vals = list(rng.choice([4.0, 5.0], len(rows)))
    for u in range(N_USERS):
        other = np.flatnonzero(np.arange(N_ITEMS) % 2 != u % 2)
        for i in rng.choice(other, 3, replace=False):
            rows.append(u), cols.append(i), vals.append(1.0)
    return sp.csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=train.shape)


def train_for(name: str) -> sp.csr_matrix:
    return rated_board() if get_model_class(name).task == "rating" else board()[0]


@functools.cache
def fitted(name: str) -> Recommender:
    return make(name).fit(train_for(name), features_for(name, N_ITEMS))


def withheld_auc(scores: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix) -> float:
    """Mean over users of P(score of a withheld positive > score of an other-group item), ties count half."""
    aucs = []
    for u in range(scores.shape[0]):
        pos = test[u].indices
        neg = np.flatnonzero(np.arange(scores.shape[1]) % 2 != u % 2)
        d = scores[u, pos][:, None] - scores[u, neg][None, :]
        aucs.append(((d > 0) + 0.5 * (d == 0)).mean())
    return float(np.mean(aucs))


def personalised(name: str):
    reason = NON_PERSONALISED.get(name)
    return pytest.param(name, marks=[pytest.mark.xfail(strict=True, reason=reason)] if reason else [])


def models_where(pred) -> list[str]:
    """Models whose class satisfies ``pred``; one that fails to import is kept so that its tests fail."""
    out = []
    for name in MODELS:
        try:
            cls = get_model_class(name)
        except ImportError:
            out.append(name)
            continue
        if pred(cls):
            out.append(name)
    return out


# ---------------------------------------------------------------------------------------------- the contract


@pytest.mark.parametrize("name", MODELS)
def test_fit_returns_self_and_scores_every_item(name):
    train, _ = board()
    model = make(name)
    assert model.fit(train, features_for(name, N_ITEMS)) is model
    s = model.score(np.arange(N_USERS))
    assert s.shape == (N_USERS, N_ITEMS) and s.dtype == np.float32
    assert np.isfinite(s).all(), "scores must be finite (masking is recommend's job)"


@pytest.mark.parametrize("name", [personalised(n) for n in MODELS])
def test_withheld_positives_rank_above_the_other_group(name):
    train, test = board()
    users = np.arange(N_USERS)
    auc = withheld_auc(fitted(name).score(users), train_for(name), test)
    random_auc = withheld_auc(make("random", random_state=3).fit(train).score(users), train, test)
    assert auc >= 0.8 and auc > random_auc + 0.25, f"{name}: AUC {auc:.3f} vs random {random_auc:.3f}"


@pytest.mark.parametrize("name", MODELS)
def test_batch_scores_equal_single_user_scores(name):
    model = fitted(name)
    users = np.arange(N_USERS)
    batch = model.score(users)
    single = np.vstack([model.score(np.array([u])) for u in users])
    np.testing.assert_allclose(batch, single, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score(users[::-1]), batch[::-1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_score_returns_a_fresh_array(name):
    # callers (evaluator, recommend) mask scores in place without copying
    model = fitted(name)
    users = np.arange(N_USERS)
    first = model.score(users)
    first[:] = -np.inf
    assert np.isfinite(model.score(users)).all()


@pytest.mark.parametrize("name", MODELS)
def test_recommend_never_returns_excluded_items(name):
    train, _ = board()
    model = fitted(name)
    users = np.arange(N_USERS)
    idx, val = model.recommend(users, k=N_ITEMS, exclude=train)
    seen = train.toarray().astype(bool)
    valid = idx >= 0
    assert not seen[np.repeat(users, N_ITEMS)[valid.ravel()], idx[valid]].any()
    # every item that is not excluded comes back, best first
    np.testing.assert_array_equal(valid.sum(axis=1), N_ITEMS - seen.sum(axis=1))
    assert (val[:, 1:] <= val[:, :-1])[valid[:, 1:]].all()
    top, _ = model.recommend(3, k=5, exclude=train)
    assert top.shape == (1, 5) and not seen[3, top[0][top[0] >= 0]].any()


@pytest.mark.parametrize("name", MODELS)
def test_save_load_gives_identical_scores(name, tmp_path):
    train, _ = board()
    model = fitted(name)
    feats = features_for(name, N_ITEMS)
    art = Artifact(
        model=model,
        user_ids=IdMap(range(N_USERS)),
        item_ids=IdMap(range(N_ITEMS)),
        train=train,
        features=feats,
    )
    save_artifact(art, tmp_path / "art")
    loaded = load_artifact(tmp_path / "art")
    assert type(loaded.model) is type(model) and loaded.model.get_params() == model.get_params()
    users = np.arange(N_USERS)
    np.testing.assert_array_equal(loaded.model.score(users), model.score(users))


@pytest.mark.parametrize("name", MODELS)
def test_same_random_state_gives_identical_scores(name):
    train, _ = board()
    seed = {"random_state": 7} if "random_state" in get_model_class(name).param_defaults() else {}
    feats = features_for(name, N_ITEMS)
    a = make(name, **seed).fit(train, feats).score(np.arange(N_USERS))
    b = make(name, **seed).fit(train, feats).score(np.arange(N_USERS))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", MODELS)
def test_scoring_before_fit_raises(name):
    model = make(name)
    with pytest.raises(NotFittedError):
        model.score(np.array([0]))
    with pytest.raises(NotFittedError):
        model.recommend(0, k=3)


@pytest.mark.parametrize("name", MODELS)
def test_refit_forgets_earlier_data(name):
    train, _ = board()
    other = checkerboard(24, 20, seed=5)
    refit = make(name).fit(train, features_for(name, N_ITEMS))
    refit.fit(other, features_for(name, 20))
    fresh = make(name).fit(other, features_for(name, 20))
    assert (refit.n_users_, refit.n_items_) == (24, 20)
    users = np.arange(24)
    np.testing.assert_array_equal(refit.score(users), fresh.score(users))


@pytest.mark.parametrize("name", MODELS)
def test_unknown_param_lists_valid_ones(name):
    with pytest.raises(ConfigError) as err:
        create_model(name, {"no_such_param": 1})
    msg = str(err.value)
    assert "no_such_param" in msg
    for key in get_model_class(name).param_defaults():
        assert key in msg


@pytest.mark.parametrize("name", models_where(lambda cls: not _needs_features(cls)))
def test_feature_free_models_ignore_features(name):
    # the pipeline hands a data set's features to every model; these must not change anything
    train = train_for(name)
    with_feats = make(name).fit(train, synthetic_features(name, N_ITEMS)).score(np.arange(N_USERS))
    np.testing.assert_array_equal(with_feats, fitted(name).score(np.arange(N_USERS)))


@pytest.mark.parametrize("name", models_where(lambda cls: cls.is_inner_product))
def test_inner_product_models_score_by_their_vectors(name):
    model = fitted(name)
    users = np.arange(N_USERS)
    u, v = model.user_vectors(), model.item_vectors()
    assert u.shape[0] == N_USERS and v.shape[0] == N_ITEMS and u.shape[1] == v.shape[1]
    np.testing.assert_allclose(model.score(users), u[users] @ v.T, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_fold_in_user_prefers_the_users_group(name):
    model = fitted(name)
    try:
        s = model.fold_in_user(np.array([0, 2, 4, 6, 8]))
    except NotImplementedError:
        pytest.skip(f"{name} does not fold in new users")
    assert s.shape == (N_ITEMS,) and np.isfinite(s).all()
    if name in NON_PERSONALISED:
        return
    unseen = np.setdiff1d(np.arange(N_ITEMS), [0, 2, 4, 6, 8])
    assert s[unseen[unseen % 2 == 0]].mean() > s[unseen[unseen % 2 == 1]].mean()


# ------------------------------------------------------------------------------------------ shared hot path


@pytest.mark.parametrize("kind", ["distinct", "ties", "masked", "nan"])
def test_top_k_fast_path_equals_a_full_stable_sort(kind):
    # top_k filters large blocks by group maxima before sorting; it must return exactly what a full stable
    # sort returns (ties by lower index, at the cut too), or lists would differ between evaluation, the
    # CLI and the server
    from fusionrec.ranking import top_k

    rng = np.random.default_rng(7)
    s = rng.standard_normal((300, 3000)).astype(np.float32)
    if kind == "ties":
        s = np.round(s, 1)
    elif kind == "masked":
        s[rng.random(s.shape) < 0.4] = -np.inf
        s[:5, 20:] = -np.inf  # fewer finite scores than k
    elif kind == "nan":
        s[rng.random(s.shape) < 0.01] = np.nan
    clean = np.where(np.isnan(s), -np.inf, s)
    for k in (1, 20, 50):
        order = np.argsort(-clean, axis=1, kind="stable")[:, :k]
        want_val = np.take_along_axis(clean, order, axis=1)
        want_idx = np.where(np.isfinite(want_val), order, -1)
        idx, val = top_k(s, k)
        np.testing.assert_array_equal(idx, want_idx)
        np.testing.assert_array_equal(val, want_val)
        small_idx, _ = top_k(s[:20, :500], k)  # the plain path (small blocks) follows the same rule
        ref = np.argsort(-clean[:20, :500], axis=1, kind="stable")[:, :k]
        ref_val = np.take_along_axis(clean[:20, :500], ref, axis=1)
        np.testing.assert_array_equal(small_idx, np.where(np.isfinite(ref_val), ref, -1))


@pytest.mark.parametrize("name", MODELS)
def test_forgetting_a_user_keeps_everyone_else_in_place(name):
    # privacy: every per-user row of the forgotten user leaves the model; a missed array would shift the
    # rows of all later users by one
    from fusionrec.artifacts import Artifact, forget_user
    from fusionrec.data.dataset import IdMap

    train, _ = board()
    model = fitted(name)
    art = Artifact(model=model, user_ids=IdMap(range(N_USERS)), item_ids=IdMap(range(N_ITEMS)), train=train)
    before = model.score(np.arange(1, N_USERS))
    after = forget_user(art, 0).model
    assert after.n_users_ == N_USERS - 1
    scores = after.score(np.arange(N_USERS - 1))
    assert scores.shape == before.shape
    # user-based CF scores through the other users, and random draws per user index: both change by design
    if name not in ("userknn", "random"):
        np.testing.assert_allclose(scores, before, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "name, old, new, value",
    [
        ("freedom", "knn_k", "neighbors", 3),
        ("freedom", "mm_layers", "item_layers", 3),
        ("lattice", "knn_k", "neighbors", 3),
        ("bpr-torch", "early_stop_metric", "valid_metric", "ndcg@10"),
        ("late-fusion", "metric", "valid_metric", "ndcg@10"),
        ("content-knn", "metric", "valid_metric", "ndcg@10"),
        ("content-ease", "metric", "valid_metric", "ndcg@10"),
        ("vbpr", "feature_dim", "pca_dim", 3),
        ("lattice", "feature_dim", "pca_dim", 3),
        ("vbpr", "content_factors", "content_dim", 3),
        ("lattice", "proj_dim", "content_dim", 3),
        ("neural", "hidden", "attention_dim", 3),
    ],
)
def test_old_parameter_names_are_refused_with_the_new_one(name, old, new, value):
    # one vocabulary: a renamed parameter must not silently fall back to its default
    from fusionrec.models.registry import create_model

    with pytest.raises(ConfigError, match=f"'{old}' is now called '{new}'"):
        create_model(name, {old: value})
    # artifacts written before the rename still load
    model = get_model_class(name).from_params({old: value}, upgrade=True)
    assert getattr(model, new) == value


@pytest.mark.parametrize("name", [n for n in MODELS if get_model_class(n).supports_warm_start])
def test_warm_start_from_its_own_fit_on_grown_data(name, caplog):
    # `fusionrec refit`: known users and items start from the earlier fit, two new users and an item fresh
    import logging

    from fusionrec.models.base import WarmStart

    first = fitted(name)
    grown = checkerboard(N_USERS + 2, N_ITEMS + 1, seed=3)
    if get_model_class(name).task == "rating":
        grown = grown * 4.0
    warm = WarmStart.from_model(first, np.r_[np.arange(N_USERS), -1, -1], np.r_[np.arange(N_ITEMS), -1])
    model = make(name)
    with caplog.at_level(logging.INFO, logger="fusionrec"):
        model.fit(grown, features_for(name, N_ITEMS + 1), warm_start=warm)
    scores = model.score(np.arange(N_USERS + 2))
    assert scores.shape == (N_USERS + 2, N_ITEMS + 1) and np.isfinite(scores).all()
    if getattr(model, "is_torch", False):  # every parameter tensor of a torch model starts from the fit
        started = [r.getMessage() for r in caplog.records if "warm start of" in r.getMessage()]
        assert len(started) == 1
        k, total = map(int, started[0].split("warm start of ")[1].split(" parameter")[0].split(" of "))
        assert k == total > 0
