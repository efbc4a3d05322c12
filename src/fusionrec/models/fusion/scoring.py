"""The numpy side of fusion: per-user z-scores and the weight search of late fusion."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from fusionrec.errors import ConfigError

__all__ = ["fit_weights", "zscore_rows"]


def zscore_rows(scores: np.ndarray, finite_only: bool = True) -> np.ndarray:
    """Per-row (per-user) z-normalisation, so scorers on different scales can be added.

    Non-finite entries (masked items) are ignored in the statistics and kept as they are.
    """
    s = np.asarray(scores, dtype=np.float32)
    if finite_only and not np.isfinite(s).all():
        ok = np.isfinite(s)
        cnt = np.maximum(ok.sum(axis=1, keepdims=True), 1)
        z = np.where(ok, s, 0.0)
        mu = z.sum(axis=1, keepdims=True) / cnt
        var = (np.where(ok, (z - mu) ** 2, 0.0)).sum(axis=1, keepdims=True) / cnt
        return np.where(ok, (s - mu) / np.sqrt(np.maximum(var, 1e-12)), s).astype(np.float32)
    mu = s.mean(axis=1, keepdims=True)
    sd = s.std(axis=1, keepdims=True)
    return ((s - mu) / np.maximum(sd, 1e-6)).astype(np.float32)


def fit_weights(
    blocks: Sequence[np.ndarray],
    objective: Callable[[np.ndarray], float],
    *,
    grid: Sequence[float] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0),
    rounds: int = 3,
    init: Sequence[float] | None = None,
) -> tuple[np.ndarray, float]:
    """Coordinate search for late-fusion weights that maximise ``objective(fused_scores)``.

    ``blocks`` are per-user z-normalised scores of each scorer on the validation users. Each weight in turn
    tries every ``grid`` value with the rest held (never all zero), for ``rounds`` passes or until nothing
    improves; a scorer that only hurts can so be switched off. Only ratios matter for a ranking, so the result
    is rescaled to a largest weight of 1. Returns ``(weights, best objective)``.
    """
    m = len(blocks)
    if m == 0:
        raise ConfigError("fit_weights needs at least one score block")
    w = np.ones(m) if init is None else np.asarray(init, dtype=np.float64).copy()
    if m == 1:
        return w, float(objective(blocks[0]))
    zs = [np.asarray(b, dtype=np.float32) for b in blocks]

    def fused(weights: np.ndarray) -> np.ndarray:
        out = np.zeros_like(zs[0])
        for z, x in zip(zs, weights, strict=True):
            if x != 0:
                out += np.float32(x) * z
        return out

    best = float(objective(fused(w)))
    for _ in range(max(1, rounds)):
        improved = False
        for j in range(m):
            for g in grid:
                trial = w.copy()
                trial[j] = g
                if g == w[j] or not trial.any():
                    continue
                val = float(objective(fused(trial)))
                if val > best + 1e-9:
                    best, w, improved = val, trial, True
        if not improved:
            break
    return w / w.max(), best
