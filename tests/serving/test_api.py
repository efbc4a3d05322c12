"""Every read endpoint over a real server (uvicorn on loopback, httpx over the socket), bad input included."""

from __future__ import annotations

import numpy as np
import pytest
from serving_helpers import serve

from fusionrec.artifacts import load_artifact


@pytest.fixture(scope="module", params=[True, False], ids=["fast-path", "fastapi-route"])
def als_server(als_template, request):
    with serve(als_template, watch=False, fast_path=request.param) as srv, srv.client() as c:
        yield c, load_artifact(als_template)


def test_health_and_version(als_server):
    c, art = als_server
    health = c.get("/healthz").json()
    assert health == {"status": "ok", "users": len(art.user_ids), "items": len(art.item_ids)}
    v = c.get("/version").json()
    assert v["model"] == "als" and v["params"]["factors"] == 32
    assert v["data_fingerprint"] == art.info["data_fingerprint"] and v["package_version"]
    assert v["index"] == "hnsw" and v["revision"] == 0 and v["added_items"] == 0
    paths = c.get("/openapi.json").json()["paths"]
    assert {
        "/users/{user_id}/recommendations",
        "/recommendations",
        "/items",
        "/items/{item_id}/similar",
        "/users/{user_id}",
        "/healthz",
        "/version",
    } <= set(paths)
    assert [p["name"] for p in paths["/users/{user_id}/recommendations"]["get"]["parameters"]] == [
        "user_id",
        "k",
        "exclude_seen",
        "explain",
    ]


def test_user_recommendations_exclude_seen_and_are_sorted(als_server):
    c, art = als_server
    for u in (0, 17, 300):
        raw = art.user_ids.raw(u)
        body = c.get(f"/users/{raw}/recommendations", params={"k": 15}).json()
        ids = [r["item_id"] for r in body["items"]]
        scores = [r["score"] for r in body["items"]]
        assert body["user_id"] == raw and len(ids) == 15 == len(set(ids))
        assert scores == sorted(scores, reverse=True)
        seen = set(art.item_ids.raw(art.train[u].indices))
        assert not seen & set(ids)
        assert all(r["title"] for r in body["items"])
        with_seen = c.get(f"/users/{raw}/recommendations", params={"k": 15, "exclude_seen": "false"}).json()
        assert seen & {r["item_id"] for r in with_seen["items"]}  # ALS ranks some seen items on top


def test_exact_index_equals_the_model(als_template, client_for):
    c = client_for(als_template, index="exact", watch=False)
    art = load_artifact(als_template)
    for u in (3, 99):
        want, _ = art.model.recommend(u, 10, exclude=art.train)
        got = c.get(f"/users/{art.user_ids.raw(u)}/recommendations").json()
        assert got["source"] == "exact"
        assert [r["item_id"] for r in got["items"]] == list(art.item_ids.raw(want[0]))
    assert c.get("/version").json()["index"] == "exact"


def test_explain_falls_back_to_score_only_or_the_models_own(als_server):
    c, art = als_server
    body = c.get(f"/users/{art.user_ids.raw(5)}/recommendations", params={"k": 4, "explain": "true"}).json()
    for r in body["items"]:
        exp = r["explanation"]
        assert exp["score"] == pytest.approx(r["score"], abs=1e-5)
        assert exp["kind"] == "score-only" or "parts" in exp


def test_fold_in_recommends_near_the_users_own_list(als_server):
    c, art = als_server
    overlap = []
    for u in range(0, 600, 60):
        own = c.get(f"/users/{art.user_ids.raw(u)}/recommendations", params={"k": 10}).json()
        history = list(art.item_ids.raw(art.train[u].indices))
        folded = c.post("/recommendations", json={"items": history, "k": 10}).json()
        assert folded["source"].startswith("fold-in") and folded["user_id"] is None
        assert not set(history) & {r["item_id"] for r in folded["items"]}
        same = {r["item_id"] for r in own["items"]} & {r["item_id"] for r in folded["items"]}
        overlap.append(len(same) / 10)
    assert np.mean(overlap) > 0.4


