"""content-knn: content neighbours over any modality names, one validation-fitted gate per modality."""

from __future__ import annotations

import numpy as np
import pytest
from _support import checkerboard

from fusionrec.data.dataset import Features
from fusionrec.errors import ConfigError
from fusionrec.evaluation import VALIDATOR
from fusionrec.models import create_model


def _group_features(n_items: int, seed: int = 0) -> Features:
    """``signal`` encodes the item group (what the checkerboard's users follow); ``noise`` is pure noise."""
    rng = np.random.RandomState(seed)
    group = np.arange(n_items) % 2
    signal = rng.normal(0.0, 0.3, (n_items, 8)).astype(np.float32)
    signal[:, 0] += np.where(group == 0, 1.0, -1.0)
    return Features({"signal": signal, "noise": rng.normal(size=(n_items, 16)).astype(np.float32)})


def test_content_neighbours_rank_the_users_group_first():
    X = checkerboard(40, 30)
    model = create_model("content-knn", {"neighbors": 5, "modalities": ["signal"]}).fit(
        X, _group_features(30)
    )
    scores = model.score(np.arange(40))
    same = (np.arange(30)[None, :] % 2) == (np.arange(40)[:, None] % 2)
    assert scores[same].mean() > scores[~same].mean() + 1.0


def test_validation_gate_switches_off_a_noise_modality():
    # the gate is what keeps a useless modality from diluting the useful one
    X, V = checkerboard(40, 30, seed=0), checkerboard(40, 30, seed=1)
    V = (V - V.multiply(X)).tocsr()
    V.eliminate_zeros()
    model = create_model("content-knn", {"neighbors": 5}).fit(
        X, _group_features(30), valid=V, validate=VALIDATOR
    )
    gates = dict(zip(model.modalities_, model.weights_, strict=True))
    assert gates["signal"] == 1.0 and gates["noise"] < 0.3
    parts = model.modality_scores(np.arange(3))
    np.testing.assert_allclose(parts["signal"] + parts["noise"], model.score(np.arange(3)), rtol=1e-5)


def test_fold_in_matches_a_known_users_scores():
    X = checkerboard(20, 30)
    model = create_model("content-knn", {"neighbors": 5, "weights": [1.0, 0.5]}).fit(X, _group_features(30))
    np.testing.assert_allclose(model.fold_in_user(X[3].indices), model.score(np.array([3]))[0], rtol=1e-5)


def test_items_without_content_get_no_neighbours():
    feats = _group_features(30)
    mask = np.ones(30, bool)
    mask[[4, 7]] = False
    feats.add("signal", feats["signal"], mask)
    model = create_model("content-knn", {"neighbors": 5, "modalities": ["signal"]}).fit(checkerboard(), feats)
    assert not np.isin([4, 7], model.sim_t_0_indices_).any()


def test_bad_settings_say_what_to_do():
    X, feats = checkerboard(), _group_features(30)
    with pytest.raises(ConfigError, match="one non-negative value per modality"):
        create_model("content-knn", {"weights": [1.0]}).fit(X, feats)
    with pytest.raises(ConfigError, match="not in the data"):
        create_model("content-knn", {"modalities": ["audio"]}).fit(X, feats)
    with pytest.raises(ConfigError, match="needs item features"):
        create_model("content-knn").fit(X)
