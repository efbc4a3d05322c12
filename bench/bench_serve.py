"""Load test of the HTTP server on loopback: requests/s, p50/p99 latency of GET /users/{id}/recommendations;
and the seconds to start and to answer the first POST /items (extractors warmed at start, or not).

The server (``fusionrec serve``, one worker) runs in its own process on an ALS artifact of the demo data; the
load comes from this process: N concurrent keep-alive connections (asyncio, raw HTTP/1.1, so the client costs
little CPU next to the server), each sending its next request as soon as the previous answer arrived, for a
fixed time and at most a fixed number of requests. Users are drawn at random; every non-200 answer or
transport failure counts as an error. The machine's load average is reported with the numbers: on a shared
2-core machine the other processes' CPU use moves latencies more than anything in the server does.

Also timed: one ``POST /interactions`` batch of 100 events (half of them new users) on the live server, and
``Recommender.add_interactions`` of the same batch size in-process (medians of several batches).

    python bench/bench_serve.py            # 50 clients × 20 s, HNSW and exact retrieval
    python bench/run.py serve --quick      # 50 clients × 5 s, HNSW only
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLIENTS = 50
MAX_REQUESTS = 200_000  # a bound on the whole run, whatever the speed
REQUEST_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_artifact(out: Path) -> tuple[Path, list[str]]:
    """ALS (64 factors) on the demo data (5-core), as `fusionrec fit --data demo --kcore 5 --model als`."""
    from fusionrec.artifacts import save_artifact
    from fusionrec.data.loaders import LoadOptions, load_dataset
    from fusionrec.data.splits import split_dataset
    from fusionrec.pipeline import build_model, fit_artifact

    ds = load_dataset("demo", options=LoadOptions(kcore=5))
    split = split_dataset(ds, "ratio", seed=2026)
    art, _ = fit_artifact(ds, split, build_model("als", {"factors": 64}, seed=2026, show_progress=False))
    save_artifact(art, out)
    return out, art.user_ids.to_list()


def start_server(
    artifact: Path, port: int, index: str, *, args: tuple[str, ...] = (), env: dict | None = None
) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    cmd = [
        sys.executable,
        "-m",
        "fusionrec.cli",
        "serve",
        str(artifact),
        "--port",
        str(port),
        "--index",
        index,
        "--quiet",
        *args,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 300  # a first start on a fresh cache exports the extractors to ONNX
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start within 300 s")


async def _client(
    port: int, paths: list[str], deadline: float, budget: list[int], lat: list[float], errors: list[str]
) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        errors.append(f"connect: {e}")
        return
    i = 0
    try:
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            path = paths[i % len(paths)]
            i += 1
            t0 = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            try:
                status, body = await asyncio.wait_for(_read_response(reader), REQUEST_TIMEOUT)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as e:
                errors.append(f"{type(e).__name__}")
                return
            lat.append(time.perf_counter() - t0)
            if status != 200 or not body.startswith(b"{"):
                errors.append(f"status {status}")
    finally:
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status = int((await reader.readline()).split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def _load(port: int, users: list[str], clients: int, seconds: float, seed: int):
    rng = np.random.default_rng(seed)
    lat: list[float] = []
    errors: list[str] = []
    budget = [MAX_REQUESTS]
    t0 = time.perf_counter()
    deadline = t0 + seconds
    tasks = []
    for _ in range(clients):
        picks = rng.choice(len(users), size=2000)
        paths = [f"/users/{users[u]}/recommendations?k=10" for u in picks]
        tasks.append(_client(port, paths, deadline, budget, lat, errors))
    await asyncio.gather(*tasks)
    return np.asarray(lat), errors, time.perf_counter() - t0


def stop_server(proc: subprocess.Popen) -> None:
    """Terminate a server started by :func:`start_server`, killing it if it does not exit in 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def load_test(
    artifact: Path,
    users: list[str],
    *,
    index: str = "auto",
    clients: int = CLIENTS,
    seconds: float = 20.0,
    warmup: float = 2.0,
) -> dict:
    port = _free_port()
    proc = start_server(artifact, port, index)
    try:
        asyncio.run(_load(port, users, clients, warmup, seed=1))  # first requests pay one-off costs
        lat, errors, wall = asyncio.run(_load(port, users, clients, seconds, seed=2))
        rss_mb = _rss_mb(proc.pid)
    finally:
        stop_server(proc)
    lat_ms = lat * 1000
    return {
        "requests": int(len(lat)),
        "rps": len(lat) / wall,
        "p50_ms": float(np.percentile(lat_ms, 50)),
        "p99_ms": float(np.percentile(lat_ms, 99)),
        "max_ms": float(lat_ms.max()),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "load_avg": os.getloadavg()[0],
        "rss_mb": rss_mb,
    }


