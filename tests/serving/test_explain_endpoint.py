"""A model that explains itself (VBPR): explanations through the API, and its own cold-item placement."""

from __future__ import annotations

import pytest
from serving_helpers import copy_artifact

from fusionrec.artifacts import load_artifact


def test_explanations_split_the_score_and_new_items_use_the_models_own_cold_path(
    movies_vbpr_template, tmp_path, client_for
):
    path = copy_artifact(movies_vbpr_template, tmp_path)
    c = client_for(path)
    user = load_artifact(path).user_ids.raw(0)
    body = c.get(f"/users/{user}/recommendations", params={"k": 5, "explain": "true"}).json()
    for r in body["items"]:
        exp = r["explanation"]
        assert exp["kind"] != "score-only" and {"collaborative", "image", "text"} <= set(exp["parts"])
        assert sum(exp["parts"].values()) == pytest.approx(r["score"], rel=1e-3, abs=1e-4)

    r = c.post(
        "/items",
        data={
            "id": "new-1",
            "title": "Adventure comedy",
            "text": "Adventure comedy. genres: Adventure, Animation, Children, Comedy",
        },
    )
    assert r.status_code == 201
    art = load_artifact(path)
    assert "cold/weights" not in art.extra_arrays  # VBPR placed the item itself: no ridge map was fitted
    assert art.extra_arrays["serving/added_vectors"].shape == (1, art.model.item_factors_.shape[1])
    params = {"k": 1000, "explain": "true"}
    everything = c.get(f"/users/{user}/recommendations", params=params).json()["items"]
    new = [r for r in everything if r["item_id"] == "new-1"]
    assert new and new[0]["explanation"]["kind"] == "score-only"  # not the model's own item: no parts
