"""Helpers for the serving tests: a real uvicorn server in a thread, artifact copies, test content."""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from fusionrec.data.loaders import LoadOptions, load_dataset

# The new movie the item-upload tests add: held out of the catalogue before fitting.
NEW_MOVIE = "78499"  # Toy Story 3 (2010)
RELATED = ("1", "3114")  # Toy Story (1995), Toy Story 2 (1999)
# cheap, real extractors for test artifacts (the CNN / sentence model take minutes on the whole catalogue)
TEST_EXTRACTORS = {"image": "color", "text": "tfidf"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``uvicorn.Server`` running an app on 127.0.0.1:<free port> in a background thread."""

    def __init__(self, app, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kw)


def serve(path: Path, **kw) -> LiveServer:
    """A (not yet started) live server for ``create_app(path, **kw)``; use it as a context manager."""
    from fusionrec.serving.app import create_app

    return LiveServer(create_app(path, **kw))


def copy_artifact(template: Path, tmp_path: Path, name: str = "art") -> Path:
    out = tmp_path / name
    shutil.copytree(template, out)
    return out


def new_movie_content(shared_data: Path) -> dict:
    """Title, text (as the loader builds it) and poster bytes of the held-out movie, read from ../shared."""
    full = load_dataset(shared_data, options=LoadOptions(kcore=40))
    i = full.item_ids.index(NEW_MOVIE)
    poster = Path(full.content.image_paths[i])
    return {"title": full.content.titles[i], "text": full.content.texts[i], "image": poster.read_bytes()}


def png_bytes(size: int = 64, seed: int = 0) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
