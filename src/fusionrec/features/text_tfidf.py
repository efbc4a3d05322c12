"""TF-IDF text features, optionally reduced by truncated SVD (latent semantic analysis).

Fit learns the vocabulary and IDF weights from the corpus (scikit-learn's tokenisation, English stop words,
sublinear term frequency) and, with ``svd_dims``, a truncated SVD of the TF-IDF matrix; rows are
L2-normalised after each step. A text with no vocabulary word left is marked absent.

References: Deerwester et al., "Indexing by Latent Semantic Analysis", JASIS 1990.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from fusionrec.features.base import Extractor, decode_strings, encode_strings, l2_normalize

log = logging.getLogger("fusionrec")


def count_vectorizer(
    vocabulary: list[str] | None,
    *,
    ngram_max: int,
    max_features: int | None = None,
    min_df: int = 1,
    binary: bool = False,
) -> Any:
    """The tokenisation every text extractor here shares (lower-case, 2+ letter words, English stop words)."""
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(
        vocabulary=vocabulary,
        ngram_range=(1, ngram_max),
        stop_words="english",
        max_features=None if vocabulary is not None else max_features,
        min_df=1 if vocabulary is not None else min_df,
        binary=binary,
        dtype=np.float32,
    )


def fit_counts(texts: list[str], *, ngram_max: int, max_features: int | None, min_df: int) -> tuple[Any, Any]:
    """Fit a vocabulary; falls back to ``min_df=1`` when the corpus is too small for ``min_df``."""
    try:
        cv = count_vectorizer(None, ngram_max=ngram_max, max_features=max_features, min_df=min_df)
        return cv, cv.fit_transform(texts)
    except ValueError:
        if min_df <= 1:
            raise
        log.warning("text: no word occurs in %d documents; using every word (min_df=1)", min_df)
        cv = count_vectorizer(None, ngram_max=ngram_max, max_features=max_features, min_df=1)
        return cv, cv.fit_transform(texts)


class VocabularyMixin:
    """A fitted word vocabulary (``vocabulary_``): word counts of new texts over it, kept as UTF-8 state."""

    vocabulary_: list[str] | None
    _cv: Any

    def _vocabulary_counts(self, batch: list[Any], *, ngram_max: int) -> tuple[Any, np.ndarray]:
        """Counts of ``batch``'s texts (sparse rows) and whether each has a vocabulary word at all."""
        if self._cv is None:
            self._cv = count_vectorizer(self.vocabulary_, ngram_max=ngram_max)
        counts = self._cv.transform([str(t) for t in batch])
        return counts, np.asarray(counts.getnnz(axis=1) > 0)

    def _vocabulary_state(self) -> dict[str, np.ndarray]:
        buf, ends = encode_strings(self.vocabulary_ or [])
        return {"vocab_utf8": buf, "vocab_ends": ends}

    def _load_vocabulary(self, arrays: dict[str, np.ndarray]) -> None:
        self.vocabulary_ = decode_strings(arrays["vocab_utf8"], arrays["vocab_ends"])
        self._cv = None


class TfidfExtractor(VocabularyMixin, Extractor):
    """TF-IDF of item texts, optionally projected to ``svd_dims`` latent dimensions.

    Parameters
    ----------
    max_features
        Vocabulary size cap (most frequent terms).
    min_df
        Drop terms that occur in fewer documents.
    ngram_max
        Longest n-gram (1 = words only).
    svd_dims
        Truncated-SVD output width; 0 or None keeps the (dense) TF-IDF vector itself.
    random_state
        Seed of the randomised SVD.
    batch_size, show_progress
        Texts per step; progress bar switch.
    """

    name = "tfidf"
    kind = "text"
    needs_fit = True

    def __init__(
        self,
        *,
        max_features: int = 20000,
        min_df: int = 2,
        ngram_max: int = 1,
        svd_dims: int | None = 128,
        random_state: int = 0,
        batch_size: int = 1024,
        show_progress: bool = False,
    ):
        super().__init__(batch_size=batch_size, show_progress=show_progress)
        self.max_features = max_features
        self.min_df = min_df
        self.ngram_max = ngram_max
        self.svd_dims = svd_dims
        self.random_state = random_state
        self.vocabulary_: list[str] | None = None
        self.idf_: np.ndarray | None = None
        self.components_: np.ndarray | None = None
        self._cv: Any = None

    @property
    def model(self) -> str:
        return f"tfidf-svd{self.dim}" if self.components_ is not None else "tfidf"

    @property
    def is_fitted(self) -> bool:
        return self.vocabulary_ is not None

    @property
    def dim(self) -> int:
        if self.components_ is not None:
            return int(self.components_.shape[0])
        if self.vocabulary_ is not None:
            return len(self.vocabulary_)
        return int(self.svd_dims or self.max_features)

    def _fit(self, sources: list[Any]) -> None:
        from sklearn.decomposition import TruncatedSVD

        texts = [str(t) for t in sources]
        cv, counts = fit_counts(
            texts, ngram_max=self.ngram_max, max_features=self.max_features, min_df=self.min_df
        )
        self.vocabulary_ = cv.get_feature_names_out().tolist()
        self._cv = None
        df = np.asarray((counts > 0).sum(axis=0)).ravel()
        n = counts.shape[0]
        self.idf_ = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
        self.components_ = None
        if self.svd_dims:
            k = min(int(self.svd_dims), len(self.vocabulary_) - 1, n - 1)
            if k < 1:
                log.warning("tfidf: corpus too small for SVD; keeping the %d-d TF-IDF", len(self.vocabulary_))
            else:
                if k < self.svd_dims:
                    log.warning(
                        "tfidf: SVD reduced to %d dimensions (vocabulary %d, documents %d)",
                        k,
                        len(self.vocabulary_),
                        n,
                    )
                svd = TruncatedSVD(
                    n_components=k, random_state=self.random_state, algorithm="randomized", n_iter=7
                )
                svd.fit(self._tfidf(counts))
                self.components_ = svd.components_.astype(np.float32)
        elif len(self.vocabulary_) > 5000:
            log.warning(
                "tfidf: %d-d dense rows without SVD; consider --param svd_dims=128", len(self.vocabulary_)
            )

    def _tfidf(self, counts: Any) -> Any:
        from sklearn.preprocessing import normalize

        x = counts.astype(np.float32)
        x.data = 1.0 + np.log(x.data)  # sublinear tf
        x = x.multiply(self.idf_[None, :]).tocsr()
        return normalize(x, norm="l2", copy=False)

    def _transform(self, batch: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        counts, ok = self._vocabulary_counts(batch, ngram_max=self.ngram_max)
        x = self._tfidf(counts)
        if self.components_ is not None:
            vals = np.asarray(x @ self.components_.T, dtype=np.float32)
            vals = l2_normalize(vals)
        else:
            vals = np.asarray(x.todense(), dtype=np.float32)
        vals[~ok] = 0.0
        return vals, ok

    def state(self) -> dict[str, np.ndarray]:
        if not self.is_fitted:
            return {}
        out = {**self._vocabulary_state(), "idf": self.idf_}
        if self.components_ is not None:
            out["components"] = self.components_
        return out  # type: ignore[return-value]

    def load_state(self, arrays: dict[str, np.ndarray]) -> TfidfExtractor:
        self._load_vocabulary(arrays)
        self.idf_ = np.asarray(arrays["idf"], np.float32)
        self.components_ = np.asarray(arrays["components"], np.float32) if "components" in arrays else None
        return self
