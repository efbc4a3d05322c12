"""content-als: ALS with one pseudo-user per item and modality (its content neighbours), weights fitted on valid."""

from __future__ import annotations

import numpy as np
import pytest
from _support import GROUPS, own_group_share, quiet, sparse_groups, taste_features

from fusionrec.errors import ConfigError
from fusionrec.evaluation import VALIDATOR
from fusionrec.models import create_model

ALS = {"factors": 8, "reg": 1.0, "alpha": 4.0, "epochs": 10, "random_state": 0}


def _fit(name, params, train, features=None, **kw):
    return quiet(create_model(name, {**ALS, **params})).fit(train, features, **kw)


def test_zero_content_weights_are_exactly_als():
    train, _ = sparse_groups()
    als = _fit("als", {}, train)
    plain = _fit("content-als", {"content_weights": [0.0, 0.0]}, train, taste_features(60))
    np.testing.assert_allclose(plain.score(np.arange(60)), als.score(np.arange(60)), rtol=1e-5, atol=1e-6)


def test_content_neighbours_relate_items_that_interactions_barely_do():
    train, _ = sparse_groups()
    users = np.arange(60)
    als = _fit("als", {}, train)
    with_content = _fit(
        "content-als", {"modalities": ["signal"], "content_weights": [1.0]}, train, taste_features(60)
    )
    # one train item per user: ALS has no co-occurrence to learn from, the pseudo-users give it the groups
    assert with_content.user_factors_.shape == (60, 8)  # the pseudo-users' factors are not kept
    assert own_group_share(with_content.score(users), train) > 0.6
    assert own_group_share(als.score(users), train) < 0.35


def test_an_item_nobody_interacted_with_gets_factors_from_its_content():
    train, _ = sparse_groups()
    train = train.tolil()
    train[:, 12] = 0  # item 12 (group 0) loses every interaction
    train = train.tocsr()
    train.eliminate_zeros()
    model = _fit(
        "content-als", {"modalities": ["signal"], "content_weights": [1.0]}, train, taste_features(60)
    )
    col = model.score(np.arange(60))[:, 12]
    fans = np.arange(60) % GROUPS == 0
    assert col[fans].mean() > col[~fans].mean() + 0.05


def test_validation_keeps_the_signal_and_switches_off_noise():
    train, valid = sparse_groups(seed=1)
    model = _fit("content-als", {}, train, taste_features(60), valid=valid, validate=VALIDATOR)
    weights = dict(zip(model.modalities_, model.content_weights_, strict=True))
    assert weights["signal"] > 0 and weights["noise"] == 0


def test_bad_settings_say_what_to_pass():
    train, _ = sparse_groups()
    with pytest.raises(ConfigError, match="one non-negative value per modality"):
        _fit("content-als", {"content_weights": [1.0]}, train, taste_features(60))
    with pytest.raises(ConfigError, match="one non-negative value per modality"):
        _fit("content-als", {"content_weights": [1.0, -1.0]}, train, taste_features(60))
    with pytest.raises(ConfigError, match="neighbors must be a positive integer"):
        _fit("content-als", {"neighbors": 0}, train, taste_features(60))
    with pytest.raises(ConfigError, match="needs item features"):
        _fit("content-als", {}, train)
