"""Concurrent reads while items are added and users forgotten: no 5xx, no lost change, consistent state."""

from __future__ import annotations

import threading

import httpx
from serving_helpers import copy_artifact

from fusionrec.artifacts import load_artifact


def test_reads_during_changes(movies_template, tmp_path, live):
    path = copy_artifact(movies_template, tmp_path)
    art = load_artifact(path)
    srv = live(path)
    doomed = [art.user_ids.raw(i) for i in range(6)]
    readers = [art.user_ids.raw(i) for i in range(100, 140)]
    statuses: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def read(worker: int) -> None:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            for j in range(40):
                user = readers[(worker * 7 + j) % len(readers)]
                for r in (
                    c.get(f"/users/{user}/recommendations", params={"k": 10}),
                    c.get(f"/users/{doomed[j % len(doomed)]}/recommendations"),
                    c.post("/recommendations", json={"items": ["1", "2"], "k": 5}),
                    c.get("/items/1/similar", params={"modality": "text"}),
                ):
                    with lock:
                        statuses.append(r.status_code)
                        if r.status_code not in (200, 404):
                            errors.append(r.text)

    def change(worker: int) -> None:
        with httpx.Client(base_url=srv.url, timeout=120) as c:
            for j in range(3):
                r = c.post(
                    "/items",
                    data={
                        "id": f"new-{worker}-{j}",
                        "title": f"Adventure comedy {j}",
                        "text": "Adventure comedy. genres: Animation, Children",
                    },
                )
                with lock:
                    statuses.append(r.status_code)
                    if r.status_code != 201:
                        errors.append(r.text)
                r = c.delete(f"/users/{doomed[worker * 3 + j]}")
                with lock:
                    statuses.append(r.status_code)
                    if r.status_code != 200:
                        errors.append(r.text)

    threads = [threading.Thread(target=read, args=(w,)) for w in range(6)]
    threads += [threading.Thread(target=change, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[:3]
    assert len(statuses) == 6 * 40 * 4 + 2 * 3 * 2
    with srv.client() as c:
        health = c.get("/healthz").json()
        assert health == {"status": "ok", "users": len(art.user_ids) - 6, "items": len(art.item_ids) + 6}
        assert c.get("/version").json()["revision"] == 12
    back = load_artifact(path)  # every change reached the disk, none overwrote another
    assert len(back.user_ids) == len(art.user_ids) - 6 and not set(doomed) & set(back.user_ids)
    assert {f"new-{w}-{j}" for w in range(2) for j in range(3)} <= set(back.item_ids)
    assert back.extra_arrays["serving/added_vectors"].shape[0] == 6
