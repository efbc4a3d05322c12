"""HSV colour histogram: a cheap, model-free image baseline.

A joint hue × saturation × value histogram of the downscaled image, normalised to sum 1 and square-rooted, so
the dot product of two rows is the Bhattacharyya coefficient of their colour distributions (unit L2 norm).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusionrec.features.base import Extractor
from fusionrec.features.images import open_rgb


class ColorHistogramExtractor(Extractor):
    """Joint HSV histogram (``h_bins × s_bins × v_bins``-d, Hellinger-normalised).

    Parameters
    ----------
    h_bins, s_bins, v_bins
        Bins per channel.
    max_side
        Images are downscaled so the longer side is at most this many pixels.
    workers
        Decoding threads.
    batch_size, show_progress
        Images per step; progress bar switch.
    """

    name = "color"
    kind = "image"
    runtime_params = ("batch_size", "show_progress", "workers")

    def __init__(
        self,
        *,
        h_bins: int = 16,
        s_bins: int = 4,
        v_bins: int = 4,
        max_side: int = 128,
        workers: int = 2,
        batch_size: int = 64,
        show_progress: bool = False,
    ):
        super().__init__(batch_size=batch_size, show_progress=show_progress)
        self.h_bins = h_bins
        self.s_bins = s_bins
        self.v_bins = v_bins
        self.max_side = max_side
        self.workers = workers

    @property
    def model(self) -> str:
        return f"hsv-{self.h_bins}x{self.s_bins}x{self.v_bins}"

    @property
    def dim(self) -> int:
        return self.h_bins * self.s_bins * self.v_bins

    def _histogram(self, source: Any) -> np.ndarray:
        im = open_rgb(source, draft_size=(self.max_side, self.max_side))
        im.thumbnail((self.max_side, self.max_side))
        hsv = np.asarray(im.convert("HSV"), dtype=np.int64).reshape(-1, 3)
        h = hsv[:, 0] * self.h_bins // 256
        s = hsv[:, 1] * self.s_bins // 256
        v = hsv[:, 2] * self.v_bins // 256
        idx = (h * self.s_bins + s) * self.v_bins + v
        hist = np.bincount(idx, minlength=self.dim).astype(np.float64)
        return np.sqrt(hist / hist.sum()).astype(np.float32)

    def _batches(self, sources: list[Any]):
        for start, histograms in self._decoded(sources, self._histogram, desc="color features", unit="img"):
            ok = np.array([h is not None for h in histograms], bool)
            vals = np.zeros((len(histograms), self.dim), np.float32)
            if ok.any():
                vals[ok] = np.stack([h for h in histograms if h is not None])
            yield start, vals, ok
