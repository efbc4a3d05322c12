"""content-ease: EASE whose Gram matrix adds a content kernel, one validation-fitted weight per modality."""

from __future__ import annotations

import numpy as np
import pytest
from _support import GROUPS, own_group_share, sparse_groups, taste_features

from fusionrec.errors import ConfigError
from fusionrec.evaluation import VALIDATOR
from fusionrec.models import create_model


def test_zero_content_weights_are_exactly_ease():
    train, _ = sparse_groups()
    ease = create_model("ease", {"reg": 10.0}).fit(train)
    plain = create_model("content-ease", {"reg": 10.0, "content_weights": [0.0, 0.0]}).fit(
        train, taste_features(60)
    )
    np.testing.assert_allclose(plain.score(np.arange(60)), ease.score(np.arange(60)), rtol=1e-5, atol=1e-6)


def test_content_relates_items_that_interactions_barely_do():
    train, _ = sparse_groups()
    feats = taste_features(60)
    ease = create_model("ease", {"reg": 10.0}).fit(train)
    with_content = create_model(
        "content-ease", {"reg": 10.0, "modalities": ["signal"], "content_weights": [1.0]}
    ).fit(train, feats)
    users = np.arange(60)
    # one train item per user: EASE sees no co-occurrence at all (0.14 here), content-ease ranks by group (0.85)
    assert own_group_share(with_content.score(users), train) > 0.7
    assert own_group_share(ease.score(users), train) < 0.3


def test_an_item_nobody_interacted_with_is_scored_by_its_content():
    train, _ = sparse_groups()
    train = train.tolil()
    train[:, 12] = 0  # item 12 (group 0) loses every interaction
    train = train.tocsr()
    train.eliminate_zeros()
    model = create_model(
        "content-ease", {"reg": 10.0, "modalities": ["signal"], "content_weights": [1.0]}
    ).fit(train, taste_features(60))
    col = model.score(np.arange(60))[:, 12]
    fans = np.arange(60) % GROUPS == 0
    assert col[fans].mean() > col[~fans].mean() + 0.01


def test_validation_keeps_the_signal_and_switches_off_noise():
    train, valid = sparse_groups(seed=1)
    model = create_model("content-ease", {"reg": 10.0}).fit(
        train, taste_features(60), valid=valid, validate=VALIDATOR
    )
    weights = dict(zip(model.modalities_, model.content_weights_, strict=True))
    assert weights["signal"] > 0 and weights["noise"] == 0


def test_fold_in_matches_a_known_users_scores():
    train, _ = sparse_groups()
    model = create_model("content-ease", {"reg": 10.0, "content_weights": [1.0, 0.3]}).fit(
        train, taste_features(60)
    )
    np.testing.assert_allclose(model.fold_in_user(train[5].indices), model.score(np.array([5]))[0], rtol=1e-5)


def test_bad_settings_say_what_to_pass():
    train, _ = sparse_groups()
    with pytest.raises(ConfigError, match="one non-negative value per modality"):
        create_model("content-ease", {"content_weights": [1.0]}).fit(train, taste_features(60))
    with pytest.raises(ConfigError, match="one non-negative value per modality"):
        create_model("content-ease", {"content_weights": [1.0, -1.0]}).fit(train, taste_features(60))
    with pytest.raises(ConfigError):
        create_model("content-ease").fit(train)
