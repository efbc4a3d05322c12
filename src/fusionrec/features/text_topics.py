"""LDA topic distributions of item texts.

Fit learns a word-count vocabulary and a latent Dirichlet allocation (scikit-learn, variational Bayes); each
item becomes its normalised topic mixture (rows sum to 1). A text with no vocabulary word is marked absent.

References: Blei, Ng & Jordan, "Latent Dirichlet Allocation", JMLR 2003.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusionrec.features.base import Extractor
from fusionrec.features.text_tfidf import VocabularyMixin, fit_counts


class LdaExtractor(VocabularyMixin, Extractor):
    """Topic mixture per item (``n_topics``-d, rows sum to 1).

    Parameters
    ----------
    n_topics
        Number of topics = output width.
    max_features
        Vocabulary size cap.
    min_df
        Drop words that occur in fewer documents.
    max_iter
        Passes of variational inference over the corpus.
    random_state
        Seed of the topic initialisation.
    batch_size, show_progress
        Texts per step; progress bar switch.
    """

    name = "lda"
    kind = "text"
    needs_fit = True

    def __init__(
        self,
        *,
        n_topics: int = 32,
        max_features: int = 10000,
        min_df: int = 2,
        max_iter: int = 20,
        random_state: int = 0,
        batch_size: int = 1024,
        show_progress: bool = False,
    ):
        super().__init__(batch_size=batch_size, show_progress=show_progress)
        self.n_topics = n_topics
        self.max_features = max_features
        self.min_df = min_df
        self.max_iter = max_iter
        self.random_state = random_state
        self.vocabulary_: list[str] | None = None
        self.components_: np.ndarray | None = None
        self._lda: Any = None
        self._cv: Any = None

    @property
    def model(self) -> str:
        return f"lda{self.n_topics}"

    @property
    def dim(self) -> int:
        return self.n_topics

    @property
    def is_fitted(self) -> bool:
        return self.components_ is not None

    def _fit(self, sources: list[Any]) -> None:
        from sklearn.decomposition import LatentDirichletAllocation

        cv, counts = fit_counts(
            [str(t) for t in sources], ngram_max=1, max_features=self.max_features, min_df=self.min_df
        )
        self.vocabulary_ = cv.get_feature_names_out().tolist()
        lda = LatentDirichletAllocation(
            n_components=self.n_topics,
            max_iter=self.max_iter,
            learning_method="batch",
            random_state=self.random_state,
        )
        lda.fit(counts)
        self.components_ = lda.components_.astype(np.float64)
        self._lda = None
        self._cv = None

    def _model(self) -> Any:
        """A scikit-learn LDA rebuilt from the topic-word matrix (what ``transform`` needs, no pickle)."""
        if self._lda is None:
            from scipy.special import psi
            from sklearn.decomposition import LatentDirichletAllocation

            assert self.components_ is not None
            lda = LatentDirichletAllocation(n_components=self.n_topics, random_state=self.random_state)
            lda.components_ = self.components_
            c = self.components_
            lda.exp_dirichlet_component_ = np.exp(psi(c) - psi(c.sum(axis=1, keepdims=True)))
            lda.doc_topic_prior_ = 1.0 / self.n_topics
            lda.topic_word_prior_ = 1.0 / self.n_topics
            lda.n_features_in_ = self.components_.shape[1]
            lda.n_batch_iter_ = 1
            lda.n_iter_ = self.max_iter
            lda.bound_ = 0.0
            self._lda = lda
        return self._lda

    def _transform(self, batch: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        counts, ok = self._vocabulary_counts(batch, ngram_max=1)
        vals = np.asarray(self._model().transform(counts), dtype=np.float32)
        vals[~ok] = 0.0
        return vals, ok

    def state(self) -> dict[str, np.ndarray]:
        if not self.is_fitted:
            return {}
        return {**self._vocabulary_state(), "components": self.components_}  # type: ignore[dict-item]

    def load_state(self, arrays: dict[str, np.ndarray]) -> LdaExtractor:
        self._load_vocabulary(arrays)
        self.components_ = np.asarray(arrays["components"], np.float64)
        self._lda = None
        return self
