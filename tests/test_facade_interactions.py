"""Recommender.add_interactions on the bundled MovieLens data: new users, refreshed lists, persistence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fusionrec
from fusionrec.artifacts import LIVE_USER_VECTORS, LIVE_USERS, TRAIN_TIMES, load_artifact, save_artifact
from fusionrec.errors import DataError, UnknownItemError, UnknownUserError

DEMO = fusionrec.__path__[0] + "/demo_data"
COLS = {"user_col": "userId", "item_col": "movieId"}


@pytest.fixture(scope="module")
def ratings():
    return pd.read_csv(f"{DEMO}/ratings.csv")


def _fit(ratings, model="als", **params):
    return fusionrec.Recommender(model, **params).fit(ratings, time_col="timestamp", **COLS)


def _events(pairs, **extra):
    return pd.DataFrame({"userId": [u for u, _ in pairs], "movieId": [i for _, i in pairs], **extra})


def test_new_and_known_users(ratings):
    rec = _fit(ratings, factors=16)
    n_users = len(rec.user_ids)
    before = rec.recommend("1", k=10)["item"].tolist()
    out = rec.add_interactions(_events([("1", before[0]), ("new-a", "1"), ("new-a", "2")]), **COLS)
    assert out is rec and len(rec.user_ids) == n_users + 1 and rec.user_ids[-1] == "new-a"
    after = rec.recommend("1", k=10)["item"].tolist()
    assert before[0] not in after and after != before
    new = rec.recommend("new-a", k=10)
    assert len(new) == 10 and not {"1", "2"} & set(new["item"])
    # one fold-in: the same list as for an unknown user with that history
    assert new.drop(columns="user").equals(rec.recommend_for_items(["1", "2"], k=10))
    history = ratings.loc[ratings["userId"] == 1, "movieId"].astype(str).tolist() + [before[0]]
    assert rec.recommend("1", k=10).drop(columns="user").equals(rec.recommend_for_items(history, k=10))
    # the new events count as seen in evaluation too, and new users are evaluated like the others
    res = rec.evaluate(_events([("new-a", "3"), ("1", "50")]), **COLS)
    assert res["users"] == 2 and res["skipped"] == 0


def test_unknown_items_raise_and_change_nothing(ratings):
    rec = _fit(ratings, factors=16)
    art = rec.artifact_
    with pytest.raises(UnknownItemError, match="no-such-movie"):
        rec.add_interactions(_events([("new-b", "1"), ("new-b", "no-such-movie")]), **COLS)
    assert rec.artifact_ is art and "new-b" not in rec.user_ids
    with pytest.raises(UnknownUserError):
        rec.recommend("new-b")
    with pytest.raises(DataError, match="no column 'when'"):
        rec.add_interactions(_events([("1", "1")]), time_col="when", **COLS)
    with pytest.raises(DataError, match="cannot be used"):
        rec.add_interactions(_events([("a/b", "1")]), **COLS)
    with pytest.raises(DataError, match="empty"):
        rec.add_interactions(_events([("1", "1")]).assign(userId=[None]), **COLS)


def test_save_load_round_trip_after_add_interactions(ratings, tmp_path):
    rec = _fit(ratings, factors=16)
    when = ["2030-01-02T03:04:05Z", "2030-01-02T03:04:06Z", "2030-01-02T03:04:07Z"]
    rec.add_interactions(
        _events([("new-c", "1"), ("new-c", "32"), ("5", "1")], when=when), time_col="when", **COLS
    )
    rec.save(tmp_path / "rec")
    back = fusionrec.Recommender.load(tmp_path / "rec")
    users = ["new-c", "5", "9"]
    assert back.recommend(users, k=10).equals(rec.recommend(users, k=10))
    art = back.artifact_
    u = art.user_ids.index("new-c")
    row = slice(art.train.indptr[u], art.train.indptr[u + 1])
    assert sorted(art.extra_arrays[TRAIN_TIMES][row].tolist()) == [1893553445, 1893553446]
    np.testing.assert_array_equal(art.extra_arrays[LIVE_USERS], [art.user_ids.index("5"), u])
    # and the reloaded recommender takes further events
    back.add_interactions(_events([("new-c", "50")]), **COLS)
    assert "50" not in set(back.recommend("new-c", k=50)["item"])


@pytest.mark.parametrize("model", ["ease", "itemknn"])
def test_models_without_vectors_fold_the_whole_history_in(ratings, model):
    small = ratings[ratings["userId"] <= 200]
    rec = fusionrec.Recommender(model).fit(small, **COLS)
    before = rec.recommend("7", k=10)["item"].tolist()
    rec.add_interactions(_events([("7", before[0]), ("new-d", "1"), ("new-d", "260")]), **COLS)
    history = small.loc[small["userId"] == 7, "movieId"].astype(str).tolist() + [before[0]]
    assert rec.recommend("7", k=10).drop(columns="user").equals(rec.recommend_for_items(history, k=10))
    assert (
        rec.recommend("new-d", k=10).drop(columns="user").equals(rec.recommend_for_items(["1", "260"], k=10))
    )
    other = rec.recommend("8", k=10)
    rec.forget_user("new-d")
    rec.forget_user("7")
    assert rec.recommend("8", k=10).equals(other)
    assert rec.artifact_.extra_arrays[LIVE_USERS].tolist() == []


def test_an_artifact_whose_live_entries_do_not_fit_is_refused_naming_the_file(ratings, tmp_path):
    rec = _fit(ratings, factors=16)
    rec.add_interactions(_events([("new-e", "1"), ("3", "2")]), **COLS)
    art = rec.artifact_
    for name, extra in (
        ("no-live", {k: v for k, v in art.extra_arrays.items() if k != LIVE_USERS}),  # the new user unserved
        ("short", {**art.extra_arrays, LIVE_USERS: art.extra_arrays[LIVE_USERS][:1]}),
        ("vectors", {**art.extra_arrays, LIVE_USER_VECTORS: art.extra_arrays[LIVE_USER_VECTORS][:, :3]}),
    ):
        art.extra_arrays = extra
        save_artifact(art, tmp_path / name)
        with pytest.raises(DataError, match="refit|vectors"):
            fusionrec.Recommender.load(tmp_path / name)
    assert load_artifact(tmp_path / "vectors").extra_arrays[LIVE_USERS].tolist() == [
        art.user_ids.index("3"),
        art.user_ids.index("new-e"),
    ]


def test_interactions_with_an_item_added_by_content(ratings):
    # the two live writes meet: a new item, then a known user and a new one who take it
    movies = pd.read_csv(f"{DEMO}/movies.csv")
    genres = movies["genres"].str.get_dummies("|").to_numpy(np.float32)
    rec = fusionrec.Recommender("als", factors=16).fit(
        ratings, items=movies, item_id_col="movieId", features={"genre": genres}, **COLS
    )
    toy = int(np.flatnonzero(movies["movieId"].to_numpy() == 1)[0])
    rec.add_item("copy-of-1", features={"genre": genres[toy]})
    rec.add_interactions(_events([("1", "copy-of-1"), ("new-b", "copy-of-1"), ("new-b", "2")]), **COLS)
    for user in ("1", "new-b"):
        assert "copy-of-1" not in rec.recommend(user, k=50)["item"].tolist()
    assert len(rec.recommend("new-b", k=10)) == 10
