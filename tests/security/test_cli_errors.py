"""Item 8 (CLI side: one-line errors and exit 2 instead of tracebacks) and item 11 (`fusionrec demo --serve`)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import pytest
from attack_helpers import cli_env, free_port, run_cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "als", "--seed", "-1"], "--seed: -1 is out of range"),
        (["--model", "als", "--seed", "2**40"], "is not an integer"),
        (["--model", "als", "--param", "factors=abc"], "parameter factors: 'abc' is not a valid int"),
        (["--model", "als", "--param", "factors=true"], "factors"),
        (["--model", "bpr-torch", "--param", "valid_metric=recal@20"], "bad metric 'recal@20'"),
        (["--model", "late-fusion", "--param", "valid_metric=ndcg@0"], "bad metric 'ndcg@0'"),
        (["--model", "als", "--param", "factor=8"], "has no parameter(s) ['factor']"),
    ],
)
def test_bad_options_are_one_line_errors_with_exit_2(dataset_dir, tmp_path, args, message):
    # `--seed -1` used to end in a numpy traceback; `--param factors=abc` reached the model as a string
    res = run_cli("fit", "--data", dataset_dir, *args, "--out", tmp_path / "m", "--quiet")
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "m").exists()


def test_param_values_are_converted_to_the_parameters_type(dataset_dir, tmp_path):
    res = run_cli(
        "fit", "--data", dataset_dir, "--model", "als", "--param", "factors=6", "--param", "reg=1",
        "--param", "epochs=2", "--out", tmp_path / "m", "--quiet", "--seed", "3",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    params = json.loads((tmp_path / "m" / "model.json").read_text())["params"]
    assert params["factors"] == 6 and isinstance(params["factors"], int)
    assert params["reg"] == 1 and params["epochs"] == 2


def test_bad_extractor_param_is_a_one_line_error(dataset_dir, tmp_path):
    res = run_cli(
        "features", "--data", dataset_dir, "--image", "color", "--text", "tfidf", "--param", "max_side=big",
        "--features-only", "--no-cache", "--out", tmp_path / "f", "--quiet",
    )  # fmt: skip
    assert res.returncode == 2 and "max_side: 'big' is not a valid int" in res.stderr, res.stderr


@pytest.mark.slow
def test_demo_serve_starts_the_server_on_the_demo_artifact(tmp_path):
    # `fusionrec demo --serve` used to crash with ImportError: serve_artifact
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fusionrec.cli", "demo", "--serve", "--models", "most-popular", "--port", str(port),
         "--out", str(tmp_path / "demo"), "--quiet"],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "demo server did not start"
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/users/1/recommendations?k=3", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert r.status_code == 200 and len(r.json()["items"]) == 3
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "best model: most-popular" in out and f"http://127.0.0.1:{port}/docs" in out


def test_demo_rejects_unknown_models():
    res = run_cli("demo", "--models", "nope", "--quiet")
    assert res.returncode == 2 and "choose from most-popular" in res.stderr
