"""Helpers for the attack suite: the real CLI in a subprocess, `fusionrec serve` in its own process on a
loopback port, PNG files of any declared size, and a small data set with posters."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import numpy as np

SRC = str(Path(__file__).resolve().parents[2] / "src")
N_USERS, N_ITEMS = 30, 24
WRITE_KEY = "write-key-0123456789abcdef"
READ_KEY = "read-key-0123456789abcdef"


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSIONREC_API")}
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [extra.pop("PYTHONPATH", None)])])
    env.update(extra)
    return env


def run_cli(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """``fusionrec ARGS`` in a fresh interpreter (the real entry point), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "fusionrec.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(**env),
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`fusionrec serve ARTIFACT ...` on 127.0.0.1:<free port>, stopped (by its own pid) on exit."""

    def __init__(self, artifact: Path, *args: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "fusionrec.cli", "serve", str(artifact), "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*cmd, "--quiet", *args],
            env=cli_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def __enter__(self) -> ServerProcess:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.proc.stdout.read()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("server did not start")

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, timeout=60, headers=headers)


def png_bytes(width: int, height: int, colour: int = 0) -> bytes:
    """A greyscale PNG of ``width × height``, compressed row by row (a 12000² bomb stays ~140 KB here too)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    comp = zlib.compressobj(9)
    row = b"\x00" + bytes([colour]) * width
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def write_dataset(root: Path) -> Path:
    """interactions.csv + items.csv (title, text, poster path) + posters/{id}.png: small and real."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    (root / "posters").mkdir(exist_ok=True)
    rows = ["user_id,item_id,rating"]
    for u in range(N_USERS):
        group = u % 2
        for i in rng.choice(np.arange(group, N_ITEMS, 2), size=8, replace=False):
            rows.append(f"u{u},i{i},5")
    (root / "interactions.csv").write_text("\n".join(rows) + "\n")
    items = ["item_id,title,text,image"]
    words = ["space opera", "romantic comedy"]
    for i in range(N_ITEMS):
        (root / "posters" / f"i{i}.png").write_bytes(png_bytes(32, 48, colour=40 + 200 * (i % 2)))
        items.append(f"i{i},Movie {i},{words[i % 2]} number {i},posters/i{i}.png")
    (root / "items.csv").write_text("\n".join(items) + "\n")
    return root
