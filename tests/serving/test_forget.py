"""DELETE /users/{id}: the user is gone from the served model, the artifact on disk and the other workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from serving_helpers import copy_artifact, free_port

from fusionrec.artifacts import Artifact, forget_user, load_artifact
from fusionrec.data.dataset import IdMap
from fusionrec.errors import ConfigError, UnknownUserError
from fusionrec.models.base import Recommender
from fusionrec.recommend import recommend_for_user
from fusionrec.serving import catalog
from fusionrec.serving.state import ServingState


def test_forget_removes_the_user_everywhere(als_template, tmp_path, client_for):
    path = copy_artifact(als_template, tmp_path)
    before = load_artifact(path)
    gone, other = before.user_ids.raw(10), before.user_ids.raw(11)
    c = client_for(path, index="exact")
    other_before = c.get(f"/users/{other}/recommendations").json()
    r = c.delete(f"/users/{gone}")
    assert r.status_code == 200 and r.json() == {
        "user_id": gone,
        "forgotten": True,
        "users": len(before.user_ids) - 1,
        "revision": 1,
    }
    r = c.get(f"/users/{gone}/recommendations")
    assert r.status_code == 404 and "POST /recommendations" in r.json()["detail"]
    assert c.delete(f"/users/{gone}").status_code == 404
    assert c.get("/healthz").json()["users"] == len(before.user_ids) - 1
    # everyone else is served exactly as before
    assert c.get(f"/users/{other}/recommendations").json() == other_before

    after = load_artifact(path)
    assert gone not in after.user_ids and other in after.user_ids
    assert gone not in json.loads((path / "idmaps.json").read_text())["users"]
    assert (
        after.train.shape[0] == before.train.shape[0] - 1
        and after.model.user_factors_.shape[0] == before.model.user_factors_.shape[0] - 1
    )
    keep = np.delete(np.arange(len(before.user_ids)), 10)
    np.testing.assert_array_equal(after.model.user_factors_, before.model.user_factors_[keep])
    assert (after.train != before.train[keep]).nnz == 0
    assert after.info["forgotten_users"] == 1 and after.info["revision"] == 1


def test_another_worker_on_the_same_artifact_sees_the_deletion(als_template, tmp_path):
    path = copy_artifact(als_template, tmp_path)
    a = ServingState(path, index="exact")
    b = ServingState(path, index="exact")  # as a second worker process would hold it
    user = load_artifact(path).user_ids.raw(3)
    recommend_for_user(b.current().view, user, k=5)
    catalog.forget_user(a, user)
    with pytest.raises(KeyError, match="not in the model"):
        recommend_for_user(b.current().view, user, k=5)


def test_forget_follows_the_user_array_conventions():
    class Packed(Recommender):
        """Keeps per-user rows and a CSR of user histories, as a kNN model would."""

        name = "most-popular"  # any registered name: only from_params/load_state are used

        def __init__(self) -> None:
            pass

    m = Packed()
    m.load_state(
        {
            "user_bias_": np.arange(4.0),
            "item_bias_": np.arange(4.0),
            "user_history_indptr_": np.array([0, 2, 3, 3, 5]),
            "user_history_indices_": np.array([0, 1, 2, 0, 3]),
        },
        {"n_users_": 4, "n_items_": 4},
    )
    train = np.zeros((4, 4), np.float32)
    art = Artifact(model=m, user_ids=IdMap(["a", "b", "c", "d"]), item_ids=IdMap(list("wxyz")), train=train)
    out = forget_user(art, "b").model
    np.testing.assert_array_equal(out.user_bias_, [0, 2, 3])
    np.testing.assert_array_equal(out.item_bias_, [0, 1, 2, 3])  # item-side state is kept
    np.testing.assert_array_equal(out.user_history_indptr_, [0, 2, 2, 4])
    np.testing.assert_array_equal(out.user_history_indices_, [0, 1, 0, 3])
    assert out.n_users_ == 3
    with pytest.raises(UnknownUserError, match="nothing to forget"):
        forget_user(art, "zz")
    # per-user CSR rows under another name: refused, never silently kept
    m2 = Packed()
    m2.load_state(
        {"history_indptr_": np.array([0, 2, 3, 3, 5]), "history_indices_": np.array([0, 1, 2, 0, 3])},
        {"n_users_": 4, "n_items_": 6},
    )
    with pytest.raises(ConfigError, match="history_indptr_"):
        forget_user(
            Artifact(
                model=m2,
                user_ids=art.user_ids,
                item_ids=IdMap(list("uvwxyz")),
                train=np.zeros((4, 6), np.float32),
            ),
            "b",
        )


def test_item_knn_user_history_is_removed(demo_dataset, tmp_path, client_for):
    from fusionrec.artifacts import save_artifact
    from fusionrec.data.splits import split_dataset
    from fusionrec.pipeline import build_model, fit_artifact

    split = split_dataset(demo_dataset, "ratio", seed=7)
    art, _ = fit_artifact(demo_dataset, split, build_model("itemknn", {}, show_progress=False))
    save_artifact(art, tmp_path / "knn")
    c = client_for(tmp_path / "knn")
    user = art.user_ids.raw(5)
    r = c.delete(f"/users/{user}")
    after = load_artifact(tmp_path / "knn")
    assert r.status_code == 200, r.text
    assert user not in after.user_ids
    history = {
        k: v
        for k, v in after.model.state_arrays().items()
        if "indptr" in k and len(v) in (len(art.user_ids), len(art.user_ids) + 1)
    }
    assert history and all(len(v) == len(after.user_ids) + 1 for v in history.values())
    assert c.get(f"/users/{user}/recommendations").status_code == 404


@pytest.mark.slow
def test_two_worker_processes_agree_after_a_deletion(als_template, tmp_path):
    path = copy_artifact(als_template, tmp_path)
    user = load_artifact(path).user_ids.raw(42)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fusionrec.cli",
            "serve",
            str(path),
            "--port",
            str(port),
            "--workers",
            "2",
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "fusionrec serve --workers 2 did not come up"
            time.sleep(0.3)
        # fresh connections spread over both workers
        recs = f"{url}/users/{user}/recommendations"
        statuses = {httpx.get(recs, timeout=30).status_code for _ in range(10)}
        assert statuses == {200}
        assert httpx.delete(f"{url}/users/{user}", timeout=60).status_code == 200
        statuses = [httpx.get(recs, timeout=60).status_code for _ in range(20)]
        assert set(statuses) == {404}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
