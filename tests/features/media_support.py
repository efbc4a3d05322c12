"""Small generated audio and video for the media tests: tones, noise, colour-scene clips (Python only)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

SR = 16000


def tone(freq: float, seconds: float, *, amp: float = 0.3, harmonics: int = 3, sr: int = SR) -> np.ndarray:
    """A harmonic tone (fundamental plus decaying overtones) as float32 samples in [-1, 1]."""
    t = np.arange(int(seconds * sr)) / sr
    y = sum((0.5**k) * np.sin(2 * np.pi * freq * (k + 1) * t) for k in range(harmonics))
    return (amp * y / np.max(np.abs(y))).astype(np.float32)


def noise(seconds: float, *, seed: int, amp: float = 0.2, sr: int = SR) -> np.ndarray:
    return (amp * np.random.RandomState(seed).uniform(-1, 1, int(seconds * sr))).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, sr: int = SR) -> str:
    """16-bit mono PCM WAV through the standard library."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return str(path)


def write_clip(
    path: Path,
    scenes: list[tuple[tuple[int, int, int], int]],
    *,
    seed: int = 0,
    size: tuple[int, int] = (96, 64),
    fps: int = 10,
) -> str:
    """An MPEG-4 clip through OpenCV's VideoWriter: ``scenes`` = [(RGB colour, frames)], with pixel noise
    and a moving bar so no two clips are byte-identical."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    rng = np.random.RandomState(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    k = 0
    for colour, n in scenes:
        for _ in range(n):
            frame = np.empty((h, w, 3), np.int16)
            frame[:] = colour[::-1]  # OpenCV wants BGR
            frame += rng.randint(-12, 13, frame.shape).astype(np.int16)
            x = (k * 7) % w
            frame[:, x : x + 6] = 128
            writer.write(np.clip(frame, 0, 255).astype(np.uint8))
            k += 1
    writer.release()
    return str(path)


def write_av_clip(
    path: Path, colour: tuple[int, int, int], *, seconds: float = 2.0, audio: np.ndarray | None = None
) -> str:
    """An MP4 (MPEG-4 video, AAC audio when ``audio`` is given) through PyAV: a clip with a soundtrack."""
    import av

    fps = 10
    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        ast = None
        if audio is not None:
            ast = out.add_stream("aac", rate=SR)
            ast.layout = "mono"
        img = np.empty((48, 64, 3), np.uint8)
        img[:] = colour
        for _ in range(int(seconds * fps)):
            for packet in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if ast is not None and audio is not None:
            frame = av.AudioFrame.from_ndarray(
                audio.reshape(1, -1).astype(np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate = SR
            for packet in ast.encode(frame):
                out.mux(packet)
            for packet in ast.encode():
                out.mux(packet)
    return str(path)


def nearest_same_group(values: np.ndarray, groups: list[int]) -> list[bool]:
    """Per item: is its nearest other item (cosine, after per-dimension standardising as models do) of its
    own group?"""
    x = (values - values.mean(0)) / np.maximum(values.std(0), 1e-8)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    nn = sims.argmax(1)
    return [groups[i] == groups[j] for i, j in enumerate(nn)]
