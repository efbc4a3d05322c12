"""The page's helper endpoints: users, history by time, item cards, images (safely), a new item's audience."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from serving_helpers import copy_artifact

from fusionrec.artifacts import TRAIN_TIMES, load_artifact


def _expected_history(ds, raw_user: str, train_items: set[str]) -> dict[str, int]:
    """item → latest timestamp of ``raw_user``'s interactions, from the data set's own rows."""
    u = ds.user_ids.index(raw_user)
    rows = np.flatnonzero(ds.users == u)
    out: dict[str, int] = {}
    for r in rows:
        item = str(ds.item_ids.raw(int(ds.items[r])))
        if item in train_items:
            out[item] = max(out.get(item, 0), int(ds.timestamps[r]))
    return out


def test_history_is_the_training_row_most_recent_first(movies_template, movies_dataset, client_for, tmp_path):
    c = client_for(copy_artifact(movies_template, tmp_path))
    art = load_artifact(movies_template)
    u = art.user_ids.index("1")
    train_items = {str(art.item_ids.raw(int(i))) for i in art.train[u].indices}
    body = c.get("/web/users/1/history", params={"limit": 500}).json()
    assert body["ordered_by_time"] is True and body["total"] == len(train_items)
    got = {r["item_id"]: r["time"] for r in body["items"]}
    assert got == _expected_history(movies_dataset, "1", train_items)
    times = [r["time"] for r in body["items"]]
    assert times == sorted(times, reverse=True)
    assert all(r["image"] == f"/web/items/{r['item_id']}/image" and r["title"] for r in body["items"][:5])
    assert c.get("/web/users/nobody/history").status_code == 404
    assert c.get("/web/users/1/history", params={"limit": 0}).status_code == 422


def test_forgetting_a_user_keeps_everyone_elses_history_aligned(movies_template, client_for, tmp_path):
    # interaction times are stored per training nonzero: dropping a user's row must drop its times too
    c = client_for(copy_artifact(movies_template, tmp_path))
    before = c.get("/web/users/610/history", params={"limit": 500}).json()
    assert c.delete("/users/1").status_code == 200
    after = c.get("/web/users/610/history", params={"limit": 500}).json()
    assert after == before
    art = load_artifact(tmp_path / "art")
    assert len(art.extra_arrays[TRAIN_TIMES]) == art.train.nnz


def test_user_search_and_item_cards(movies_template, client_for, tmp_path):
    c = client_for(copy_artifact(movies_template, tmp_path))
    all_users = c.get("/web/users", params={"limit": 500}).json()
    assert all_users["total"] == 321 and len(all_users["users"]) == 321
    hits = c.get("/web/users", params={"q": "60", "limit": 3}).json()
    assert len(hits["users"]) == 3 and all("60" in u["user_id"] for u in hits["users"])
    assert hits["total"] == sum("60" in u["user_id"] for u in all_users["users"])
    assert all(u["interactions"] > 0 for u in hits["users"])
    cards = c.get("/web/items", params=[("ids", "1"), ("ids", "3114")]).json()["items"]
    assert [x["item_id"] for x in cards] == ["1", "3114"]
    assert cards[0]["title"] == "Toy Story (1995)" and cards[0]["added"] is False
    assert c.get("/web/items", params={"ids": "no-such-item"}).status_code == 404
    page = c.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/web/static/app.js" in page.text and "http" not in page.text.replace("http-equiv", "")
    assert c.get("/web/static/app.js").headers["content-type"].startswith("text/javascript")
    assert c.get("/web/static/../app.py").status_code == 404
    assert c.get("/web/static/index.py").status_code == 404


def test_images_are_only_regular_files_inside_the_image_folder(
    movies_template, client_for, tmp_path, shared_data
):
    # model.json names the image folder and extra.json the file per item: a tampered entry must not leak files
    art_dir = copy_artifact(movies_template, tmp_path)
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(shared_data / "posters" / "1.jpg", folder / "ok.jpg")
    (tmp_path / "secret.jpg").write_bytes(b"not for you")
    os.symlink(tmp_path / "secret.jpg", folder / "link.jpg")
    (folder / "dir.jpg").mkdir()
    with open(folder / "huge.jpg", "wb") as fh:
        fh.truncate(11 * 1024 * 1024)
    (folder / "notes.txt").write_text("text")
    meta = json.loads((art_dir / "model.json").read_text())
    meta["image_root"] = str(folder)
    (art_dir / "model.json").write_text(json.dumps(meta))
    extra = json.loads((art_dir / "extra.json").read_text())
    ids = json.loads((art_dir / "idmaps.json").read_text())["items"]
    names = [
        "ok.jpg",
        "../secret.jpg",
        "link.jpg",
        "dir.jpg",
        "huge.jpg",
        "notes.txt",
        "/etc/hostname",
        str(tmp_path / "secret.jpg"),
        None,
    ]
    extra["item_images"] = names + [None] * (len(ids) - len(names))
    (art_dir / "extra.json").write_text(json.dumps(extra))
    c = client_for(art_dir)
    ok = c.get(f"/web/items/{ids[0]}/image")
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/jpeg"
    assert ok.content == (shared_data / "posters" / "1.jpg").read_bytes()
    for item in ids[1 : len(names)]:
        r = c.get(f"/web/items/{item}/image")
        assert r.status_code == 404, (item, r.text)
        assert b"not for you" not in r.content
    cards = c.get("/web/items", params=[("ids", i) for i in ids[: len(names)]]).json()["items"]
    assert [x["image"] is not None for x in cards] == [True] + [False] * (len(names) - 1)
    assert c.get("/web/items/no-such-item/image").status_code == 404


@pytest.mark.parametrize(
    ("template", "k"),
    [("movies_template", 10), ("movies_pop_template", 100)],  # inner product; borrowed neighbour scores
)
def test_audience_of_a_new_item_is_who_now_gets_it(template, k, request, client_for, tmp_path):
    c = client_for(copy_artifact(request.getfixturevalue(template), tmp_path), index="exact")
    made = c.post("/items", data={"id": "new-1", "title": "Toy Story (1995)", "text": "Toy Story. Animation"})
    assert made.status_code == 201, made.text
    reach = c.get("/web/items/new-1/audience", params={"k": k, "limit": 500}).json()
    assert reach["reached"] == len(reach["users"]) > 0
    ranks = {u["user_id"]: u["rank"] for u in reach["users"]}
    for user in [u["user_id"] for u in c.get("/web/users", params={"limit": 40}).json()["users"]]:
        recs = [
            r["item_id"] for r in c.get(f"/users/{user}/recommendations", params={"k": k}).json()["items"]
        ]
        assert ("new-1" in recs) == (user in ranks), user
        if user in ranks:
            assert recs.index("new-1") + 1 == ranks[user]


def test_an_artifact_without_images_gives_text_cards(als_template, client_for, tmp_path):
    # the bundled demo data has no posters: every card says so, and the page shows a text placeholder
    c = client_for(copy_artifact(als_template, tmp_path))
    hist = c.get("/web/users/1/history", params={"limit": 5}).json()
    assert hist["items"] and all(r["image"] is None and r["title"] for r in hist["items"])
    assert c.get(f"/web/items/{hist['items'][0]['item_id']}/image").status_code == 404
    js = c.get("/web/static/app.js").text
    assert "if (!card.image) return placeholder(card);" in js
