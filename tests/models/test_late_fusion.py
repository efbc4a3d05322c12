"""Late fusion: weights fitted on validation, per-model shares, artifacts with prefixed sub-model state."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from _support import checkerboard

from fusionrec.artifacts import Artifact, load_artifact, save_artifact
from fusionrec.data.dataset import Features, IdMap
from fusionrec.errors import ConfigError
from fusionrec.evaluation import VALIDATOR
from fusionrec.models.fusion.scoring import zscore_rows
from fusionrec.models.late_fusion import LateFusion

VBPR_FAST = {"factors": 8, "epochs": 20, "learning_rate": 0.05, "batch_size": 128}


def _features(n_items: int) -> Features:
    rng = np.random.RandomState(0)
    x = rng.normal(size=(n_items, 4)).astype(np.float32) * 0.3
    x[:, 0] += np.where(np.arange(n_items) % 2 == 0, 1.0, -1.0)
    return Features({"text": x})


def _split(r: sp.csr_matrix, seed: int = 0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Move one random positive per user to validation."""
    rng = np.random.RandomState(seed)
    r = r.tolil(copy=True)
    valid = sp.lil_matrix(r.shape, dtype=np.float32)
    for u in range(r.shape[0]):
        items = r.rows[u]
        i = items[rng.randint(len(items))]
        r[u, i] = 0
        valid[u, i] = 1
    train = sp.csr_matrix(r)
    train.eliminate_zeros()
    return train, sp.csr_matrix(valid)


def _fit(**kw) -> LateFusion:
    r = checkerboard(60, 40)
    train, valid = _split(r)
    m = LateFusion(**kw)
    m.show_progress = False
    return m.fit(train, _features(r.shape[1]), valid=valid, validate=VALIDATOR)


def test_weights_switch_off_a_useless_model():
    m = _fit(models=["random", "vbpr"], params={"vbpr": VBPR_FAST}, valid_metric="ndcg@3")
    assert m.sub_names_ == ["random", "vbpr"]
    w = dict(zip(m.sub_names_, m.weights_, strict=True))
    assert w["vbpr"] == 1.0 and w["random"] < 0.5
    assert m.valid_score_ is not None and m.valid_score_ > 0.3


def test_score_is_sum_of_weighted_z_scores_and_shares():
    m = _fit(models="most-popular,vbpr", params=[{}, VBPR_FAST], weights=[0.5, 1.0])
    users = np.arange(6)
    subs = m.sub_models
    expected = 0.5 * zscore_rows(subs[0].score(users)) + zscore_rows(subs[1].score(users))
    np.testing.assert_allclose(m.score(users), expected, rtol=1e-5, atol=1e-5)
    items = np.tile(np.arange(40), (len(users), 1))
    shares = m.score_parts(users, items)
    assert list(shares) == ["most-popular", "vbpr"]
    np.testing.assert_allclose(sum(shares.values()), m.score(users), rtol=1e-5, atol=1e-5)
    assert m.fold_in_user(np.array([0, 2, 4])).shape == (40,)


def test_sub_models_get_distinct_seeds_from_ours():
    m = _fit(models="vbpr,vbpr", params=[VBPR_FAST, VBPR_FAST], weights=[1, 1], random_state=5)
    a, b = m.sub_models
    assert (a.random_state, b.random_state) == (5, 6)
    assert list(m.score_parts(np.arange(2), np.zeros((2, 1), np.int64))) == ["vbpr#0", "vbpr#1"]


def test_save_load_round_trip(tmp_path):
    m = _fit(models=["most-popular", "vbpr"], params={"vbpr": VBPR_FAST})
    r = checkerboard(60, 40)
    art = Artifact(model=m, user_ids=IdMap(range(r.shape[0])), item_ids=IdMap(range(r.shape[1])), train=r)
    path = save_artifact(art, tmp_path / "lf")
    back = load_artifact(path).model
    users = np.arange(10)
    np.testing.assert_array_equal(back.score(users), m.score(users))
    assert back.sub_params_[1]["factors"] == 8
    arrays = m.state_arrays()
    assert "weights_" in arrays and "user_factors__m1_" in arrays and "item_popularity__m0_" in arrays


def test_several_validation_metrics_are_averaged():
    from fusionrec.evaluation import evaluate_scores

    m = _fit(models=["random", "vbpr"], params={"vbpr": VBPR_FAST}, valid_metric="ndcg@3,recall@3")
    train, valid = _split(checkerboard(60, 40))
    res = evaluate_scores(m.score, valid, train, metrics=["ndcg@3", "recall@3"]).metrics
    assert 0 < m.valid_score_ <= 1
    assert m.valid_score_ == pytest.approx((res["ndcg@3"] + res["recall@3"]) / 2, abs=1e-6)
    with pytest.raises(ValueError, match="metric"):  # before any sub-model trains
        _fit(models=["random"], valid_metric="recal@20")


def test_configuration_errors():
    with pytest.raises(ConfigError, match="not in models"):
        _fit(models=["most-popular"], params={"als": {}})
    with pytest.raises(ConfigError, match="one value per model"):
        _fit(models=["most-popular", "random"], weights=[1.0])
    with pytest.raises(ConfigError, match="unknown model"):
        _fit(models=["nope"])
    with pytest.raises(ConfigError, match="itself"):
        _fit(models=["late-fusion"])


def test_forgetting_a_user_reaches_every_sub_model(tmp_path):
    # sub-models keep per-user state of their own (ALS factors, EASE history); all of it must go, and the
    # remaining users must keep their exact scores (a missed sub-model would shift every later user by one)
    from fusionrec.artifacts import forget_user
    from fusionrec.models import create_model

    X, V = checkerboard(), checkerboard(seed=1)
    model = create_model("late-fusion", {"models": "als,ease,itemknn"}).fit(X, valid=V, validate=VALIDATOR)
    art = Artifact(model=model, user_ids=IdMap(range(X.shape[0])), item_ids=IdMap(range(X.shape[1])), train=X)
    before = model.score(np.arange(1, X.shape[0]))
    save_artifact(forget_user(art, 0), tmp_path / "lf")
    after = load_artifact(tmp_path / "lf").model
    assert [m.n_users_ for m in after.sub_models] == [X.shape[0] - 1] * 3
    np.testing.assert_allclose(after.score(np.arange(X.shape[0] - 1)), before, rtol=1e-5, atol=1e-6)
