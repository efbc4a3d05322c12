"""Item 12: the OpenAPI document and the behaviour agree (and schemathesis, `--checks all`, finds nothing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from attack_helpers import WRITE_KEY, ServerProcess, cli_env, png_bytes
from fastapi.testclient import TestClient

from fusionrec.serving.app import create_app

CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture
def client(artifact):
    with TestClient(create_app(artifact, index="exact")) as c:
        yield c


@pytest.fixture
def slow_client(artifact):
    with TestClient(create_app(artifact, index="exact", fast_path=False)) as c:
        yield c


@pytest.mark.parametrize("value", ["0", "1", "yes", "on", "True "])
def test_only_true_and_false_are_booleans(client, slow_client, value):
    # `?exclude_seen=0` used to be accepted although the document says boolean
    for c in (client, slow_client):
        r = c.get(
            "/users/u1/recommendations", params={"exclude_seen": value.strip() if value != "True " else "1"}
        )
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "exclude_seen"]
    for c in (client, slow_client):
        assert c.get("/users/u1/recommendations", params={"explain": "false"}).status_code == 200


def test_json_bodies_take_json_types(client):
    assert client.post("/recommendations", json={"items": ["i1"], "k": 3.0}).status_code == 200  # an integer
    for body in (
        {"items": ["i1"], "k": "3"},
        {"items": ["i1"], "k": True},
        {"items": ["i1"], "exclude_seen": 0},
    ):
        r = client.post("/recommendations", json=body)
        assert r.status_code == 422 and isinstance(r.json()["detail"], list)


def _declared(spec, path, method):
    return set(spec["paths"][path][method]["responses"])


def test_every_status_the_server_sends_is_declared_with_its_body(client):
    spec = client.get("/openapi.json").json()
    for path, ops in spec["paths"].items():
        for method in ops:
            assert {"400", "422", "503"} <= _declared(spec, path, method), (path, method)
    assert {"413", "415", "409"} <= _declared(spec, "/items", "post")
    assert "413" in _declared(spec, "/recommendations", "post")
    assert "409" in _declared(spec, "/items/{item_id}/similar", "get")
    assert "409" in _declared(spec, "/users/{user_id}", "delete")
    errors = spec["components"]["schemas"]
    assert errors["ValidationErrorBody"]["properties"]["detail"]["anyOf"][1] == {"type": "string"}
    # a value the data rejects is a 422 with one message, which the declared body allows
    r = client.post("/recommendations", json={"items": ["nope"]})
    assert r.status_code == 404 and isinstance(r.json()["detail"], str)
    r = client.get("/items/i1/similar", params={"modality": "audio"})
    assert r.status_code == 422 and isinstance(r.json()["detail"], str)
    enum = next(
        p for p in spec["paths"]["/items/{item_id}/similar"]["get"]["parameters"] if p["name"] == "modality"
    )
    assert enum["schema"]["enum"] == ["all", "image", "text"]
    # an unparsable Content-Length is the declared 400
    r = client.post(
        "/recommendations", content=b"{}", headers={"content-length": "x", "content-type": "application/json"}
    )
    assert r.status_code == 400


def test_image_sent_without_a_filename_is_read_as_bytes(client):
    r = client.post("/items", data={"id": "plain", "image": png_bytes(16, 16, 30).decode("latin-1")})
    assert r.status_code == 201, r.text


@pytest.mark.slow
def test_schemathesis_finds_no_failure_against_the_live_server(artifact, key_file, tmp_path):
    """Every check schemathesis has (`--checks all`), a fixed seed and a bounded number of examples, against
    `fusionrec serve` with API keys on a loopback port."""
    with ServerProcess(artifact, "--api-key-file", str(key_file)) as srv:
        cmd = [
            sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
            f"{srv.url}/openapi.json", "--checks", "all", "--max-examples", "10", "--seed", "3",
            "--workers", "1", "--generation-database", "none", "--no-color",
            "-H", f"Authorization: Bearer {WRITE_KEY}",
        ]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=cli_env(), cwd=tmp_path)
        assert srv.proc.poll() is None  # the server is still up
        assert httpx.get(f"{srv.url}/healthz").status_code == 200
    summary = res.stdout[-3000:]
    assert res.returncode == 0, summary
    assert " passed" in summary and "failure" not in summary.split("SUMMARY")[-1], summary