def _event_batches(artifact: Path, batches: int, size: int, seed: int) -> list[list[dict]]:
    """``batches`` lists of ``size`` events: every other one a new user's, the rest known users' (random items)."""
    ids = json.loads((artifact / "idmaps.json").read_text())
    rng = np.random.default_rng(seed)
    out = []
    for b in range(batches):
        out.append(
            [
                {
                    "user": f"bench-{seed}-{b}-{n % 10}" if n % 2 else str(rng.choice(ids["users"])),
                    "item": str(rng.choice(ids["items"])),
                }
                for n in range(size)
            ]
        )
    return out


def interactions_cost(artifact: Path, batches: int = 7, size: int = 100) -> dict:
    """Median seconds of one POST /interactions batch (live server, saved to disk each time) and of
    ``Recommender.add_interactions`` with as many events, each on a private copy of ``artifact``."""
    import urllib.request

    import pandas as pd

    import fusionrec

    with tempfile.TemporaryDirectory() as tmp:
        served = Path(tmp) / "served"
        shutil.copytree(artifact, served)
        port = _free_port()
        proc = start_server(served, port, "hnsw")
        http = []
        try:
            for batch in _event_batches(artifact, batches + 1, size, seed=1):
                body = json.dumps({"interactions": batch}).encode()
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/interactions",
                    data=body,
                    headers={"Content-Type": "application/json"},
                )
                t0 = time.perf_counter()
                with urllib.request.urlopen(req, timeout=60) as r:
                    r.read()
                http.append(time.perf_counter() - t0)
        finally:
            stop_server(proc)
        rec = fusionrec.Recommender.load(artifact)
        facade = []
        for batch in _event_batches(artifact, batches + 1, size, seed=2):
            frame = pd.DataFrame(batch)
            t0 = time.perf_counter()
            rec.add_interactions(frame, user_col="user", item_col="item")
            facade.append(time.perf_counter() - t0)
    return {  # the first batch of each pays one-off costs (imports, connection)
        "http_s": float(np.median(http[1:])),
        "facade_s": float(np.median(facade[1:])),
        "load_avg": os.getloadavg()[0],
    }


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def in_process_cost(artifact: Path, users: list[str], index: str, n: int = 3000) -> float:
    """Microseconds per request through the ASGI app itself (no sockets, no client): the server's own cost."""
    from fusionrec.serving.app import create_app, single_threaded_numerics

    single_threaded_numerics()
    app = create_app(artifact, index=index, warm_extractors=False)

    async def call(path: str) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"k=10",
            "root_path": "",
            "headers": [(b"host", b"bench")],
            "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 1),
        }

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start" and message["status"] != 200:
                raise RuntimeError(f"status {message['status']}")

        await app(scope, receive, send)

    async def loop(count: int) -> float:
        t0 = time.perf_counter()
        for i in range(count):
            await call(f"/users/{users[i % len(users)]}/recommendations")
        return (time.perf_counter() - t0) / count

    asyncio.run(loop(200))
    return asyncio.run(loop(n)) * 1e6


# a new item for POST /items: Toy Story's poster and text (the shared data's poster, else a plain image)
POSTER = Path(__file__).resolve().parents[1].parent / "shared/data/movielens-small-mm/posters/1.jpg"
NEW_ITEM_TEXT = "Toy Story (1995). genres: Adventure, Animation, Children, Comedy, Fantasy. tags: pixar, fun"


def _poster() -> tuple[str, bytes, str]:
    if POSTER.is_file():
        return "poster.jpg", POSTER.read_bytes(), "image/jpeg"
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (300, 450), (200, 120, 40)).save(buf, format="PNG")
    return "poster.png", buf.getvalue(), "image/png"


