"""Rating errors, pure functions on arrays: the one RMSE/MAE for models (early stopping) and evaluation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


def matrix_rmse(predict: Callable[[np.ndarray, np.ndarray], np.ndarray], ratings: Any) -> float:
    """RMSE of ``predict(users, items)`` on the stored values of a CSR users × items ``ratings`` matrix.

    What rating models early-stop on (a model's own pair predictor, or ``Recommender.predict``).
    """
    users = np.repeat(np.arange(ratings.shape[0], dtype=np.int64), np.diff(ratings.indptr))
    return rmse(predict(users, ratings.indices.astype(np.int64)), ratings.data)