def test_fold_in_accepts_integer_ids_and_an_empty_history(als_server):
    c, art = als_server
    ints = [int(x) for x in art.item_ids.raw_ids[:3]]
    body = c.post("/recommendations", json={"items": ints, "k": 5}).json()
    assert len(body["items"]) == 5 and not {str(i) for i in ints} & {r["item_id"] for r in body["items"]}
    empty = c.post("/recommendations", json={"items": [], "k": 3}).json()
    assert empty["source"].startswith("popularity")
    pop = np.asarray(art.train.sum(axis=0)).ravel()
    top = np.argsort(-pop, kind="stable")[:3]
    assert [r["item_id"] for r in empty["items"]] == list(art.item_ids.raw(top))


def test_similar_items_by_model_vectors(als_server):
    c, art = als_server
    body = c.get("/items/1/similar", params={"k": 7}).json()
    ids = [r["item_id"] for r in body["items"]]
    assert body["modality"] == "all" and len(ids) == 7 and "1" not in ids
    V = art.model.item_factors_
    V = V / np.linalg.norm(V, axis=1, keepdims=True)
    i = art.item_ids.index("1")
    sims = V @ V[i]
    sims[i] = -np.inf
    assert ids == list(art.item_ids.raw(np.argsort(-sims)[:7]))
    info = c.get("/items/1").json()
    assert info["title"].startswith("Toy Story") and info["added"] is False and info["interactions"] > 0


BAD = [
    # (method, url, kwargs, expected status, text the message must contain)
    ("get", "/users/no-such-user/recommendations", {}, 404, "POST /recommendations"),
    ("get", "/users/%20/recommendations", {}, 404, "not in the model"),
    ("get", "/users/" + "x" * 3000 + "/recommendations", {}, 404, "not in the model"),
    ("get", "/users/1/recommendations?k=0", {}, 422, "greater than or equal to 1"),
    ("get", "/users/1/recommendations?k=-3", {}, 422, ""),
    ("get", "/users/1/recommendations?k=abc", {}, 422, ""),
    ("get", "/users/1/recommendations?k=1.5", {}, 422, ""),
    ("get", "/users/1/recommendations?k=1000001", {}, 422, "less than or equal"),
    ("get", "/users/1/recommendations?exclude_seen=maybe", {}, 422, ""),
    ("get", "/users/1/recommendations?explain=2x", {}, 422, ""),
    ("post", "/recommendations", {"json": {"items": ["1", "no-such-item"], "k": 3}}, 404, "no-such-item"),
    ("post", "/recommendations", {"json": {"items": ["1"], "k": 0}}, 422, ""),
    ("post", "/recommendations", {"json": {"items": "1"}}, 422, ""),
    ("post", "/recommendations", {"json": {"items": [None]}}, 422, ""),
    ("post", "/recommendations", {"json": {"items": ["1"], "surprise": 1}}, 422, "surprise"),
    ("post", "/recommendations", {"json": {"items": ["1"] * 5001}}, 422, ""),
    (
        "post",
        "/recommendations",
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        422,
        "",
    ),
    (
        "post",
        "/recommendations",
        {"content": b"\xff\xfe", "headers": {"content-type": "application/json"}},
        422,
        "",
    ),
    ("post", "/recommendations", {}, 422, ""),
    ("get", "/items/no-such-item/similar", {}, 404, "POST /items"),
    ("get", "/items/no-such-item", {}, 404, "not in the catalogue"),
    ("get", "/items/1/similar?modality=image", {}, 422, "use one of"),
    ("get", "/items/1/similar?k=0", {}, 422, ""),
    ("get", "/items/1/similar?k=x", {}, 422, ""),
    ("post", "/items", {"data": {"id": "n1", "title": "A film"}}, 409, "no item features"),
    ("post", "/items", {"data": {"title": "no id"}}, 422, ""),
    ("delete", "/users/no-such-user", {}, 404, "not in the model"),
    ("put", "/users/1/recommendations", {}, 405, ""),
    ("get", "/nowhere", {}, 404, ""),
]


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status", "text"), BAD, ids=[f"{m} {u[:40]} -> {s}" for m, u, _, s, _ in BAD]
)
def test_bad_input_gets_a_clear_4xx_never_a_500(als_server, method, url, kwargs, status, text):
    c, _ = als_server
    r = c.request(method.upper(), url, **kwargs)
    assert r.status_code == status, r.text
    assert text in r.text
    assert "Traceback" not in r.text
    if status == 422 and url.startswith("/users/"):  # both routes answer in FastAPI's error shape
        (err,) = r.json()["detail"]
        assert err["loc"][0] == "query" and err["msg"]
