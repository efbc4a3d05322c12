"""Numpy fusion helpers: modality choice, per-user z-scores, the late-fusion weight search."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.data.dataset import Features
from fusionrec.errors import ConfigError
from fusionrec.models.fusion.content import resolve_modalities
from fusionrec.models.fusion.scoring import fit_weights, zscore_rows


def test_resolve_modalities_any_names():
    f = Features({"audio": np.ones((2, 2)), "text": np.ones((2, 3))})
    assert resolve_modalities(f, None) == ["audio", "text"]
    assert resolve_modalities(f, "audio") == ["audio"]
    with pytest.raises(ConfigError, match="image"):
        resolve_modalities(f, ["image"])


def test_zscore_rows_ignores_masked_entries():
    s = np.array([[1.0, 2.0, 3.0, -np.inf], [5.0, 5.0, 5.0, 5.0]], np.float32)
    z = zscore_rows(s)
    assert np.allclose(z[0, :3], [-1.2247449, 0, 1.2247449], atol=1e-5) and z[0, 3] == -np.inf
    assert np.all(z[1] == 0)


def test_fit_weights_finds_the_useful_scorer():
    rng = np.random.RandomState(0)
    truth = rng.rand(50, 30)
    useful, noise = truth + 0.1 * rng.rand(50, 30), rng.rand(50, 30)

    # objective: agreement of the argmax with the truth
    def objective(s: np.ndarray) -> float:
        return float((s.argmax(1) == truth.argmax(1)).mean())

    w, best = fit_weights([zscore_rows(noise), zscore_rows(useful)], objective)
    assert w.max() == 1.0 and w[1] > w[0]
    assert best >= objective(useful) - 1e-9 and best > objective(noise)
