"""Averaged word embeddings from the sentence model's input token-embedding table.

Rather than training word vectors on a (small) item corpus, this reuses the 30,522 × 384 WordPiece embedding
table of all-MiniLM-L6-v2: a text is tokenised with the model's own tokenizer and its token vectors are
averaged, with no contextual encoder on top. It needs neither torch nor a fit, is deterministic, and gives
every word (also unseen ones, via subwords) a vector. Punctuation and special tokens are skipped; rows are
L2-normalised. A text with no word token is marked absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.errors import ConfigError
from fusionrec.features.base import Extractor, l2_normalize
from fusionrec.features.text_sentence import DEFAULT_MODEL, resolve_model_dir

_TABLE_KEYS = (
    "embeddings.word_embeddings.weight",
    "bert.embeddings.word_embeddings.weight",
    "0.auto_model.embeddings.word_embeddings.weight",
)


class WordVecExtractor(Extractor):
    """Mean of the sentence model's input word(-piece) embeddings (384-d for MiniLM, unit length).

    Parameters
    ----------
    model
        ``all-MiniLM-L6-v2`` (bundled) or a local directory with ``model.safetensors`` + ``tokenizer.json``.
    max_tokens
        Tokens read per text.
    batch_size, show_progress
        Texts per step; progress bar switch.
    """

    name = "wordvec"
    kind = "text"

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        max_tokens: int = 256,
        batch_size: int = 512,
        show_progress: bool = False,
    ):
        super().__init__(batch_size=batch_size, show_progress=show_progress)
        self.model_name = model
        self.max_tokens = max_tokens
        self._table: np.ndarray | None = None
        self._tok: Any = None
        self._skip: np.ndarray | None = None

    def get_params(self) -> dict[str, Any]:
        return {"model": self.model_name, "max_tokens": self.max_tokens}

    @property
    def model(self) -> str:
        return f"{self.model_name}:token-embeddings"

    @property
    def dim(self) -> int:
        return int(self._load()[0].shape[1])

    def _load(self) -> tuple[np.ndarray, Any]:
        if self._table is None:
            from safetensors import safe_open
            from tokenizers import Tokenizer

            root = resolve_model_dir(self.model_name)
            weights, tok_file = Path(root) / "model.safetensors", Path(root) / "tokenizer.json"
            if not weights.exists() or not tok_file.exists():
                raise ConfigError(f"{root}: wordvec needs model.safetensors and tokenizer.json")
            with safe_open(str(weights), "np") as f:
                key = next((k for k in _TABLE_KEYS if k in f.keys()), None)  # noqa: SIM118
                if key is None:
                    raise ConfigError(f"{weights}: no word-embedding table ({_TABLE_KEYS[0]})")
                self._table = np.asarray(f.get_tensor(key), dtype=np.float32)
            tok = Tokenizer.from_file(str(tok_file))
            tok.no_padding()
            tok.enable_truncation(self.max_tokens)
            vocab = tok.get_vocab()
            skip = np.zeros(len(self._table), bool)
            for token, idx in vocab.items():
                word = token.removeprefix("##")
                if idx < len(skip) and (
                    token.startswith("[") and token.endswith("]") or not any(ch.isalnum() for ch in word)
                ):
                    skip[idx] = True
            self._tok, self._skip = tok, skip
        return self._table, self._tok

    def _transform(self, batch: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        table, tok = self._load()
        assert self._skip is not None
        encs = tok.encode_batch([str(t) for t in batch], add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encs), np.int64, count=len(encs))
        ids = np.fromiter((i for e in encs for i in e.ids), np.int64, count=int(lengths.sum()))
        rows = np.repeat(np.arange(len(encs)), lengths)
        keep = ~self._skip[ids]
        ids, rows = ids[keep], rows[keep]
        import scipy.sparse as sp

        bag = sp.csr_matrix((np.ones(len(ids), np.float32), (rows, ids)), shape=(len(encs), len(table)))
        sums = np.asarray(bag @ table, dtype=np.float32)
        counts = np.bincount(rows, minlength=len(encs))
        ok = counts > 0
        vals = np.zeros_like(sums)
        vals[ok] = l2_normalize(sums[ok] / counts[ok, None])
        return vals, ok

    def close(self) -> None:
        self._table = None
        self._tok = None
