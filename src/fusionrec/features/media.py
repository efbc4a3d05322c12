"""Bounded decoding of audio and video files, shared by the audio and video extractors.

Every limit is explicit: only regular files are opened (a symlink to ``/dev/zero`` or a FIFO named ``.wav``
is refused before a byte is read), files above ``max_bytes`` are refused, only the first ``max_seconds`` are
decoded (longer files are truncated, never decoded in full), video streams above ``max_pixels`` per frame are
refused before decoding, at most ``max_frames`` frames are kept, and decoding stops once it has taken
``max_decode_seconds`` of wall time. PyAV (FFmpeg) does the decoding, with nested opens disabled so a playlist
or concat file cannot make it read other files. Anything unusable raises :class:`MediaDecodeError` with the
reason, which the extractors log and count as an absent item.
"""

from __future__ import annotations

import os
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

MediaSource = str | os.PathLike

# FFmpeg demuxers that read other files or synthesise input: never what an item's media file should be
_REFUSED_FORMATS = ("concat", "hls", "dash", "lavfi", "tee", "image2", "sdp", "rtp", "rtsp")


class MediaDecodeError(Exception):
    """The file at a path is not decodable media within the limits (the message says why)."""


class MissingStreamError(MediaDecodeError):
    """The file decodes but has no stream of the wanted kind (a silent video has no soundtrack)."""


@dataclass(frozen=True)
class MediaLimits:
    """Per-file bounds on what decoding may read and keep."""

    max_bytes: int = 1 << 30
    max_seconds: float = 30.0
    max_decode_seconds: float = 30.0

    @classmethod
    def of(cls, extractor: Any) -> MediaLimits:
        """The limits set by an extractor's ``max_bytes``, ``max_seconds`` and ``max_decode_seconds``."""
        return cls(
            max_bytes=int(extractor.max_bytes),
            max_seconds=float(extractor.max_seconds),
            max_decode_seconds=float(extractor.max_decode_seconds),
        )


