"""Video features: frames sampled at a fixed rate, each through an image extractor, mean- and max-pooled.

Frames are taken every ``1 / fps`` seconds from the start (at most ``max_frames``, within the first
``max_seconds``), scaled by FFmpeg so the longer side is at most ``frame_side`` pixels, and handed as arrays to
any image extractor chosen by name (the pretrained CNN by default). A clip's row is the mean of its frame
rows followed by their element-wise maximum (``2 * image_dim``): the mean says what the clip mostly shows,
the max keeps what appears in any one scene. The soundtrack is a separate modality (the audio extractor reads
the same file).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusionrec.errors import ConfigError
from fusionrec.features.base import Extractor, extractor_kind, get_extractor
from fusionrec.features.images import decode_many, describe_source
from fusionrec.features.media import MediaDecodeError, MediaLimits, decode_frames


class FramesExtractor(Extractor):
    """Pooled per-frame image features of a video (``2 * image_dim``-d: mean ‖ max over frames).

    Parameters
    ----------
    image
        Name of the image extractor applied to each frame (``cnn``, ``color``, ``bovw``).
    image_params
        Its parameters, e.g. ``{"arch": "resnet18", "weights": "r18.pth"}``.
    fps
        Frames sampled per second of video.
    max_frames
        At most this many frames per video.
    max_seconds
        Frames are sampled from the first ``max_seconds`` only; the rest is never decoded.
    frame_side
        Frames are scaled so their longer side is at most this many pixels before the image extractor.
    max_pixels
        Videos whose frames have more pixels (width × height) are refused before decoding.
    max_bytes
        Larger files are refused without being read.
    max_decode_seconds
        Wall-time budget per file.
    workers, batch_size, show_progress
        Decoding threads; videos per step; progress bar switch.
    """

    name = "frames"
    kind = "video"
    runtime_params = ("batch_size", "show_progress", "workers")

    def __init__(
        self,
        *,
        image: str = "cnn",
        image_params: dict[str, Any] | None = None,
        fps: float = 1.0,
        max_frames: int = 16,
        max_seconds: float = 60.0,
        frame_side: int = 256,
        max_pixels: int = 3840 * 2160,
        max_bytes: int = 2 << 30,
        max_decode_seconds: float = 60.0,
        workers: int = 2,
        batch_size: int = 8,
        show_progress: bool = False,
    ):
        super().__init__(batch_size=batch_size, show_progress=show_progress)
        if extractor_kind(image) != "image":
            raise ConfigError(f"frames: image={image!r} is not an image extractor")
        if not fps > 0 or int(max_frames) < 1 or int(frame_side) < 8:
            raise ConfigError("frames: fps must be > 0, max_frames >= 1 and frame_side >= 8")
        self.image = image
        self.image_params = dict(image_params or {})
        self.fps = fps
        self.max_frames = max_frames
        self.max_seconds = max_seconds
        self.frame_side = frame_side
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        self.max_decode_seconds = max_decode_seconds
        self.workers = workers
        self._image = get_extractor(image, **{**self.image_params, "show_progress": False})

    # ------------------------------------------------------------------------------------------ identity

    @property
    def model(self) -> str:
        return f"{self._image.model}-frames-meanmax"

    @property
    def dim(self) -> int:
        return 2 * self._image.dim

    @property
    def needs_fit(self) -> bool:  # type: ignore[override]
        return self._image.needs_fit

    @property
    def is_fitted(self) -> bool:
        return self._image.is_fitted

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg["image"] = self._image.config()  # weights hash, preprocessing: the frames' features in full
        cfg["pool"] = ["mean", "max"]
        return cfg

    def state(self) -> dict[str, np.ndarray]:
        return self._image.state()

    def load_state(self, arrays: dict[str, np.ndarray]) -> FramesExtractor:
        self._image.load_state(arrays)
        return self

    def close(self) -> None:
        self._image.close()

    @property
    def limits(self) -> MediaLimits:
        return MediaLimits.of(self)

    # ------------------------------------------------------------------------------------------ frames

    def frames(self, source: Any) -> np.ndarray:
        """``(n, h, w, 3)`` uint8 frames of one video, as the extractor samples them."""
        return decode_frames(
            source,
            fps=float(self.fps),
            max_frames=int(self.max_frames),
            max_side=int(self.frame_side),
            max_pixels=int(self.max_pixels),
            limits=self.limits,
        )

    def _fit(self, sources: list[Any]) -> None:
        # a bounded, evenly spread sample of clips: fitting never holds more than ~2048 frames
        n_clips = max(1, 2048 // int(self.max_frames))
        if len(sources) > n_clips:
            sources = [sources[i] for i in np.linspace(0, len(sources) - 1, n_clips).astype(int)]
        frames: list[np.ndarray] = []
        for _, clips, _ in decode_many(
            sources, self.frames, workers=self.workers, chunk=self.batch_size, expected=(MediaDecodeError,)
        ):
            frames.extend(f for clip in clips if clip is not None for f in clip)
        if not frames:
            raise ConfigError(f"frames: no readable video to fit the {self.image} extractor on")
        self._image.fit(frames)

    def _batches(self, sources: list[Any]):
        d = self._image.dim
        for start, clips in self._decoded(
            sources,
            self.frames,
            desc=f"video features ({self.image} per frame)",
            unit="clip",
            expected=(MediaDecodeError,),
        ):
            n = len(clips)
            vals = np.zeros((n, 2 * d), np.float32)
            ok = np.zeros(n, bool)
            # every frame of the chunk through the image extractor at once (one batched forward pass)
            owner = np.concatenate(
                [np.full(len(c), j) for j, c in enumerate(clips) if c is not None] or [np.zeros(0, int)]
            ).astype(np.int64)
            frame_list = [f for c in clips if c is not None for f in c]
            if frame_list:
                rows, present = self._image.transform(frame_list)
                owner, rows = owner[present], rows[present]
                counts = np.bincount(owner, minlength=n)
                sums = np.zeros((n, d), np.float64)
                np.add.at(sums, owner, rows)
                maxes = np.full((n, d), -np.inf, np.float32)
                np.maximum.at(maxes, owner, rows)
                has = counts > 0
                vals[has, :d] = (sums[has] / counts[has, None]).astype(np.float32)
                vals[has, d:] = maxes[has]
                ok = has
                for j in np.flatnonzero(~has):
                    if clips[j] is not None:  # decoded, but no frame the image extractor could use
                        self._fail(start + j, describe_source(sources[start + j]), "no usable frame")
            yield start, vals, ok
