"""MFCC and log-mel statistics: a model-free audio descriptor of a whole clip.

The first ``max_seconds`` of the file are decoded to mono at ``sample_rate`` (longer files are cut, never
decoded in full), a log-mel spectrogram is taken on 32 ms Hann windows every 10 ms, and its DCT gives the
MFCCs. numpy/scipy only: librosa gives the same numbers but its first call compiles numba kernels for
several seconds.
The clip becomes the mean and standard deviation over time of the MFCCs, of their first and second
differences (deltas: how the timbre moves) and of the log-mel bands: ``6 * n_mfcc + 2 * n_mels`` numbers
(200 with the defaults). The blocks keep their natural units (decibels); models normalise per dimension.

References: Davis & Mermelstein, "Comparison of parametric representations for monosyllabic word recognition
in continuously spoken sentences", IEEE TASSP 1980.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from scipy.fft import dct, rfft
from scipy.signal import savgol_filter

from fusionrec.features.base import Extractor
from fusionrec.features.media import MediaDecodeError, MediaLimits, MissingStreamError, decode_audio

_DELTA_WIDTH = 9  # frames in the delta regression window (90 ms at the default hop)


@functools.lru_cache(maxsize=8)
def _hann(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)  # periodic Hann


@functools.lru_cache(maxsize=8)
def _mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` triangular filters evenly spaced on the HTK mel scale, each of unit area."""
    mel = np.linspace(0.0, 2595.0 * np.log10(1.0 + (sample_rate / 2) / 700.0), n_mels + 2)
    edges = 700.0 * (10.0 ** (mel / 2595.0) - 1.0)  # Hz
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / (mid - lo)
    down = (hi - freqs[None, :]) / (hi - mid)
    tri = np.maximum(0.0, np.minimum(up, down))
    return (tri * (2.0 / (hi - lo))).astype(np.float32)


class MfccExtractor(Extractor):
    """Clip-level MFCC / delta / log-mel statistics (``6 * n_mfcc + 2 * n_mels``-d).

    Parameters
    ----------
    sample_rate
        Audio is resampled to this rate (Hz) before analysis.
    n_mfcc, n_mels
        Cepstral coefficients and mel bands.
    n_fft, hop_length
        STFT window and hop in samples (512 / 160 = 32 ms / 10 ms at 16 kHz).
    max_seconds
        Only the first ``max_seconds`` are decoded and described.
    max_bytes
        Larger files are refused (reported, absent) without being read.
    max_decode_seconds
        Wall-time budget per file; a file that takes longer is reported and absent.
    require_stream
        A file without an audio stream is a failure (True) or simply absent (False: a silent video's
        soundtrack).
    workers, batch_size, show_progress
        Decoding threads; files per step; progress bar switch.
    """

    name = "mfcc"
    kind = "audio"
    runtime_params = ("batch_size", "show_progress", "workers")

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        n_mfcc: int = 20,
        n_mels: int = 40,
        n_fft: int = 512,
        hop_length: int = 160,
        max_seconds: float = 30.0,
        max_bytes: int = 512 << 20,
        max_decode_seconds: float = 30.0,
        require_stream: bool = True,
        workers: int = 2,
        batch_size: int = 16,
        show_progress: bool = False,
    ):
        super().__init__(batch_size=batch_size, show_progress=show_progress)
        self.sample_rate = sample_rate
        self.n_mfcc = n_mfcc
        self.n_mels = n_mels
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.max_seconds = max_seconds
        self.max_bytes = max_bytes
        self.max_decode_seconds = max_decode_seconds
        self.require_stream = require_stream
        self.workers = workers

    @property
    def model(self) -> str:
        return f"mfcc{self.n_mfcc}-mel{self.n_mels}-stats"

    @property
    def dim(self) -> int:
        return 6 * self.n_mfcc + 2 * self.n_mels

    @property
    def limits(self) -> MediaLimits:
        return MediaLimits.of(self)

    # ------------------------------------------------------------------------------------------ features

    def describe(self, samples: np.ndarray) -> np.ndarray:
        """Statistics of one mono clip (float samples at ``sample_rate``) as a ``(dim,)`` float32 row."""
        log_mel = self.log_mel(samples)
        mfcc = dct(log_mel, type=2, axis=0, norm="ortho")[: self.n_mfcc]
        # deltas as the slope (and curvature) of a local polynomial fit over _DELTA_WIDTH frames
        d1 = savgol_filter(mfcc, _DELTA_WIDTH, polyorder=1, deriv=1, axis=1, mode="interp")
        d2 = savgol_filter(mfcc, _DELTA_WIDTH, polyorder=2, deriv=2, axis=1, mode="interp")
        parts = []
        for block in (mfcc, d1, d2, log_mel):
            parts += [block.mean(axis=1), block.std(axis=1)]
        return np.concatenate(parts).astype(np.float32)

    def log_mel(self, samples: np.ndarray) -> np.ndarray:
        """``(n_mels, frames)`` log-mel power spectrogram in dB (absolute level: loudness counts)."""
        y = np.asarray(samples, np.float32).reshape(-1)
        # a clip shorter than the delta window is repeated to fill it (its statistics barely change)
        min_len = self.n_fft + self.hop_length * (_DELTA_WIDTH - 1)
        if y.size < min_len:
            y = np.resize(y, min_len) if y.size else np.zeros(min_len, np.float32)
        half = self.n_fft // 2
        y = np.pad(y, half, mode="reflect")  # frames centred on their time stamps
        frames = np.lib.stride_tricks.sliding_window_view(y, self.n_fft)[:: self.hop_length]
        power = np.abs(rfft(frames * _hann(self.n_fft), axis=1)) ** 2  # (frames, n_fft // 2 + 1)
        mel = _mel_filters(self.sample_rate, self.n_fft, self.n_mels) @ power.T
        return 10.0 * np.log10(np.maximum(mel, 1e-10))

    def embed_file(self, source: Any) -> np.ndarray | None:
        """Row of one audio (or video) file; None when it has no audio stream and none is required."""
        try:
            samples, _ = decode_audio(source, self.sample_rate, self.limits)
        except MissingStreamError:
            if self.require_stream:
                raise
            return None
        return self.describe(samples)

    def _batches(self, sources: list[Any]):
        for start, rows in self._decoded(
            sources, self.embed_file, desc="mfcc features", unit="clip", expected=(MediaDecodeError,)
        ):
            n = len(rows)
            vals = np.zeros((n, self.dim), np.float32)
            ok = np.zeros(n, bool)
            for j, row in enumerate(rows):
                if row is not None and np.isfinite(row).all():
                    vals[j] = row
                    ok[j] = True
            yield start, vals, ok
