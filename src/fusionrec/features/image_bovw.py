"""Bag of visual words: local descriptors (ORB or SIFT) quantised against a k-means codebook.

Fit samples images, detects keypoints, and clusters a sample of their descriptors with mini-batch k-means;
each image then becomes a histogram of codeword counts, TF-IDF weighted (IDF from the fit images) and
L2-normalised. ORB's binary descriptors are unpacked to 256 bits before clustering, so Euclidean k-means on
them follows the Hamming distance ORB is designed for. An image without any keypoint (flat colour, tiny) is
marked absent.

References: Sivic & Zisserman, "Video Google: A Text Retrieval Approach to Object Matching in Videos",
ICCV 2003;
Rublee et al., "ORB: An efficient alternative to SIFT or SURF", ICCV 2011.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from fusionrec.errors import ConfigError, DataError
from fusionrec.features.base import Extractor, l2_normalize
from fusionrec.features.images import load_gray

log = logging.getLogger("fusionrec")


class BoVWExtractor(Extractor):
    """TF-IDF weighted bag-of-visual-words histograms.

    Parameters
    ----------
    detector
        ``orb`` (binary, fast) or ``sift`` (float, slower).
    vocab_size
        Codebook size = output width.
    n_keypoints
        Keypoints detected per image (at most).
    max_side
        Images are downscaled so the longer side is at most this many pixels before detection.
    fit_images
        Images sampled to learn the codebook and the IDF weights.
    descriptors_per_image
        Descriptors sampled per fit image for k-means.
    random_state
        Seed for sampling and k-means.
    workers
        Threads decoding images and computing descriptors.
    batch_size, show_progress
        Images per step; progress bar switch.
    """

    name = "bovw"
    kind = "image"
    needs_fit = True
    runtime_params = ("batch_size", "show_progress", "workers")

    def __init__(
        self,
        *,
        detector: str = "orb",
        vocab_size: int = 256,
        n_keypoints: int = 500,
        max_side: int = 320,
        fit_images: int = 1000,
        descriptors_per_image: int = 100,
        random_state: int = 0,
        workers: int = 2,
        batch_size: int = 64,
        show_progress: bool = False,
    ):
        super().__init__(batch_size=batch_size, show_progress=show_progress)
        if detector not in ("orb", "sift"):
            raise ConfigError(f"bovw detector must be orb or sift; got {detector!r}")
        self.detector = detector
        self.vocab_size = vocab_size
        self.n_keypoints = n_keypoints
        self.max_side = max_side
        self.fit_images = fit_images
        self.descriptors_per_image = descriptors_per_image
        self.random_state = random_state
        self.workers = workers
        self.centers_: np.ndarray | None = None
        self.idf_: np.ndarray | None = None

    @property
    def model(self) -> str:
        return f"{self.detector}-kmeans{self.vocab_size}"

    @property
    def dim(self) -> int:
        return self.vocab_size if self.centers_ is None else int(self.centers_.shape[0])

    @property
    def is_fitted(self) -> bool:
        return self.centers_ is not None and self.idf_ is not None

    # ------------------------------------------------------------------------------------------ descriptors

    def _describe(self, source: Any) -> np.ndarray:
        """``(n_desc, D)`` float32 descriptors of one image (bits for ORB); ``(0, D)`` without keypoints."""
        import cv2

        gray = load_gray(source, self.max_side)
        if min(gray.shape) < 16:  # detectors need a border of ~16 px around keypoints
            return np.zeros((0, self._desc_dim()), np.float32)
        if self.detector == "orb":
            det = cv2.ORB_create(nfeatures=self.n_keypoints)
        else:
            det = cv2.SIFT_create(nfeatures=self.n_keypoints)
        _, desc = det.detectAndCompute(gray, None)
        if desc is None or not len(desc):
            return np.zeros((0, self._desc_dim()), np.float32)
        if self.detector == "orb":
            return np.unpackbits(desc, axis=1).astype(np.float32)
        return desc.astype(np.float32)

    def _desc_dim(self) -> int:
        return 256 if self.detector == "orb" else 128

    # ------------------------------------------------------------------------------------------ fit

    def _fit(self, sources: list[Any]) -> None:
        from sklearn.cluster import MiniBatchKMeans
        from threadpoolctl import threadpool_limits

        rng = np.random.RandomState(self.random_state)
        pick = rng.permutation(len(sources))[: self.fit_images]
        sample = [sources[i] for i in sorted(pick)]
        per_image: list[np.ndarray] = []
        for _, arrays in self._decoded(
            sample, self._describe, desc="bovw codebook", unit="img", report_failures=False
        ):
            per_image += [a for a in arrays if a is not None and len(a)]
        if not per_image:
            raise DataError(
                "bovw: no keypoints found in any fit image; use --image cnn or color for these images"
            )
        chosen = []
        for a in per_image:
            k = min(len(a), self.descriptors_per_image)
            chosen.append(a[rng.choice(len(a), k, replace=False)])
        data = np.concatenate(chosen)
        k = min(self.vocab_size, len(data))
        if k < self.vocab_size:
            log.warning("bovw: only %d descriptors to cluster; codebook shrinks to %d words", len(data), k)
        km = MiniBatchKMeans(
            n_clusters=k,
            random_state=self.random_state,
            batch_size=4096,
            n_init=1,
            max_iter=50,
            max_no_improvement=10,
        )
        # scikit-learn's OpenMP threads busy-wait; on a small shared CPU that makes k-means ~10x slower
        with threadpool_limits(limits=1):
            km.fit(data)
        self.centers_ = km.cluster_centers_.astype(np.float32)
        counts = np.stack([self._counts(a) for a in per_image])
        df = (counts > 0).sum(axis=0)
        self.idf_ = (np.log((1.0 + len(per_image)) / (1.0 + df)) + 1.0).astype(np.float32)
        log.info("bovw: %d-word codebook from %d descriptors of %d images", k, len(data), len(per_image))

    def _counts(self, desc: np.ndarray) -> np.ndarray:
        assert self.centers_ is not None
        c = self.centers_
        # squared distances via the expansion; argmin does not need the ||x||^2 term
        d = (c * c).sum(axis=1)[None, :] - 2.0 * desc @ c.T
        words = d.argmin(axis=1)
        return np.bincount(words, minlength=len(c)).astype(np.float32)

    # ------------------------------------------------------------------------------------------ transform

    def _batches(self, sources: list[Any]):
        for start, arrays in self._decoded(sources, self._describe, desc="bovw features", unit="img"):
            n = len(arrays)
            vals = np.zeros((n, self.dim), np.float32)
            ok = np.zeros(n, bool)
            for j, a in enumerate(arrays):
                if a is not None and len(a):
                    counts = self._counts(a)
                    vals[j] = counts / counts.sum() * self.idf_
                    ok[j] = True
            vals[ok] = l2_normalize(vals[ok])
            yield start, vals, ok

    def state(self) -> dict[str, np.ndarray]:
        if not self.is_fitted:
            return {}
        return {"centers": self.centers_, "idf": self.idf_}  # type: ignore[dict-item]

    def load_state(self, arrays: dict[str, np.ndarray]) -> BoVWExtractor:
        centers = np.asarray(arrays["centers"], np.float32)
        if centers.shape[1] != self._desc_dim():
            raise ConfigError(
                f"bovw state has {centers.shape[1]}-d words; {self.detector} gives "
                f"{self._desc_dim()}-d descriptors"
            )
        self.centers_ = centers
        self.idf_ = np.asarray(arrays["idf"], np.float32)
        return self
