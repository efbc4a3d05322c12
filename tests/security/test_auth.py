"""Item 2: API keys on a live `fusionrec serve` (write key for changes, optional read key for reads)."""

from __future__ import annotations

import pytest
from attack_helpers import READ_KEY, WRITE_KEY, ServerProcess, run_cli

from fusionrec.errors import ConfigError
from fusionrec.serving.auth import ApiKeys

NEW_ITEM = {"id": "new-1", "title": "A new space opera", "text": "space opera number 99"}


def test_mutating_routes_need_the_write_key_reads_need_the_read_key(artifact, key_file):
    # every route, DELETE /users/{id} and POST /items included, used to be open to anyone
    with ServerProcess(artifact, "--api-key-file", str(key_file)) as srv:
        with srv.client() as anon, srv.client(READ_KEY) as reader, srv.client("x" * 30) as wrong:
            for c in (anon, wrong):
                r = c.delete("/users/u0")
                assert r.status_code == 401 and "API key" in r.json()["detail"]
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert c.post("/items", data=NEW_ITEM).status_code == 401
                # a read key is configured, so reads need a key too
                assert c.get("/users/u1/recommendations").status_code == 401
                assert c.post("/recommendations", json={"items": ["i1"]}).status_code == 401
            assert anon.get("/healthz").status_code == 200  # open for load balancers
            assert reader.get("/users/u1/recommendations").status_code == 200
            assert reader.get("/openapi.json").status_code == 200
            r = reader.delete("/users/u0")
            assert r.status_code == 403 and "write key" in r.json()["detail"]
            assert reader.post("/items", data=NEW_ITEM).status_code == 403
        with srv.client(WRITE_KEY) as writer:
            assert writer.get("/users/u1/recommendations").status_code == 200  # a write key also reads
            r = writer.post("/items", data=NEW_ITEM)
            assert r.status_code == 201, r.text
            r = writer.delete("/users/u0")
            assert r.status_code == 200 and r.json()["forgotten"] is True
            assert writer.get("/users/u0/recommendations").status_code == 404
        srv.__exit__()
        out = srv.proc.stdout.read()
        assert WRITE_KEY not in out and READ_KEY not in out  # keys are never logged


@pytest.mark.slow
def test_reads_stay_open_without_a_read_key(artifact):
    with ServerProcess(artifact, FUSIONREC_API_KEY=WRITE_KEY) as srv:
        with srv.client() as anon:
            assert anon.get("/users/u1/recommendations").status_code == 200
            assert anon.delete("/users/u0").status_code == 401
        with srv.client(WRITE_KEY) as writer:
            assert writer.delete("/users/u0").status_code == 200
        spec = srv.client().get("/openapi.json").json()
        assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
        assert spec["paths"]["/users/{user_id}"]["delete"]["security"] == [{"apiKey": []}]
        assert "security" not in spec["paths"]["/items/{item_id}"]["get"]


def test_non_loopback_bind_without_a_key_is_refused(artifact):
    res = run_cli("serve", artifact, "--host", "0.0.0.0", "--port", "1")
    assert res.returncode == 2
    assert "--api-key-file" in res.stderr and "--insecure" in res.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("write:short\n", "at least 16"),
        ("# nothing\n\n", "holds no key"),
        ("write:has space inside it\n", "spaces"),
    ],
)
def test_bad_key_files_are_refused(tmp_path, text, message):
    p = tmp_path / "k"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message):
        ApiKeys.from_sources(p, env={})


def test_key_roles_compare_every_key():
    keys = ApiKeys()
    keys.add(WRITE_KEY, "write", "t")
    keys.add(READ_KEY, "read", "t")
    assert keys.role(WRITE_KEY) == "write" and keys.role(READ_KEY) == "read"
    assert keys.role(WRITE_KEY[:-1]) is None and keys.role(None) is None and keys.role("") is None
