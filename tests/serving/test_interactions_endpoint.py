"""POST /interactions on a live server: new users, refreshed lists, persistence, concurrency, keys, bad bodies."""

from __future__ import annotations

import threading

import httpx
import numpy as np
from serving_helpers import copy_artifact, serve

from fusionrec.artifacts import LIVE_USERS, TRAIN_TIMES, load_artifact
from fusionrec.serving.auth import ApiKeys
from fusionrec.serving.schemas import MAX_INTERACTIONS

WRITE_KEY = "w" * 20 + "-interactions"
READ_KEY = "r" * 20 + "-interactions"


def _items(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [x["item_id"] for x in r.json()["items"]]


def test_a_new_user_is_created_and_gets_a_list_from_its_items(als_template, tmp_path, client_for):
    path = copy_artifact(als_template, tmp_path)
    c = client_for(path, index="exact")
    users = c.get("/healthz").json()["users"]
    assert c.get("/users/newcomer/recommendations").status_code == 404
    events = [{"user": "newcomer", "item": i, "timestamp": 1_700_000_000 + n} for n, i in enumerate("123")]
    r = c.post("/interactions", json={"interactions": events})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "events": 3,
        "new_interactions": 3,
        "users_created": 1,
        "users_updated": 0,
        "users": users + 1,
        "revision": 1,
    }
    got = _items(c.get("/users/newcomer/recommendations", params={"k": 20}))
    assert len(got) == 20 and not {"1", "2", "3"} & set(got)
    # the same fold-in as asking for an unknown user with those items
    assert got == _items(c.post("/recommendations", json={"items": ["1", "2", "3"], "k": 20}))
    assert c.get("/healthz").json()["users"] == users + 1


def test_a_known_users_list_changes_and_the_interacted_item_leaves_it(als_template, tmp_path, client_for):
    path = copy_artifact(als_template, tmp_path)
    user = load_artifact(path).user_ids.raw(7)
    c = client_for(path, index="exact")
    before = _items(c.get(f"/users/{user}/recommendations", params={"k": 10}))
    r = c.post("/interactions", json={"interactions": [{"user": user, "item": before[0]}]})
    assert r.status_code == 200, r.text
    assert (r.json()["users_created"], r.json()["users_updated"]) == (0, 1)
    after = _items(c.get(f"/users/{user}/recommendations", params={"k": 10}))
    assert before[0] not in after and after != before
    # the seen mask grew: with seen items shown, the item is back
    assert before[0] in _items(
        c.get(f"/users/{user}/recommendations", params={"k": 1000, "exclude_seen": "false"})
    )
    # a pair seen again is still one interaction
    r = c.post("/interactions", json={"interactions": [{"user": user, "item": before[0]}]})
    assert r.json()["new_interactions"] == 0 and r.json()["revision"] == 2


def test_a_model_without_vectors_folds_the_history_in(movies_pop_template, tmp_path, client_for):
    path = copy_artifact(movies_pop_template, tmp_path)
    art = load_artifact(path)
    user = art.user_ids.raw(3)
    c = client_for(path)
    before = _items(c.get(f"/users/{user}/recommendations", params={"k": 5}))
    r = c.post("/interactions", json={"interactions": [{"user": user, "item": before[0]}]})
    assert r.status_code == 200, r.text
    after = c.get(f"/users/{user}/recommendations", params={"k": 5, "explain": "true"})
    assert after.json()["source"].startswith("fold-in") and before[0] not in _items(after)
    assert after.json()["items"][0]["explanation"]["kind"] == "score-only"


def test_interactions_survive_a_restart(als_template, tmp_path):
    path = copy_artifact(als_template, tmp_path)
    known = load_artifact(path).user_ids.raw(0)
    events = [
        {"user": "fresh-1", "item": "1", "timestamp": 1_800_000_000},
        {"user": "fresh-1", "item": "50"},
        {"user": known, "item": "260", "timestamp": 1_800_000_001},
    ]
    with serve(path, index="exact") as srv, srv.client() as c:
        assert c.post("/interactions", json={"interactions": events}).status_code == 200
        lists = {u: _items(c.get(f"/users/{u}/recommendations")) for u in ("fresh-1", known)}
    with serve(path, index="exact") as srv, srv.client() as c:
        assert {u: _items(c.get(f"/users/{u}/recommendations")) for u in lists} == lists
        assert c.get("/version").json()["revision"] == 1
    art = load_artifact(path)
    u, k = art.user_ids.index("fresh-1"), art.user_ids.index(known)
    assert set(art.item_ids.raw(art.train[u].indices)) == {"1", "50"}
    assert art.user_ids.index("fresh-1") in art.extra_arrays[LIVE_USERS]
    times = art.extra_arrays[TRAIN_TIMES]
    assert len(times) == art.train.nnz
    row = slice(art.train.indptr[k], art.train.indptr[k + 1])
    assert times[row][art.train.indices[row] == art.item_ids.index("260")].tolist() == [1_800_000_001]


