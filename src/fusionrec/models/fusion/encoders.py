"""Per-modality encoders: a linear map of pretrained features, or an end-to-end tower over raw content.

- pretrained features (CNN pools, sentence embeddings, ...): ``nn.Linear(d_in, d)``;
- raw pixels (rows of ``channels × size²`` values in [0, 1], see :func:`image_pixels`): :class:`SmallCNN`;
- token ids (0 = padding, see :func:`text_tokens`): :class:`TokenLSTM`.

:func:`image_pixels` and :func:`text_tokens` turn raw content into those rows; both are deterministic without a
stored vocabulary, so a new item's content maps at serving time exactly as at training time.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from fusionrec.data.dataset import Features
from fusionrec.errors import ConfigError

log = logging.getLogger("fusionrec")

#: what each kind of modality holds; ``make_encoder`` builds the matching encoder
KINDS = ("features", "image", "text")


class SmallCNN(nn.Module):
    """Two strided 3×3 convolutions, global average pooling, a linear map to ``d``."""

    def __init__(self, channels: int, size: int, d: int):
        super().__init__()
        self.channels, self.size = channels, size
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.out = nn.Linear(32, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, self.channels, self.size, self.size)
        return self.out(self.conv(x).mean(dim=(2, 3)))


class TokenLSTM(nn.Module):
    """Token embedding, one LSTM layer, mean over non-padding positions, a linear map to ``d``."""

    def __init__(self, vocab: int, d: int, emb: int = 32):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb, padding_idx=0)
        self.lstm = nn.LSTM(emb, d, batch_first=True)
        self.out = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x.long().clamp(0, self.emb.num_embeddings - 1)
        h, _ = self.lstm(self.emb(ids))
        keep = (ids > 0).unsqueeze(-1).to(h.dtype)
        pooled = (h * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return self.out(pooled)


def make_encoder(
    kind: str, x: np.ndarray, d: int, image_size: int, weights: Mapping[str, Any] | None = None
) -> nn.Module:
    """The encoder of one modality of ``kind`` whose rows look like ``x``, mapping to ``d`` dimensions.

    ``weights`` (a stored ``state_dict``) fixes the token vocabulary of a rebuilt text tower.
    """
    if kind == "features":
        return nn.Linear(x.shape[1], d, bias=False)
    if kind == "image":
        channels = x.shape[1] // (image_size * image_size)
        if channels * image_size * image_size != x.shape[1]:
            raise ConfigError(
                f"a raw image row has {x.shape[1]} values, not channels × {image_size}²; "
                "set image_size to the side used by image_pixels"
            )
        return SmallCNN(channels, image_size, d)
    if kind != "text":
        raise ConfigError(f"unknown modality kind {kind!r}; one of {KINDS}")
    if weights is not None:
        vocab = int(weights["emb.weight"].shape[0])
    else:
        vocab = int(np.max(x)) + 1 if x.size else 2
    return TokenLSTM(max(vocab, 2), d)


def image_pixels(paths: Sequence[str | None], size: int = 32) -> Features:
    """Raw-pixel modality for the CNN tower: ``{"pixels": (n, 3·size²)}`` in [0, 1]; missing images absent."""
    from PIL import Image

    out = np.zeros((len(paths), 3 * size * size), np.float32)
    present = np.zeros(len(paths), bool)
    for i, path in enumerate(paths):
        if not path:
            continue
        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB").resize((size, size)), dtype=np.float32) / 255.0
        except OSError as err:  # an unreadable image counts as missing
            log.warning("image_pixels: cannot read %s (%s); treated as missing", path, err)
            continue
        out[i] = arr.transpose(2, 0, 1).ravel()
        present[i] = True
    return Features({"pixels": out}, {"pixels": present})


def text_tokens(texts: Sequence[str], max_len: int = 32, vocab_size: int = 4096) -> np.ndarray:
    """Token ids ``(n, max_len)`` for the LSTM tower: lower-cased words hashed into ``1..vocab_size-1``; 0 pads.

    Hashing (CRC32) needs no stored vocabulary, so a new item's text maps the same way at serving time.
    """
    out = np.zeros((len(texts), max_len), np.float32)
    for i, text in enumerate(texts):
        words = "".join(ch.lower() if ch.isalnum() else " " for ch in (text or "")).split()[:max_len]
        out[i, : len(words)] = [1 + zlib.crc32(w.encode()) % (vocab_size - 1) for w in words]
    return out
