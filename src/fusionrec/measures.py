"""Rating errors, pure functions on arrays: the one RMSE/MAE for models (early stopping) and evaluation."""

from __future__ import annotations

import numpy as np


def _errors(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    predicted = np.asarray(predicted, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if predicted.shape != actual.shape:
        raise ValueError(f"predicted {predicted.shape} and actual {actual.shape} ratings differ in shape")
    if predicted.size == 0:
        raise ValueError("rating metrics need at least one rating")
    return predicted - actual


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Root mean squared error over rating pairs."""
    return float(np.sqrt(np.mean(_errors(predicted, actual) ** 2)))


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Mean absolute error over rating pairs."""
    return float(np.mean(np.abs(_errors(predicted, actual))))