def open_regular(path: MediaSource, max_bytes: int, *, allow_empty: bool = False):
    """Open ``path`` for reading if it is a non-empty regular file of at most ``max_bytes``; else raise.

    The descriptor is opened non-blocking and checked with ``fstat`` (not ``stat`` then ``open``), so a FIFO
    cannot block and a file swapped in between cannot slip past.
    """
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise MediaDecodeError("file not found") from None
    except IsADirectoryError:
        raise MediaDecodeError("is a directory") from None
    except OSError as e:
        raise MediaDecodeError(f"cannot open file ({e.strerror or e})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise MediaDecodeError("is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise MediaDecodeError("not a regular file (device, FIFO or socket)")
        if st.st_size == 0 and not allow_empty:
            raise MediaDecodeError("empty file (0 bytes)")
        if st.st_size > max_bytes:
            raise MediaDecodeError(f"file too large ({st.st_size} bytes > max_bytes={max_bytes})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def open_container(path: MediaSource, limits: MediaLimits):
    """``av`` input container of a checked regular file; FFmpeg may not open any other file or URL."""
    import av

    f = open_regular(path, limits.max_bytes)
    container = None
    try:
        try:
            container = av.open(
                f,
                mode="r",
                # "none" matches no protocol: concat lists, playlists and references cannot open anything
                options={"protocol_whitelist": "none", "probesize": "5000000", "analyzeduration": "5000000"},
            )
        except av.FFmpegError as e:
            raise MediaDecodeError(f"not a media file or corrupt ({_ffmpeg_reason(e)})") from None
        fmt = container.format.name if container.format is not None else ""
        if any(part in _REFUSED_FORMATS or part.endswith("_pipe") for part in fmt.split(",")):
            raise MediaDecodeError(f"not an audio/video file (FFmpeg reads it as {fmt!r})")
        yield container
    finally:
        if container is not None:
            container.close()
        f.close()


def _ffmpeg_reason(e: Exception) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return str(text).split(":")[0].strip() or type(e).__name__


def _first_stream(container: Any, kind: str) -> Any:
    streams = [s for s in container.streams if s.type == kind and s.codec_context is not None]
    if not streams:
        raise MissingStreamError(f"no {kind} stream")
    return streams[0]


def decode_audio(path: MediaSource, sample_rate: int, limits: MediaLimits) -> tuple[np.ndarray, bool]:
    """Mono float32 samples at ``sample_rate`` of the first ``limits.max_seconds``, and whether it was cut.

    Decoding stops as soon as enough samples are in; a file of hours costs the same as one of ``max_seconds``.
    """
    import av

    want = max(1, int(round(limits.max_seconds * sample_rate)))
    started = time.monotonic()
    with open_container(path, limits) as container:
        stream = _first_stream(container, "audio")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        have = 0
        truncated = False
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray().reshape(-1))
                        have += chunks[-1].size
                if have >= want:
                    truncated = True
                    break
                if time.monotonic() - started > limits.max_decode_seconds:
                    raise MediaDecodeError(
                        f"decoding took longer than max_decode_seconds={limits.max_decode_seconds}"
                    )
            if not truncated:
                for out in resampler.resample(None):  # flush what the resampler still holds
                    chunks.append(out.to_ndarray().reshape(-1))
                    have += chunks[-1].size
        except av.FFmpegError as e:
            if not have:
                raise MediaDecodeError(f"corrupt audio ({_ffmpeg_reason(e)})") from None
            # a damaged tail: keep what decoded cleanly before it
    if not have:
        raise MediaDecodeError("no audio samples decoded")
    samples = np.concatenate(chunks)[:want].astype(np.float32, copy=False)
    if not np.isfinite(samples).all():
        samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
    return samples, truncated


def decode_frames(
    path: MediaSource,
    *,
    fps: float,
    max_frames: int,
    max_side: int,
    max_pixels: int,
    limits: MediaLimits,
) -> np.ndarray:
    """``(n, h, w, 3)`` uint8 RGB frames sampled every ``1 / fps`` seconds from the start (at least one).

    Frames are scaled by FFmpeg so the longer side is at most ``max_side`` (the image extractors resize
    again anyway); streams whose frames exceed ``max_pixels`` are refused before any frame is decoded.
    """
    import av

    if fps <= 0 or max_frames < 1:
        raise MediaDecodeError("fps must be > 0 and max_frames >= 1")
    started = time.monotonic()
    with open_container(path, limits) as container:
        stream = _first_stream(container, "video")
        width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
        _check_pixels(width, height, max_pixels)  # before any frame is decoded, when the header says
        stream.thread_type = "AUTO"
        frames: list[np.ndarray] = []
        next_t = 0.0
        first_t: float | None = None
        last: Any = None
        try:
            for frame in container.decode(stream):
                if frame.time is not None and first_t is None:
                    first_t = float(frame.time)
                # seconds since the first frame (streams may start at any time stamp)
                t = float(frame.time) - (first_t or 0.0) if frame.time is not None else next_t
                if t > limits.max_seconds:
                    break
                _check_pixels(frame.width, frame.height, max_pixels)  # streams may change size midway
                last = frame
                if t + 1e-6 >= next_t:
                    frames.append(_rgb(frame, max_side))
                    next_t = t + 1.0 / fps
                    if len(frames) >= max_frames:
                        break
                if time.monotonic() - started > limits.max_decode_seconds:
                    raise MediaDecodeError(
                        f"decoding took longer than max_decode_seconds={limits.max_decode_seconds}"
                    )
        except av.FFmpegError as e:
            if not frames and last is None:
                raise MediaDecodeError(f"corrupt video ({_ffmpeg_reason(e)})") from None
        if not frames and last is not None:
            frames.append(_rgb(last, max_side))
    if not frames:
        raise MediaDecodeError("no video frames decoded")
    if len({f.shape for f in frames}) > 1:  # a size change midway: bring every frame to the first's size
        from PIL import Image

        h, w = frames[0].shape[:2]
        frames = [
            f if f.shape[:2] == (h, w) else np.asarray(Image.fromarray(f).resize((w, h))) for f in frames
        ]
    return np.stack(frames)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise MediaDecodeError(f"frames too large ({width}x{height} > max_pixels={max_pixels})")


def _rgb(frame: Any, max_side: int) -> np.ndarray:
    """RGB uint8 array of a decoded frame, scaled by FFmpeg so its longer side is at most ``max_side``."""
    w, h = int(frame.width), int(frame.height)
    if w <= 0 or h <= 0:
        raise MediaDecodeError("video frame without a size")
    scale = min(1.0, max_side / max(w, h))
    return frame.to_ndarray(format="rgb24", width=max(2, round(w * scale)), height=max(2, round(h * scale)))
