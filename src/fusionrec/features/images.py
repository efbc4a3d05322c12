"""Robust image decoding shared by the image extractors.

Every mode PIL knows (greyscale, CMYK, palette, 16-bit, with or without alpha) becomes 8-bit RGB; transparent
pixels are composited on white (posters and product shots sit on light backgrounds). Anything that cannot be
decoded (truncated JPEG, a text file named ``.jpg``, a zero-byte file, a missing path) raises
:class:`ImageDecodeError` with the reason, which callers log and count as an absent item.

Images are untrusted: a path must be a regular file of at most ``FUSIONREC_MAX_IMAGE_MB`` (default 50 MB)
whose real location is inside the folder that names it (no link to ``/dev/zero`` or outside), and an image
declaring more than ``FUSIONREC_MAX_IMAGE_PIXELS`` pixels (default 40 million) is refused from its header,
before any pixel is decoded: a 140 KB PNG can declare 12000×12000 pixels (430 MB decoded).
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ImageSource = str | os.PathLike | bytes | bytearray | np.ndarray  # arrays: decoded (h, w, 3) uint8 RGB frames


DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_IMAGE_MB = 50.0
ENV_MAX_PIXELS = "FUSIONREC_MAX_IMAGE_PIXELS"
ENV_MAX_IMAGE_MB = "FUSIONREC_MAX_IMAGE_MB"


class ImageDecodeError(Exception):
    """The bytes at a path are not a decodable image."""


class ImageTooLargeError(ImageDecodeError):
    """An image whose header declares more pixels than the limit (a decompression bomb, or just too big)."""


def max_image_pixels() -> int:
    """The pixel limit: ``$FUSIONREC_MAX_IMAGE_PIXELS`` or 40 million."""
    return int(float(os.environ.get(ENV_MAX_PIXELS) or DEFAULT_MAX_PIXELS))


def max_image_bytes() -> int:
    """The file-size limit for image paths: ``$FUSIONREC_MAX_IMAGE_MB`` or 50 MB."""
    return int(float(os.environ.get(ENV_MAX_IMAGE_MB) or DEFAULT_MAX_IMAGE_MB) * (1 << 20))


def check_image_path(path: str | os.PathLike) -> None:
    """Raise :class:`ImageDecodeError` unless ``path`` is a bounded regular file inside its folder."""
    from fusionrec.errors import DataError
    from fusionrec.files import check_regular

    try:
        check_regular(path, max_bytes=max_image_bytes())
    except FileNotFoundError:
        raise ImageDecodeError("file not found") from None
    except DataError as e:
        raise ImageDecodeError(str(e)) from None


def open_rgb(source: ImageSource, draft_size: tuple[int, int] | None = None):
    """Decode ``source`` (path or raw bytes) fully into an RGB ``PIL.Image``.

    ``draft_size`` lets the JPEG decoder downscale by a power of two while decoding (much faster for large
    photos; the result is still at least that size).
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, np.ndarray):  # an already decoded frame (video extractors hand these over)
        if source.dtype != np.uint8 or source.ndim != 3 or source.shape[2] != 3 or not source.size:
            raise ImageDecodeError(f"frame must be (h, w, 3) uint8; got {source.dtype} {source.shape}")
        return Image.fromarray(np.ascontiguousarray(source), "RGB")
    if not isinstance(source, bytes | bytearray):
        check_image_path(source)
    limit = max_image_pixels()
    try:
        fp: Any = io.BytesIO(bytes(source)) if isinstance(source, bytes | bytearray) else Path(source)
        with warnings.catch_warnings():
            # PIL warns (not raises) on some corrupt EXIF blocks and on huge images; the limit below decides
            warnings.simplefilter("ignore")
            with Image.open(fp) as im:  # reads the header only
                w, h = im.size
                if w * h > limit:
                    raise ImageTooLargeError(
                        f"{w}×{h} pixels is over the limit of {limit / 1e6:g} million "
                        f"(set {ENV_MAX_PIXELS} to raise it)"
                    )
                if draft_size is not None and im.format == "JPEG":
                    im.draft("RGB", draft_size)
                im.load()  # force a full decode so truncated files fail here, not later
                return to_rgb(im)
    except ImageDecodeError:
        raise
    except FileNotFoundError:
        raise ImageDecodeError("file not found") from None
    except IsADirectoryError:
        raise ImageDecodeError("is a directory") from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image file (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageDecodeError(f"corrupt or truncated image ({e})") from None


def to_rgb(im):
    """Convert any PIL mode to RGB, compositing transparency on white."""
    from PIL import Image

    if im.mode == "RGB":
        return im.copy()
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        hi = arr.max() if arr.size else 1.0
        im = Image.fromarray((arr / max(hi, 1.0) * 255).astype(np.uint8), "L")
    if im.mode == "F":
        arr = np.nan_to_num(np.asarray(im, dtype=np.float64))
        lo, hi = float(arr.min()), float(arr.max())
        im = Image.fromarray(((arr - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, im).convert("RGB")
    return im.convert("RGB")


def load_resized(source: ImageSource, size: int) -> np.ndarray:
    """``(size, size, 3)`` uint8 RGB, squashed to a square (as the pretrained features were computed)."""
    from PIL import Image

    im = open_rgb(source, draft_size=(size, size))
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def load_gray(source: ImageSource, max_side: int) -> np.ndarray:
    """Greyscale uint8 array, downscaled so the longer side is at most ``max_side``."""
    from PIL import Image

    im = open_rgb(source, draft_size=(max_side, max_side))
    w, h = im.size
    scale = max_side / max(w, h)
    if scale < 1:
        im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    return np.asarray(im.convert("L"), dtype=np.uint8)


def decode_many(
    sources: Sequence[ImageSource],
    decode: Callable[[ImageSource], np.ndarray],
    *,
    workers: int,
    chunk: int,
    expected: tuple[type[Exception], ...] = (ImageDecodeError,),
) -> Iterator[tuple[int, list[np.ndarray | None], list[str | None]]]:
    """Decode ``sources`` in chunks on a thread pool, one chunk ahead of the consumer.

    Yields ``(start, arrays, errors)`` per chunk: ``arrays[j]`` is None when ``errors[j]`` says why (the
    message of an ``expected`` exception, else its type and message). PIL, OpenCV and FFmpeg release the GIL
    while decoding, so threads overlap decoding with the consumer's compute.
    """

    def one(src: ImageSource) -> tuple[np.ndarray | None, str | None]:
        try:
            return decode(src), None
        except expected as e:
            return None, str(e)
        except Exception as e:  # one strange file must never stop a run
            return None, f"{type(e).__name__}: {e}"

    starts = list(range(0, len(sources), chunk))
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="fusionrec-decode") as pool:
        pending = [pool.map(one, sources[s : s + chunk]) for s in starts[:2]]
        for i, start in enumerate(starts):
            results = list(pending[i])
            if i + 2 < len(starts):
                s = starts[i + 2]
                pending.append(pool.map(one, sources[s : s + chunk]))
            yield start, [r[0] for r in results], [r[1] for r in results]


def describe_source(source: Any) -> str:
    if isinstance(source, np.ndarray):
        return f"<frame {'x'.join(map(str, source.shape))}>"
    return str(source) if isinstance(source, str | os.PathLike) else f"<{len(source)} bytes>"