def first_item(artifact: Path, tmp: Path, quick: bool = False) -> list[dict]:
    """Seconds to start the server and to answer its first (and second) POST /items, with the extractors
    warmed at start and without (``--no-warm-up``), on a fresh extractor cache (the ONNX exports happen)
    and on the cache a previous start left (they are loaded); ``quick``: the two warmed starts only."""
    import shutil

    import httpx

    name, image, mime = _poster()
    # (label, serve arguments, $FUSIONREC_CACHE): a fresh cache makes the extractors export to ONNX
    cases = [
        ("not warmed (--no-warm-up), fresh cache", ("--no-warm-up",), "cache-a"),
        ("warmed at start, fresh cache", (), "cache-b"),
        ("warmed at start, cached exports", (), "cache-b"),
        ("not warmed (--no-warm-up), cached exports", ("--no-warm-up",), "cache-b"),
    ]
    if quick:
        cases = cases[1:3]
    rows = []
    for i, (label, args, cache) in enumerate(cases):
        copy = tmp / f"first-item-{i}"
        shutil.copytree(artifact, copy)
        port = _free_port()
        t0 = time.perf_counter()
        proc = start_server(copy, port, "auto", args=args, env={"FUSIONREC_CACHE": str(tmp / cache)})
        startup = time.perf_counter() - t0
        load_at_start = os.getloadavg()[0]
        posts = []
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as c:
                for j in range(2):
                    t1 = time.perf_counter()
                    r = c.post(
                        "/items",
                        data={"id": f"toy-copy-{j}", "title": "Toy Story (copy)", "text": NEW_ITEM_TEXT},
                        files={"image": (name, image, mime)},
                    )
                    posts.append(time.perf_counter() - t1)
                    if r.status_code != 201:
                        raise RuntimeError(f"POST /items answered {r.status_code}: {r.text[:300]}")
        finally:
            stop_server(proc)
        load = os.getloadavg()[0]
        rows += [
            {
                "bench": "serve",
                "case": f"start until listening [{label}]",
                "value": startup,
                "unit": "s",
                "note": f"load avg {load_at_start:.1f}",
            },
            {
                "bench": "serve",
                "case": f"first POST /items after start [{label}]",
                "value": posts[0],
                "unit": "s",
                "note": f"poster + text, image cnn + text sentence; target < 3 s; load avg {load:.1f}",
            },
            {
                "bench": "serve",
                "case": f"second POST /items [{label}]",
                "value": posts[1],
                "unit": "s",
                "note": f"load avg {load:.1f}",
            },
        ]
    return rows


def run(quick: bool = False) -> list[dict]:
    seconds = 5.0 if quick else 20.0
    indexes = ["hnsw"] if quick else ["hnsw", "exact"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        artifact, users = build_artifact(Path(tmp) / "als-demo")
        rows += first_item(artifact, Path(tmp), quick=quick)
        for index in indexes:
            r = load_test(artifact, users, index=index, seconds=seconds)
            note = (
                f"{CLIENTS} clients × {seconds:g}s, {r['requests']} requests, {r['errors']} errors, "
                f"load avg {r['load_avg']:.1f}, server RSS {r['rss_mb']:.0f} MB"
            )
            if r["errors"]:
                note += f" ({', '.join(r['error_kinds'])})"
            case = f"GET /users/{{id}}/recommendations k=10 [{index}]"
            cost = in_process_cost(artifact, users, index, n=1000 if quick else 3000)
            rows += [
                {
                    "bench": "serve",
                    "case": f"{case} server cost",
                    "value": cost,
                    "unit": "us/req",
                    "note": f"through the ASGI app in-process, no sockets; load avg {os.getloadavg()[0]:.1f}",
                },
                {
                    "bench": "serve",
                    "case": f"{case} throughput",
                    "value": r["rps"],
                    "unit": "req/s",
                    "note": note,
                },
                {"bench": "serve", "case": f"{case} p50", "value": r["p50_ms"], "unit": "ms"},
                {
                    "bench": "serve",
                    "case": f"{case} p99",
                    "value": r["p99_ms"],
                    "unit": "ms",
                    "note": "target < 50 ms with 0 errors",
                },
                {"bench": "serve", "case": f"{case} errors", "value": float(r["errors"]), "unit": "count"},
            ]
        live = interactions_cost(artifact, batches=3 if quick else 7)
        note = f"median of {3 if quick else 7} batches of 100 events, half new users; load avg {live['load_avg']:.1f}"
        rows += [
            {"bench": "serve", "case": "POST /interactions (100 events)", "value": live["http_s"], "unit": "s",
             "note": note + "; saved to disk each time"},
            {"bench": "serve", "case": "Recommender.add_interactions (100 events)", "value": live["facade_s"],
             "unit": "s", "note": note},
        ]  # fmt: skip
    return rows


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
