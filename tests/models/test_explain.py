"""Explanations: per-modality or per-model contributions that add up to the score (or attention weights)."""

from __future__ import annotations

import numpy as np
import pytest
from _support import checkerboard

from fusionrec.data.dataset import Features
from fusionrec.errors import ConfigError
from fusionrec.models.explain import explain_recommendations
from fusionrec.models.late_fusion import LateFusion
from fusionrec.models.neural import NeuralFusion
from fusionrec.models.popularity import MostPopular
from fusionrec.models.vbpr import VBPR

FAST = {"factors": 8, "epochs": 15, "learning_rate": 0.05, "batch_size": 128}


def _features() -> Features:
    rng = np.random.RandomState(0)
    mats = {}
    for j, n in enumerate(("poster", "plot")):
        x = rng.normal(size=(30, 5 + j)).astype(np.float32) * 0.3
        x[:, 0] += np.where(np.arange(30) % 2 == 0, 1.0, -1.0)
        mats[n] = x
    return Features(mats)


def _fit(model):
    model.show_progress = False
    return model.fit(checkerboard(), _features())


def _recs(model, k=4):
    users = np.array([0, 1, 5])
    idx, _ = model.recommend(users, k=k, exclude=checkerboard())
    return users, idx


def test_vbpr_decomposition_adds_up_to_the_score():
    m = _fit(VBPR(**FAST))
    users, items = _recs(m)
    ex = explain_recommendations(m, users, items)
    assert ex.kind == "score-decomposition" and ex.parts == ["collaborative", "poster", "plot", "bias"]
    assert ex.values.shape == (3, 4, 4)
    np.testing.assert_allclose(
        ex.values.sum(-1), np.take_along_axis(m.score(users), items, 1), rtol=1e-4, atol=1e-4
    )
    d = ex.to_dicts()
    assert len(d) == 3 and set(d[0][0]) == set(ex.parts)
    assert np.allclose(np.abs(ex.shares()).sum(-1), 1, atol=1e-5)


def test_neural_attention_and_decomposition():
    m = _fit(NeuralFusion(**FAST))
    users, items = _recs(m)
    ex = explain_recommendations(m, users, items)
    assert ex.kind == "attention" and ex.parts == ["poster", "plot"]
    np.testing.assert_allclose(ex.values.sum(-1), 1, atol=1e-5)
    dec = explain_recommendations(m, users, items, kind="score-decomposition")
    np.testing.assert_allclose(
        dec.values.sum(-1), np.take_along_axis(m.score(users), items, 1), rtol=1e-4, atol=1e-4
    )


def test_late_fusion_shares_and_padding():
    lf = LateFusion(models=["most-popular", "vbpr"], params={"vbpr": FAST}, weights=[0.3, 1.0])
    m = _fit(lf)
    users = np.array([0, 1])
    items = np.array([[2, 4, -1], [1, 3, -1]])  # -1 = padding from a short list
    ex = explain_recommendations(m, users, items)
    assert ex.kind == "model-share" and ex.parts == ["most-popular", "vbpr"]
    np.testing.assert_allclose(
        ex.values[:, :2].sum(-1), np.take_along_axis(m.score(users), items[:, :2], 1), rtol=1e-4, atol=1e-4
    )
    assert np.isnan(ex.values[:, 2]).all() and ex.to_dicts()[0][2] == {}
    aligned = explain_recommendations(m, users, np.array([2, 3]))  # one item per user
    assert aligned.values.shape == (2, 1, 2)


def test_unexplainable_model_and_bad_input():
    m = _fit(MostPopular())
    with pytest.raises(NotImplementedError):
        explain_recommendations(m, np.array([0]), np.array([[1, 2]]))
    v = _fit(VBPR(**FAST))
    with pytest.raises(ConfigError, match="kind"):
        explain_recommendations(v, np.array([0]), np.array([[1]]), kind="shap")
    with pytest.raises(ConfigError, match="rows"):
        explain_recommendations(v, np.array([0, 1]), np.array([[1], [2], [3]]))
