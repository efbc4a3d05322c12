"""New items at start and in lists: extractors warmed before the first POST /items, an exploration share of
each list for new items, and the facade's add_item serving exactly what the server serves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from serving_helpers import NEW_MOVIE, copy_artifact, new_movie_content

import fusionrec
from fusionrec.artifacts import load_artifact
from fusionrec.errors import ConfigError, ConflictError, DataError
from fusionrec.features import extract as extract_module


def _post_movie(c, content: dict, item_id: str = NEW_MOVIE):
    return c.post(
        "/items",
        data={"id": item_id, "title": content["title"], "text": content["text"]},
        files={"image": ("poster.jpg", content["image"], "image/jpeg")},
    )


def test_extractors_and_the_content_map_are_ready_before_the_first_item(movies_template, tmp_path):
    from fusionrec.serving.app import create_app

    path = copy_artifact(movies_template, tmp_path)
    configs = load_artifact(path).info["feature_extractors"]
    extract_module._ITEM_EXTRACTORS.clear()
    cold = create_app(path, warm_extractors=False)
    assert not extract_module._ITEM_EXTRACTORS and cold.state.serving.current().mapper is None
    app = create_app(path)
    built = {key[-len(m) :] for key in extract_module._ITEM_EXTRACTORS for m in configs if key.endswith(m)}
    assert built == set(configs) == {"image", "text"}
    assert app.state.serving.current().mapper is not None  # fitted at start, not on the first request
    assert "cold_mapper" not in load_artifact(path).info  # starting rewrote nothing on disk


def test_new_item_share_reserves_slots_in_every_list(movies_template, tmp_path, shared_data, live):
    content = new_movie_content(shared_data)
    plain_path = copy_artifact(movies_template, tmp_path, "plain")
    share_path = copy_artifact(movies_template, tmp_path, "share")
    users = list(load_artifact(plain_path).user_ids)[:60]
    with live(plain_path).client() as plain, live(share_path, new_item_share=0.2).client() as share:
        assert share.get("/version").json()["new_item_share"] == 0.2
        for c in (plain, share):
            assert _post_movie(c, content).status_code == 201
        reached_plain = reached_share = 0
        for u in users:
            a = [
                x["item_id"]
                for x in plain.get(f"/users/{u}/recommendations", params={"k": 10}).json()["items"]
            ]
            b = [
                x["item_id"]
                for x in share.get(f"/users/{u}/recommendations", params={"k": 10}).json()["items"]
            ]
            reached_plain += NEW_MOVIE in a
            reached_share += NEW_MOVIE in b
            assert NEW_MOVIE in b and len(b) == 10  # 2 of 10 slots held, one new item: it is in every list
            # the warm items keep their order; only the lowest ones gave way
            warm = [i for i in b if i != NEW_MOVIE]
            assert warm == [i for i in a if i != NEW_MOVIE][: len(warm)]
            # k=4: floor(0.2 * 4) = 0 slots, so the list is the plain one
            short = share.get(f"/users/{u}/recommendations", params={"k": 4}).json()["items"]
            assert [x["item_id"] for x in short] == a[:4]
        assert reached_share == len(users) > reached_plain
        # a folded-in user gets the slot too
        folded = share.post("/recommendations", json={"items": ["1", "3114"], "k": 10}).json()["items"]
        assert NEW_MOVIE in [x["item_id"] for x in folded]


def test_a_share_outside_zero_one_is_refused(movies_template, tmp_path, capsys):
    from fusionrec.cli import main
    from fusionrec.serving.app import create_app

    path = str(copy_artifact(movies_template, tmp_path, "cli"))
    assert main(["serve", path, "--new-item-share", "2", "--no-warm-up", "--port", "1"]) == 2
    assert "the new-item share must be in [0, 1]; got 2.0" in capsys.readouterr().err

    with pytest.raises(ConfigError, match="new-item share"):
        create_app(copy_artifact(movies_template, tmp_path), new_item_share=1.5, warm_extractors=False)
    with pytest.raises(ConfigError, match="new-item share"):
        fusionrec.Recommender("als", new_item_share=-0.1)


@pytest.fixture(scope="module")
def genre_frames():
    demo = fusionrec.__path__[0] + "/demo_data"
    ratings = pd.read_csv(f"{demo}/ratings.csv")
    movies = pd.read_csv(f"{demo}/movies.csv")
    genres = movies["genres"].str.get_dummies("|").to_numpy(np.float32)
    return ratings, movies, genres


def test_facade_add_item_places_a_copy_near_its_original_and_serves_like_the_server(
    genre_frames, tmp_path, live
):
    ratings, movies, genres = genre_frames
    rec = fusionrec.Recommender("als", factors=32, reg=0.01, new_item_share=0.1).fit(
        ratings, user_col="userId", item_col="movieId", items=movies, item_id_col="movieId",
        features={"genre": genres},
    )  # fmt: skip
    toy = int(np.flatnonzero(movies["movieId"].to_numpy() == 1)[0])
    assert rec.add_item("toy-copy", features={"genre": genres[toy]}, title="Toy Story (copy)") is rec
    assert rec.item_ids[-1] == "toy-copy"
    # one new item and one reserved slot in a top 10: it is in every user's list
    for u in ["1", "2", "3", "400"]:
        assert "toy-copy" in rec.recommend(u, k=10)["item"].tolist()
    # its vector is the calibrated content map's; the map is stored with the item
    art = rec.artifact_
    assert art.info["cold_mapper"]["expansion"] > 1.0 and "serving/added_vectors" in art.extra_arrays
    # what the facade saved is what the server serves, list for list
    path = rec.save(tmp_path / "rec")
    with live(path, new_item_share=0.1, warm_extractors=False).client() as c:
        for u in ["1", "2", "3", "400"]:
            got = c.get(f"/users/{u}/recommendations", params={"k": 10}).json()["items"]
            want = rec.recommend(u, k=10)
            assert [x["item_id"] for x in got] == want["item"].tolist()
            np.testing.assert_allclose([x["score"] for x in got], want["score"], rtol=1e-5, atol=1e-6)
    # wrong input: an existing id, an unknown modality, a row of the wrong width, no content at all
    with pytest.raises(ConflictError):
        rec.add_item("1", features={"genre": genres[toy]})
    with pytest.raises(DataError, match="no modality"):
        rec.add_item("x", features={"poster": genres[toy]})
    with pytest.raises(DataError, match="finite numbers"):
        rec.add_item("x", features={"genre": genres[toy][:3]})
    with pytest.raises(DataError, match="content"):
        rec.add_item("x")
    # without the share the copy still ranks far higher for Toy Story's fans than for everyone else
    plain = fusionrec.Recommender.load(path)
    fans = set(ratings.loc[ratings["movieId"] == 1, "userId"].astype(str))
    ranks = {True: [], False: []}
    for u in plain.user_ids[:200]:
        items = plain.recommend(u, k=3000)["item"].tolist()
        ranks[u in fans].append(items.index("toy-copy") if "toy-copy" in items else 3000)
    assert np.median(ranks[True]) * 2 < np.median(ranks[False])


def test_models_without_item_vectors_fit_their_score_calibration_at_start(
    movies_pop_template, tmp_path, shared_data, live
):
    path = copy_artifact(movies_pop_template, tmp_path)
    srv = live(path)
    ready = srv.server.config.app.state.serving.current().neighbour_expansion
    assert ready is not None and 1.0 <= ready <= 10.0
    with srv.client() as c:
        assert _post_movie(c, new_movie_content(shared_data)).status_code == 201
    # the stretch fitted at start is the one stored with the item (and read by every later start)
    assert load_artifact(path).info["cold_calibration"] == {"neighbour_expansion": ready}
