"""The Python facade: DataFrames in, raw ids out, on the bundled MovieLens data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fusionrec
from fusionrec.errors import ConfigError, NotFittedError, UnknownItemError, UnknownUserError

DEMO = fusionrec.__path__[0] + "/demo_data"


@pytest.fixture(scope="module")
def frames():
    ratings = pd.read_csv(f"{DEMO}/ratings.csv")
    movies = pd.read_csv(f"{DEMO}/movies.csv")
    rng = np.random.RandomState(0)
    test_mask = rng.rand(len(ratings)) < 0.1
    return ratings[~test_mask], ratings[test_mask], movies


@pytest.fixture(scope="module")
def als(frames):
    train, _, movies = frames
    return fusionrec.Recommender("als", factors=32, reg=0.01, alpha=4).fit(
        train, user_col="userId", item_col="movieId", items=movies, item_id_col="movieId"
    )


def test_readme_example_runs():
    # the README's ten lines, as a user pastes them
    import pandas as pd

    import fusionrec

    ratings = pd.read_csv(f"{DEMO}/ratings.csv")
    movies = pd.read_csv(f"{DEMO}/movies.csv")
    rec = fusionrec.Recommender("als", factors=64).fit(
        ratings, user_col="userId", item_col="movieId", items=movies, item_id_col="movieId"
    )
    top = rec.recommend(["1", "2"], k=5)
    assert list(top.columns) == ["user", "rank", "item", "score"] and len(top) == 10
    assert set(top["item"]) <= set(movies["movieId"].astype(str))
    assert len(rec.similar_items("1", k=3)) == 3


def test_recommendations_are_raw_ids_and_exclude_what_the_user_saw(als, frames):
    train, _, _ = frames
    top = als.recommend("1", k=20)
    seen = set(train.loc[train["userId"] == 1, "movieId"].astype(str))
    assert len(top) == 20 and not (set(top["item"]) & seen)
    assert top["score"].is_monotonic_decreasing and top["rank"].tolist() == list(range(1, 21))
    with_seen = als.recommend("1", k=20, exclude_seen=False)
    assert set(with_seen["item"]) & seen


def test_unknown_ids_raise_instead_of_returning_someone_elses_list(als):
    # regression: an unknown raw id used to map to index -1 and silently return the last user's list
    with pytest.raises(UnknownUserError):
        als.recommend(["1", "no-such-user"])
    with pytest.raises(UnknownItemError):
        als.similar_items("no-such-item")
    with pytest.raises(UnknownItemError):
        als.recommend_for_items(["1", "no-such-item"])
    with pytest.raises(NotFittedError):
        fusionrec.Recommender("als").recommend("1")
    with pytest.raises(ConfigError, match="factors"):
        fusionrec.Recommender("als", factorz=3)


def test_fold_in_counts_repeats_once(als):
    once = als.recommend_for_items(["1", "2", "3"], k=10)
    twice = als.recommend_for_items(["1", "2", "2", "3", "1"], k=10)
    assert once.equals(twice) and not ({"1", "2", "3"} & set(once["item"]))


def test_save_load_round_trip_gives_identical_lists(als, tmp_path):
    als.save(tmp_path / "rec")
    back = fusionrec.Recommender.load(tmp_path / "rec")
    assert back.recommend(["1", "5", "9"], k=10).equals(als.recommend(["1", "5", "9"], k=10))
    assert back.similar_items("1").equals(als.similar_items("1"))


def test_evaluate_on_held_out_rows_beats_popularity(als, frames):
    train, test, movies = frames
    got = als.evaluate(test, user_col="userId", item_col="movieId")
    pop = fusionrec.Recommender("most-popular").fit(train, user_col="userId", item_col="movieId", items=movies,
                                                   item_id_col="movieId")  # fmt: skip
    base = pop.evaluate(test, user_col="userId", item_col="movieId")
    assert got["users"] > 500 and got["recall@20"] > base["recall@20"] * 1.2


def test_forget_user_removes_only_that_user(frames):
    train, _, movies = frames
    rec = fusionrec.Recommender("als", factors=16).fit(train, user_col="userId", item_col="movieId")
    other = rec.recommend("2", k=10)
    rec.forget_user("1")
    assert "1" not in rec.user_ids
    with pytest.raises(UnknownUserError):
        rec.recommend("1")
    assert rec.recommend("2", k=10).equals(other)


def test_features_from_arrays_feed_a_multimodal_model(frames):
    train, _, movies = frames
    items = movies.iloc[:2000]
    train = train[train["movieId"].isin(items["movieId"])]
    rng = np.random.RandomState(0)
    genres = items["genres"].str.get_dummies("|").to_numpy(np.float32)  # content that carries signal
    noise = rng.rand(len(items), 8).astype(np.float32)
    rec = fusionrec.Recommender("vbpr", factors=16, epochs=3).fit(
        train,
        user_col="userId",
        item_col="movieId",
        items=items,
        item_id_col="movieId",
        features={"genre": genres, "noise": noise},
    )
    assert rec.artifact_.features.dims == {"genre": genres.shape[1], "noise": 8}
    assert len(rec.recommend("1", k=5)) == 5
    with pytest.raises(Exception, match="one row per row of items"):
        fusionrec.Recommender("vbpr").fit(train, user_col="userId", item_col="movieId", items=items,
                                          item_id_col="movieId", features={"x": noise[:10]})  # fmt: skip