def test_reads_while_batches_are_applied(als_template, tmp_path, live):
    path = copy_artifact(als_template, tmp_path)
    art = load_artifact(path)
    srv = live(path)
    known = [art.user_ids.raw(i) for i in range(40)]
    items = art.item_ids.to_list()[:300]
    errors: list[str] = []
    sent: list[tuple[str, str]] = []
    lock = threading.Lock()

    def read(worker: int) -> None:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            for j in range(40):
                for r in (
                    c.get(f"/users/{known[(worker * 5 + j) % len(known)]}/recommendations"),
                    c.get(f"/users/live-{worker % 2}-{j % 5}/recommendations"),  # may not exist yet
                    c.post("/recommendations", json={"items": items[:3], "k": 5}),
                ):
                    if r.status_code not in (200, 404):
                        with lock:
                            errors.append(f"{r.status_code} {r.text}")

    def write(worker: int) -> None:
        rng = np.random.default_rng(worker)
        with httpx.Client(base_url=srv.url, timeout=120) as c:
            for j in range(5):
                batch = [
                    (
                        f"live-{worker}-{j}" if n % 2 else known[int(rng.integers(len(known)))],
                        items[int(rng.integers(len(items)))],
                    )
                    for n in range(20)
                ]
                r = c.post("/interactions", json={"interactions": [{"user": u, "item": i} for u, i in batch]})
                with lock:
                    sent.extend(batch)
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {r.text}")

    threads = [threading.Thread(target=read, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=write, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[:3]
    back = load_artifact(path)  # every batch reached the disk, none overwrote another
    assert len(back.user_ids) == len(art.user_ids) + 10
    for u, i in sent:
        row = back.train[back.user_ids.index(u)]
        assert back.item_ids.index(i) in row.indices, (u, i)
    with srv.client() as c:
        assert c.get("/version").json()["revision"] == 10
        for w in range(2):
            got = _items(c.get(f"/users/live-{w}-0/recommendations", params={"k": 50}))
            mine = {i for u, i in sent if u == f"live-{w}-0"}
            assert len(got) == 50 and not mine & set(got)


def test_interactions_need_the_write_key(als_template, tmp_path, live):
    path = copy_artifact(als_template, tmp_path)
    keys = ApiKeys()
    keys.add(WRITE_KEY, "write", "test")
    keys.add(READ_KEY, "read", "test")
    srv = live(path, api_keys=keys)
    body = {"interactions": [{"user": "keyed", "item": "1"}]}
    with srv.client() as anon, srv.client(headers={"Authorization": f"Bearer {READ_KEY}"}) as reader:
        r = anon.post("/interactions", json=body)
        assert r.status_code == 401 and "API key" in r.json()["detail"]
        r = reader.post("/interactions", json=body)
        assert r.status_code == 403 and "write key" in r.json()["detail"]
        assert reader.get("/users/keyed/recommendations").status_code == 404  # nothing happened
    with srv.client(headers={"Authorization": f"Bearer {WRITE_KEY}"}) as writer:
        assert writer.post("/interactions", json=body).status_code == 200
        assert writer.get("/users/keyed/recommendations").status_code == 200
        spec = writer.get("/openapi.json").json()
    op = spec["paths"]["/interactions"]["post"]
    assert op["security"] == [{"apiKey": []}] and {"401", "403", "404", "413", "422"} <= set(op["responses"])


def test_bad_batches_are_4xx_with_a_message_and_change_nothing(als_template, tmp_path, client_for):
    path = copy_artifact(als_template, tmp_path)
    c = client_for(path)
    users = c.get("/healthz").json()["users"]
    r = c.post(
        "/interactions", json={"interactions": [{"user": "x1", "item": "1"}, {"user": "x1", "item": "nope"}]}
    )
    assert r.status_code == 404 and "'nope'" in r.json()["detail"] and "POST /items" in r.json()["detail"]
    too_many = [{"user": "x2", "item": "1"}] * (MAX_INTERACTIONS + 1)
    for body in (
        {"interactions": []},
        {"interactions": too_many},
        {"interactions": [{"user": "a/b", "item": "1"}]},  # not addressable as a URL path segment
        {"interactions": [{"user": "   ", "item": "1"}]},
        {"interactions": [{"user": "x3", "item": "1", "timestamp": 1.5}]},
        {"interactions": [{"user": "x3", "item": "1", "rating": 5}]},
        {"interactions": [{"user": True, "item": "1"}]},
        {"interactions": [{"user": 10**16, "item": "1"}]},  # its decimal string would be a long id
        {"events": [{"user": "x3", "item": "1"}]},
    ):
        r = c.post("/interactions", json=body)
        assert r.status_code == 422 and r.json()["detail"], (
            body if len(str(body)) < 200 else "too many",
            r.text,
        )
    r = c.post("/interactions", content=b"{not json", headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500
    assert c.get("/healthz").json()["users"] == users and c.get("/version").json()["revision"] == 0
    # integer ids are ids too
    r = c.post("/interactions", json={"interactions": [{"user": 123456, "item": 1}]})
    assert r.status_code == 200 and r.json()["users_created"] == 1
    assert c.get("/users/123456/recommendations").status_code == 200


def test_a_created_user_can_be_forgotten(als_template, tmp_path, client_for):
    path = copy_artifact(als_template, tmp_path)
    c = client_for(path, index="exact")
    other = load_artifact(path).user_ids.raw(5)
    body = {"interactions": [{"user": "brief", "item": "1"}, {"user": other, "item": "2"}]}
    assert c.post("/interactions", json=body).status_code == 200
    other_list = _items(c.get(f"/users/{other}/recommendations"))
    assert c.delete("/users/brief").status_code == 200
    assert c.get("/users/brief/recommendations").status_code == 404
    assert _items(c.get(f"/users/{other}/recommendations")) == other_list  # still its live list
    back = load_artifact(path)
    assert "brief" not in back.user_ids and len(back.extra_arrays[LIVE_USERS]) == 1
