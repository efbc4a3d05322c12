"""Fixtures for the feature tests: a private cache root, generated images of every awkward kind."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep ONNX exports and cached rows of the tests out of ~/.cache (one export per session)."""
    root = tmp_path_factory.mktemp("fusionrec-cache")
    old = os.environ.get("FUSIONREC_CACHE")
    os.environ["FUSIONREC_CACHE"] = str(root)
    yield root
    if old is None:
        os.environ.pop("FUSIONREC_CACHE", None)
    else:
        os.environ["FUSIONREC_CACHE"] = old


def textured(seed: int, size: tuple[int, int] = (160, 120)) -> np.ndarray:
    """An RGB uint8 image with blocks and edges (keypoints for BoVW, colours for histograms)."""
    rng = np.random.RandomState(seed)
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = rng.randint(0, 256, 3)
    for _ in range(25):
        x0, y0 = rng.randint(0, w - 10), rng.randint(0, h - 10)
        x1, y1 = x0 + rng.randint(5, 60), y0 + rng.randint(5, 60)
        img[y0:y1, x0:x1] = rng.randint(0, 256, 3)
    return img


def write_images(folder: Path, n: int, seed: int = 0) -> list[str]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"img{i}.jpg"
        Image.fromarray(textured(seed + i)).save(p, quality=90)
        paths.append(str(p))
    return paths


@pytest.fixture
def awkward_images(tmp_path: Path) -> dict[str, str]:
    """Every kind of image file a catalogue throws at us; keys say what each is."""
    from PIL import Image

    d = tmp_path / "awkward"
    d.mkdir()
    out: dict[str, str] = {}
    rgb = Image.fromarray(textured(1))
    rgb.save(d / "good.jpg", quality=90)
    out["good"] = str(d / "good.jpg")
    data = (d / "good.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    out["truncated"] = str(d / "truncated.jpg")
    (d / "text.jpg").write_text("this is not an image\n")
    out["text_named_jpg"] = str(d / "text.jpg")
    (d / "empty.jpg").write_bytes(b"")
    out["empty"] = str(d / "empty.jpg")
    out["missing"] = str(d / "does-not-exist.jpg")
    Image.new("RGB", (1, 1), (200, 10, 10)).save(d / "one.png")
    out["one_pixel"] = str(d / "one.png")
    rgb.convert("L").save(d / "grey.jpg")
    out["greyscale"] = str(d / "grey.jpg")
    rgb.convert("CMYK").save(d / "cmyk.jpg")
    out["cmyk"] = str(d / "cmyk.jpg")
    rgba = rgb.convert("RGBA")
    alpha = np.zeros((rgb.height, rgb.width), np.uint8)
    alpha[:, : rgb.width // 2] = 255
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(d / "alpha.png")
    out["png_alpha"] = str(d / "alpha.png")
    rgb.convert("P", palette=Image.ADAPTIVE, colors=16).save(d / "palette.png")
    out["palette"] = str(d / "palette.png")
    Image.fromarray((np.arange(120 * 160).reshape(120, 160) % 65535).astype(np.uint16)).save(d / "16bit.png")
    out["sixteen_bit"] = str(d / "16bit.png")
    return out


BROKEN = ("truncated", "text_named_jpg", "empty", "missing")
