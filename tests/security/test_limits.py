"""Items 4 and 5: decompression bombs, special files and symlinks, for the server, `fusionrec features` and
the artifact loader."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
from attack_helpers import ServerProcess, png_bytes, run_cli

from fusionrec.artifacts import load_artifact
from fusionrec.errors import DataError
from fusionrec.features.images import ImageDecodeError, ImageTooLargeError, open_rgb

BOMB = png_bytes(12000, 12000)  # ~140 KB on disk, 144 Mpx (430 MB as RGB) once decoded


def test_bomb_png_upload_is_refused_before_decoding(artifact):
    # a 140 KB 12000×12000 PNG used to be decoded by POST /items: +700 MB of server memory per request
    assert len(BOMB) < 200_000
    with ServerProcess(artifact) as srv, srv.client() as c:
        ok = c.post("/items", data={"id": "warm", "text": "space opera"})  # load the extractors first
        assert ok.status_code == 201, ok.text
        before = srv.rss_mb()
        for n in range(3):
            r = c.post("/items", data={"id": f"bomb{n}"}, files={"image": ("b.png", BOMB, "image/png")})
            assert r.status_code == 413, r.text
            assert "12000×12000 pixels" in r.json()["detail"]
        growth = srv.rss_mb() - before
        print(f"server RSS growth after 3 bomb uploads: {growth:.1f} MB")
        assert growth < 100
        assert c.get("/items/bomb0").status_code == 404


@pytest.mark.slow
def test_pixel_limit_is_configurable(artifact):
    small = png_bytes(300, 300, colour=90)
    with ServerProcess(artifact, "--max-image-mpx", "0.05") as srv, srv.client() as c:
        r = c.post("/items", data={"id": "big"}, files={"image": ("s.png", small, "image/png")})
        assert r.status_code == 413 and "0.05 million" in r.json()["detail"]
        tiny = png_bytes(100, 100, colour=90)
        r = c.post("/items", data={"id": "ok", "text": "x"}, files={"image": ("t.png", tiny, "image/png")})
        assert r.status_code == 201, r.text


def test_open_rgb_refuses_bombs_and_special_files(tmp_path):
    with pytest.raises(ImageTooLargeError, match="over the limit"):
        open_rgb(BOMB)
    link = tmp_path / "zero.png"
    os.symlink("/dev/zero", link)
    with pytest.raises(ImageDecodeError, match="/dev/zero, a character device, not a regular file"):
        open_rgb(link)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.png").write_bytes(png_bytes(8, 8))
    (tmp_path / "posters").mkdir()
    os.symlink(tmp_path / "elsewhere" / "x.png", tmp_path / "posters" / "out.png")
    with pytest.raises(ImageDecodeError, match="outside"):
        open_rgb(tmp_path / "posters" / "out.png")
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageDecodeError, match="named pipe"):
        open_rgb(fifo)
    inner = tmp_path / "sub"
    inner.mkdir()
    (inner / "real.png").write_bytes(png_bytes(8, 8))
    os.symlink("sub/real.png", tmp_path / "ok.png")  # a link that stays inside its folder is followed
    assert open_rgb(tmp_path / "ok.png").size == (8, 8)


def test_features_run_finishes_with_dev_zero_fifo_bomb_and_outside_links(dataset_dir, tmp_path):
    # a poster linked to /dev/zero used to hang `fusionrec features` forever (the cache key read to EOF)
    data = tmp_path / "data"
    shutil.copytree(dataset_dir, data)
    posters = data / "posters"
    (posters / "i2.png").write_bytes(BOMB)
    for name, make in (
        ("i3.png", lambda p: os.symlink("/dev/zero", p)),
        ("i4.png", lambda p: os.symlink(str(dataset_dir / "posters" / "i4.png"), p)),
        ("i5.png", os.mkfifo),
    ):
        (posters / name).unlink()
        make(posters / name)
    t0 = time.perf_counter()
    res = run_cli(
        "features", "--data", data, "--image", "color", "--text", "tfidf", "--features-only",
        "--no-cache", "--out", tmp_path / "f", "--json", "--quiet", timeout=90,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    print(f"features run with /dev/zero, FIFO, bomb and outside-link posters: {seconds:.1f}s")
    assert res.returncode == 0, res.stderr
    failures = {f["index"]: f["reason"] for f in json.loads(res.stdout)["reports"]["image"]["failures"]}
    assert "pixels is over the limit" in failures[2]
    assert "/dev/zero, a character device, not a regular file" in failures[3] and "outside" in failures[4]
    assert "named pipe" in failures[5]
    assert len(failures) == 4


@pytest.mark.parametrize("name", ["model.json", "idmaps.json", "train.npz", "arrays.safetensors"])
def test_artifact_files_linked_to_dev_zero_or_fifos_are_refused(artifact, name):
    # model.json linked to /dev/zero used to be read forever
    (artifact / name).unlink()
    os.symlink("/dev/zero", artifact / name)
    with pytest.raises(DataError, match="outside|not a regular file"):
        load_artifact(artifact)
    (artifact / name).unlink()
    os.mkfifo(artifact / name)
    t0 = time.perf_counter()
    res = run_cli("recommend", artifact, "--user", "u1", timeout=60)
    assert res.returncode == 2 and "named pipe" in res.stderr, res.stderr
    assert time.perf_counter() - t0 < 30
